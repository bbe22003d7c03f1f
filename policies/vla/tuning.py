"""What fine-tuning may change: Isaac-GR00T N1.5's ``tune_*`` flags, plus LoRA (through peft) on tuned backbone parts.

Each flag covers what it covers in GR00T (``EagleBackbone`` / ``FlowmatchingActionHead.set_trainable_parameters``):
- ``tune_llm``: the language model.
- ``tune_visual``: the vision tower and the MLP1 image projector.
- ``tune_projector``: the head's state encoder, action encoder, action decoder and position embedding.
- ``tune_diffusion_model``: the DiT (timestep embedder, blocks, output norm).
- Always trained, as in GR00T: the map from LLM width to the head, the head's vlln + vl_self_attention and its
  future tokens.
With ``lora_rank > 0`` a tuned LLM or vision tower gets LoRA adapters instead: only the adapters train.
Frozen modules are held in eval mode while training (no dropout), as GR00T does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

LLM_LORA_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
VISION_LORA_TARGETS = ["qkv", "proj", "fc1", "fc2"]


class TuningError(ValueError):
    pass


@dataclass(frozen=True)
class TuneConfig:
    tune_llm: bool = False
    tune_visual: bool = False
    tune_projector: bool = True
    tune_diffusion_model: bool = True
    lora_rank: int = 0
    lora_alpha: int = 16
    lora_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise TuningError(f"--lora-rank must be >= 0, got {self.lora_rank}")
        if self.lora_rank and not (self.tune_llm or self.tune_visual):
            raise TuningError("--lora-rank > 0 asks for LoRA, but its targets (the LLM, the vision tower) are both "
                              "frozen: add --tune-llm and/or --tune-visual, or set --lora-rank 0")

    @property
    def lora_targets(self) -> tuple[str, ...]:
        if not self.lora_rank:
            return ()
        return tuple(name for name, on in (("llm", self.tune_llm), ("visual", self.tune_visual)) if on)

    def to_dict(self) -> dict:
        return asdict(self)


def _components(model: nn.Module) -> dict[str, list[nn.Module]]:
    backbone, head = model.backbone, model.action_head
    return {
        "llm": [backbone.llm],
        "visual": [backbone.vision, backbone.projector],
        "projector": [head.state_encoder, head.action_encoder, head.action_decoder, head.position_embedding],
        "diffusion_model": [head.timestep_embedder, head.blocks, head.norm_out, head.ada_out],
        "always": [backbone.to_head, head.vlln, head.vl_self_attention, head.future_tokens],
    }


def _flags(tune: TuneConfig) -> dict[str, bool]:
    return {"llm": tune.tune_llm, "visual": tune.tune_visual, "projector": tune.tune_projector,
            "diffusion_model": tune.tune_diffusion_model, "always": True}


def inject_lora(model: nn.Module, tune: TuneConfig) -> None:
    """Add peft LoRA layers to the tuned backbone parts. Structure only: run before loading a LoRA checkpoint."""
    if not tune.lora_rank:
        return
    from peft import LoraConfig, inject_adapter_in_model

    for target in tune.lora_targets:
        module = model.backbone.llm if target == "llm" else model.backbone.vision
        names = LLM_LORA_TARGETS if target == "llm" else VISION_LORA_TARGETS
        inject_adapter_in_model(LoraConfig(r=tune.lora_rank, lora_alpha=tune.lora_alpha,
                                           lora_dropout=tune.lora_dropout, target_modules=names), module)


def apply_tuning(model: nn.Module, tune: TuneConfig) -> list[str]:
    """Set requires_grad per flag (after ``inject_lora``); returns GR00T-style "Tune ..." report lines."""
    flags = _flags(tune)
    for name, modules in _components(model).items():
        for module in modules:
            for pname, p in module.named_parameters():
                if name in tune.lora_targets:
                    p.requires_grad = "lora_" in pname  # the adapters train; pretrained weights and MLP1 don't
                else:
                    p.requires_grad = flags[name]
    return [f"Tune backbone llm: {tune.tune_llm}" + (f" (LoRA r={tune.lora_rank})" if "llm" in tune.lora_targets else ""),
            f"Tune backbone vision tower: {tune.tune_visual}"
            + (f" (LoRA r={tune.lora_rank})" if "visual" in tune.lora_targets else ""),
            f"Tune action head projector: {tune.tune_projector}",
            f"Tune action head diffusion model: {tune.tune_diffusion_model}"]


def frozen_to_eval(model: nn.Module, tune: TuneConfig) -> None:
    """Call after ``model.train()``: modules with nothing to learn go back to eval mode."""
    flags = _flags(tune)
    for name, modules in _components(model).items():
        if not flags[name]:
            for module in modules:
                module.eval()


def parameter_report(model: nn.Module) -> str:
    """The exact line Isaac-GR00T prints."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"trainable params: {trainable} || all params: {total} || trainable%: {100 * trainable / total:.4f}"
