"""Min-max normalisation to [-1, 1], with arm actions relative to the current state (GR00T N1.6 style).

The five arm joints of an action chunk are stored as offsets from the state the chunk starts at; the gripper
stays absolute (open/closed is a level, not a motion). The statistics live with the checkpoint; they are
computed from the training data by ``training.data.compute_norm_stats``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

import numpy as np
import torch

STATE_DIM = 6
ARM_DIMS = 5  # the first 5 dims are arm joints (relative actions); the last is the gripper (absolute)
MIN_HALF_RANGE = 1e-6  # a dimension whose min/max differ by less than this is treated as constant

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


@dataclass(frozen=True)
class NormStats:
    """Min/max of the state and of the action targets, and the maps between LeRobot units and [-1, 1].

    Action targets are relative for the arm and absolute for the gripper: ``action[t+k, :5] - state[t, :5]`` and
    ``action[t+k, 5]``, k < ``horizon`` (the relative range grows with the horizon, so it is recorded). Each dim maps
    min..max onto -1..1; a dim with max == min (within ``MIN_HALF_RANGE``) maps its value to 0 instead of dividing
    by zero. Nothing is clipped, so the maps are inverses up to float64 rounding (float32 values come back bit
    for bit through a float64 round trip); they compute in float64 and return the input's type, dtype and
    device (torch or numpy), with any leading batch dims.
    """

    state_min: tuple[float, ...]
    state_max: tuple[float, ...]
    action_min: tuple[float, ...]
    action_max: tuple[float, ...]
    horizon: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NormStats":
        stats = cls(**{k: tuple(float(x) for x in d[k]) for k in ("state_min", "state_max", "action_min",
                                                                   "action_max")}, horizon=d.get("horizon"))
        for k in ("state_min", "state_max", "action_min", "action_max"):
            if len(getattr(stats, k)) != STATE_DIM:
                raise ValueError(f"norm stats {k} has {len(getattr(stats, k))} values, expected {STATE_DIM}")
        return stats

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def read(cls, path: Path) -> "NormStats":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def normalize_state(self, state: ArrayT) -> ArrayT:
        """(..., 6) LeRobot units -> [-1, 1]."""
        x, back = _float64(state)
        return back(_to_unit(x, self.state_min, self.state_max))

    def unnormalize_state(self, norm: ArrayT) -> ArrayT:
        x, back = _float64(norm)
        return back(_from_unit(x, self.state_min, self.state_max))

    def normalize_actions(self, actions: ArrayT, state: ArrayT) -> ArrayT:
        """actions (..., H, 6) absolute LeRobot units, state (..., 6) at the window's first step -> [-1, 1]."""
        a, back = _float64(actions)
        s, _ = _float64(state)
        a = a.clone()
        a[..., :ARM_DIMS] -= s[..., None, :ARM_DIMS]
        return back(_to_unit(a, self.action_min, self.action_max))

    def unnormalize_actions(self, norm: ArrayT, state: ArrayT) -> ArrayT:
        """Inverse of :meth:`normalize_actions`: back to absolute LeRobot units."""
        n, back = _float64(norm)
        s, _ = _float64(state)
        a = _from_unit(n, self.action_min, self.action_max)
        a[..., :ARM_DIMS] += s[..., None, :ARM_DIMS]
        return back(a)


def _float64(x: torch.Tensor | np.ndarray):
    """x as a float64 tensor, and the function that turns a result back into x's type, dtype and device."""
    if isinstance(x, np.ndarray):
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return torch.from_numpy(np.asarray(x, dtype=np.float64)), lambda y: y.numpy().astype(dtype, copy=False)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return x.to(torch.float64), lambda y: y.to(dtype)


def _center_half(lo: Sequence[float], hi: Sequence[float], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lo_t = torch.tensor(lo, dtype=torch.float64, device=like.device)
    hi_t = torch.tensor(hi, dtype=torch.float64, device=like.device)
    half = (hi_t - lo_t) / 2
    return (hi_t + lo_t) / 2, torch.where(half > MIN_HALF_RANGE, half, torch.ones_like(half))


def _to_unit(x: torch.Tensor, lo: Sequence[float], hi: Sequence[float]) -> torch.Tensor:
    center, half = _center_half(lo, hi, x)
    return (x - center) / half


def _from_unit(x: torch.Tensor, lo: Sequence[float], hi: Sequence[float]) -> torch.Tensor:
    center, half = _center_half(lo, hi, x)
    return x * half + center
