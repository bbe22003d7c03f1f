"""The VLA: backbone features -> flow-matching head, in normalised action space; plus checkpoints.

Inputs are what the datasets hold: uint8 camera images (B, 3, S, S), the instruction text, the state and action
chunks in LeRobot units. Normalisation (relative arm, min-max) happens here, with the statistics saved alongside
the weights, so a checkpoint is self-contained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from policies.vla.action_head import FlowMatchingActionHead
from policies.vla.backbone import Backbone
from policies.vla.config import VLAConfig
from policies.vla.normalize import NormStats
from policies.vla.tuning import TuneConfig, inject_lora

CHECKPOINT_FORMAT = "chefmate-vla/1"
WEIGHTS, META = "model.safetensors", "config.json"


class CheckpointError(ValueError):
    pass


class VLA(nn.Module):
    def __init__(self, cfg: VLAConfig, norm: NormStats, tune: TuneConfig = TuneConfig()):
        super().__init__()
        self.cfg, self.norm, self.tune = cfg, norm, tune
        self.backbone = Backbone(cfg)
        self.action_head = FlowMatchingActionHead(cfg)
        inject_lora(self, tune)

    def features(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone({cam: batch[cam] for cam in self.cfg.cameras}, list(batch["task"]))

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Flow-matching loss on a training batch."""
        state = batch["state"].float()
        vl, mask = self.features(batch)
        actions = self.norm.normalize_actions(batch["actions"].float(), state)
        return self.action_head.loss(vl, mask, self.norm.normalize_state(state), actions.to(vl.dtype),
                                     batch["action_mask"])

    @torch.no_grad()
    def predict_chunk(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, horizon, action_dim) absolute actions in LeRobot units."""
        state = batch["state"].float()
        vl, mask = self.features(batch)
        normalized = self.action_head.sample(vl, mask, self.norm.normalize_state(state).to(vl.dtype), generator)
        return self.norm.unnormalize_actions(normalized.float(), state)

    # --- checkpoints -----------------------------------------------------------------------------------
    def save(self, directory: Path, extra: dict[str, Any] | None = None) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = directory / (WEIGHTS + ".tmp")
        save_file(state, str(tmp))
        tmp.replace(directory / WEIGHTS)  # a kill mid-save never leaves torn weights under the real name
        meta = {"format": CHECKPOINT_FORMAT, "vla": self.cfg.to_dict(), "tune": self.tune.to_dict(),
                "norm_stats": self.norm.to_dict(), **(extra or {})}
        (directory / META).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path, expect: VLAConfig | None = None) -> "VLA":
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = read_checkpoint_meta(directory)
        cfg = VLAConfig.from_dict(meta["vla"])
        if expect is not None and expect != cfg:
            diff = {k: (v, getattr(cfg, k)) for k, v in expect.to_dict().items() if getattr(cfg, k) != v}
            raise CheckpointError(f"{directory} was trained with another model config ({_show(diff)}); pass the "
                                  f"matching --preset/size options or start a new run")
        model = cls(cfg, NormStats.from_dict(meta["norm_stats"]), TuneConfig(**meta["tune"]))
        missing, unexpected = model.load_state_dict(load_file(str(directory / WEIGHTS)), strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{directory} does not match its own config: {len(missing)} missing tensors "
                                  f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
                                  f"it was written by another version of the model")
        return model


def read_checkpoint_meta(directory: Path) -> dict[str, Any]:
    directory = Path(directory)
    if not (directory / META).exists() or not (directory / WEIGHTS).exists():
        raise CheckpointError(f"{directory} is not a VLA checkpoint (needs {META} and {WEIGHTS}); point at a "
                              f"checkpoint folder written by `python -m training.finetune`")
    meta = json.loads((directory / META).read_text())
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{directory} has format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    return meta


def _show(diff: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: wanted {a}, checkpoint has {b}" for k, (a, b) in list(diff.items())[:4])
