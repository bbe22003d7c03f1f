"""Where the VLA runs: device choice, mixed precision, and the preset lookup, shared by training, probes and acting."""

from __future__ import annotations

import torch

from policies.vla.config import PRESETS, VLAConfig


class RuntimeConfigError(ValueError):
    """A bad --device or --preset; the message names the value and the choices."""


def preset(name: str) -> VLAConfig:
    if name not in PRESETS:
        raise RuntimeConfigError(f"unknown --preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def resolve_device(name: str) -> torch.device:
    """``auto`` = CUDA when torch sees a GPU, else CPU; anything else must be cpu, cuda or cuda:N that exists."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RuntimeConfigError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeConfigError(f"--device {name} asked for CUDA, but torch sees no GPU here; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise RuntimeConfigError(f"--device {name}: only cpu and cuda are supported")
    return device


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA (as GR00T trains); plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)
