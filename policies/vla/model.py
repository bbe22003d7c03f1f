"""The VLA: backbone features -> flow-matching head, in normalised action space; plus checkpoints.

Inputs are what the datasets hold: uint8 camera images (B, 3, S, S), the instruction text, the state and action
chunks in LeRobot units. Normalisation (relative arm, min-max) happens here, with the statistics saved alongside
the weights, so a checkpoint is self-contained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from policies.vla.action_head import FlowMatchingActionHead
from policies.vla.backbone import Backbone
from policies.vla.config import VLAConfig
from policies.vla.normalize import NormStats
from policies.vla.tuning import TuneConfig, inject_lora

CHECKPOINT_FORMAT = "chefmate-vla/1"
META = "config.json"
LLM_PREFIX = "backbone.llm."


class CheckpointError(ValueError):
    pass


class VLA(nn.Module):
    def __init__(self, cfg: VLAConfig, norm: NormStats, tune: TuneConfig = TuneConfig()):
        super().__init__()
        self.cfg, self.norm, self.tune = cfg, norm, tune
        self.backbone = Backbone(cfg)
        self.action_head = FlowMatchingActionHead(cfg)
        inject_lora(self, tune)
        self._compiled_chunk: Callable[..., torch.Tensor] | None = None  # set by compile_inference
        # Inference under bf16 autocast (vla:PATH?bf16=1), the precision it trains in and GR00T deploys in; off by
        # default, so a grid's numbers do not depend on the option that makes it faster.
        self.bf16_inference = False

    def features(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone({cam: batch[cam] for cam in self.cfg.cameras}, list(batch["task"]))

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Flow-matching loss on a training batch."""
        tok = self.backbone.tokenize(list(batch["task"]))
        return self.flow_loss({cam: batch[cam] for cam in self.cfg.cameras}, tok["input_ids"], tok["attention_mask"],
                              batch["state"], batch["actions"], batch["action_mask"])

    def flow_loss(self, images: dict[str, torch.Tensor], input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  state: torch.Tensor, actions: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """The loss from tensors alone, the instruction already tokenized: the part ``--compile`` compiles."""
        state = state.float()
        vl, mask = self.backbone.encode(images, input_ids, attention_mask)
        actions = self.norm.normalize_actions(actions.float(), state)
        return self.action_head.loss(vl, mask, self.norm.normalize_state(state), actions.to(vl.dtype), action_mask)

    @torch.no_grad()
    def predict_chunk(self, batch: dict[str, Any], generator: torch.Generator | None = None,
                      noise: torch.Tensor | None = None) -> torch.Tensor:
        """(B, horizon, action_dim) absolute actions in LeRobot units."""
        state = batch["state"].float()
        if noise is None:  # the flow's starting noise, drawn from the episode's generator
            noise = torch.randn((state.shape[0], self.cfg.action_horizon, self.cfg.action_dim), generator=generator,
                                device=generator.device if generator is not None else state.device)
        tok = self.backbone.tokenize(list(batch["task"]))
        images = {cam: batch[cam] for cam in self.cfg.cameras}
        if self._compiled_chunk is None:
            return self.chunk(images, tok["input_ids"], tok["attention_mask"], state, noise)
        # Pad to a power of two: a handful of compiled graphs then serve every batch size the grid produces.
        b = state.shape[0]
        size = 1 << (b - 1).bit_length()

        def pad(t: torch.Tensor) -> torch.Tensor:  # repeat the last row up to the padded size
            return torch.cat([t, t[-1:].expand(size - b, *t.shape[1:])]) if size > b else t

        out = self._compiled_chunk({c: pad(v) for c, v in images.items()}, pad(tok["input_ids"]),
                                   pad(tok["attention_mask"]), pad(state), pad(noise))
        return out[:b].clone()  # a CUDA graph's output is overwritten by its next replay

    def chunk(self, images: dict[str, torch.Tensor], input_ids: torch.Tensor, attention_mask: torch.Tensor,
              state: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``predict_chunk`` from tensors alone, noise given: the part ``compile_inference`` compiles."""
        with torch.autocast(noise.device.type, dtype=torch.bfloat16, enabled=self.bf16_inference):
            vl, mask = self.backbone.encode(images, input_ids, attention_mask)
            # the flow's state stays fp32 under autocast too: only the layers' matmuls run in bf16
            normalized = self.action_head.sample(vl, mask, self.norm.normalize_state(state), noise=noise)
        return self.norm.unnormalize_actions(normalized.float().clamp(-1, 1), state)

    def compile_inference(self) -> "VLA":
        """Compile ``chunk`` (CUDA graphs on a GPU): at batch 1 an eager chunk is almost all kernel-launch overhead.
        The first call of each padded batch size compiles (about a minute), so this pays off over long grids."""
        import torch._dynamo

        # one graph per power-of-two batch size, up to 4096 envs
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 16)
        mode = "reduce-overhead" if next(self.parameters()).is_cuda else None
        self._compiled_chunk = torch.compile(self.chunk, mode=mode, dynamic=False)
        return self

    # --- checkpoints -----------------------------------------------------------------------------------
    def stored_state(self) -> dict[str, torch.Tensor]:
        """Weights a checkpoint must hold. An LLM that was not tuned in full is still the shipped MiniLM, so only
        its LoRA adapters (if any) are stored: 76 MB less per checkpoint."""
        state = self.state_dict()
        if not (self.tune.tune_llm and self.tune.lora_rank == 0):
            state = {k: v for k, v in state.items() if not k.startswith(LLM_PREFIX) or "lora_" in k}
        return {k: v.detach().contiguous().cpu() for k, v in state.items()}

    def save(self, directory: Path, extra: dict[str, Any] | None = None, shard_mb: float = 15.0) -> None:
        """Safetensors shards of at most ``shard_mb`` (small files travel and diff better) + config.json."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        shards: list[dict[str, torch.Tensor]] = [{}]
        size = 0
        for key, tensor in self.stored_state().items():
            nbytes = tensor.numel() * tensor.element_size()
            if shards[-1] and size + nbytes > shard_mb * 1e6:
                shards.append({})
                size = 0
            shards[-1][key] = tensor
            size += nbytes
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
        for old in directory.glob("model-*.safetensors"):
            old.unlink()
        for name, shard in zip(names, shards):
            save_file(shard, str(directory / (name + ".tmp")))
            (directory / (name + ".tmp")).replace(directory / name)  # never a torn file under the real name
        meta = {"format": CHECKPOINT_FORMAT, "weights": names, "vla": self.cfg.to_dict(), "tune": self.tune.to_dict(),
                "norm_stats": self.norm.to_dict(), **(extra or {})}
        (directory / META).write_text(json.dumps(meta, indent=2))

    def load_stored_state(self, directory: Path, meta: dict[str, Any]) -> None:
        missing, unexpected = self.load_state_dict(read_stored_weights(directory, meta), strict=False)
        missing = [k for k in missing if k not in self._regenerated_keys()]
        if missing or unexpected:
            raise CheckpointError(f"{directory} does not match its own config: {len(missing)} missing tensors "
                                  f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
                                  f"it was written by another version of the model")

    def _regenerated_keys(self) -> set[str]:
        """Keys a checkpoint may leave out because construction rebuilds them (the shipped LLM)."""
        return set(self.state_dict()) - set(self.stored_state())

    @classmethod
    def load(cls, directory: Path, expect: VLAConfig | None = None) -> "VLA":
        directory = Path(directory)
        meta = read_checkpoint_meta(directory)
        cfg = VLAConfig.from_dict(meta["vla"])
        if expect is not None and expect != cfg:
            diff = {k: (v, getattr(cfg, k)) for k, v in expect.to_dict().items() if getattr(cfg, k) != v}
            raise CheckpointError(f"{directory} was trained with another model config ({_show(diff)}); pass the "
                                  f"matching --preset/size options or start a new run")
        model = cls(cfg, NormStats.from_dict(meta["norm_stats"]), TuneConfig(**meta["tune"]))
        model.load_stored_state(directory, meta)
        return model


def read_stored_weights(directory: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint's safetensors shards, by name (``meta`` from ``read_checkpoint_meta``)."""
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for name in meta["weights"]:
        state.update(load_file(str(Path(directory) / name)))
    return state


def read_checkpoint_meta(directory: Path) -> dict[str, Any]:
    directory = Path(directory)
    if not (directory / META).exists():
        raise CheckpointError(f"{directory} is not a VLA checkpoint (no {META}); point at a checkpoint folder "
                              f"written by `python -m training.finetune`")
    meta = json.loads((directory / META).read_text())
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{directory} has format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    missing = [name for name in meta["weights"] if not (directory / name).exists()]
    if missing:
        raise CheckpointError(f"{directory} lacks {', '.join(missing)}; copy the whole checkpoint folder")
    return meta


def _show(diff: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: wanted {a}, checkpoint has {b}" for k, (a, b) in list(diff.items())[:4])
