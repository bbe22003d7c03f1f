"""Sizes of the small GR00T-architecture VLA. Presets: ``tiny`` for CPU tests, ``small`` for real runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class VLAConfig:
    # vision (a ViT per camera image, shared weights, like Eagle's SigLIP tower)
    image_size: int = 96
    patch_size: int = 8
    vit_width: int = 192
    vit_depth: int = 6
    vit_heads: int = 3
    cameras: tuple[str, ...] = ("front", "wrist")
    # language model: the pretrained MiniLM-L6 BERT, cut after ``select_layer`` layers (GR00T keeps 12 of 28)
    select_layer: int = 4
    max_text_tokens: int = 32
    # action head (GR00T's FlowmatchingActionHead, scaled down)
    state_dim: int = 6
    action_dim: int = 6
    action_horizon: int = 16
    head_width: int = 256  # backbone features are projected to this width (GR00T's backbone_embedding_dim)
    head_hidden: int = 512  # hidden width of the state encoder / action decoder MLPs
    dit_depth: int = 6
    dit_heads: int = 8
    vl_self_attention_depth: int = 2
    future_tokens: int = 8
    num_inference_steps: int = 4
    noise_beta_alpha: float = 1.5
    noise_beta_beta: float = 1.0
    noise_s: float = 0.999  # GR00T: t = (s - Beta sample) / s keeps t away from exactly 1
    timestep_buckets: int = 1000

    def __post_init__(self) -> None:
        grid = self.image_size // self.patch_size
        if self.image_size % self.patch_size or grid % 2:
            raise ValueError(f"image_size {self.image_size} must be an even number of {self.patch_size}-pixel "
                             f"patches across (pixel shuffle halves the grid)")
        if not 1 <= self.select_layer <= 6:
            raise ValueError(f"select_layer must be 1..6 (MiniLM-L6 has 6 layers), got {self.select_layer}")

    @property
    def image_tokens_per_camera(self) -> int:
        return (self.image_size // self.patch_size // 2) ** 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VLAConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown VLA config keys {unknown}; the checkpoint comes from another version")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**data)


PRESETS: dict[str, VLAConfig] = {
    "small": VLAConfig(),
    "tiny": replace(VLAConfig(), image_size=32, patch_size=8, vit_width=32, vit_depth=1, vit_heads=2, select_layer=2,
                    max_text_tokens=16, head_width=64, head_hidden=64, dit_depth=2, dit_heads=2,
                    vl_self_attention_depth=1, future_tokens=2),
}
