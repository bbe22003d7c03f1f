"""What fine-tuning may change: Isaac-GR00T N1.5's ``tune_*`` flags, plus LoRA (through peft) on tuned backbone parts.

Each flag covers what it covers in GR00T (``EagleBackbone`` / ``FlowmatchingActionHead.set_trainable_parameters``):
- ``tune_llm``: the language model.
- ``tune_visual``: the vision tower and the MLP1 image projector.
- ``tune_projector``: the head's state encoder, action encoder, action decoder and position embedding.
- ``tune_diffusion_model``: the DiT (timestep embedder, blocks, output norm).
- Always trained, as in GR00T: the map from LLM width to the head, the head's vlln + vl_self_attention and its
  future tokens.
Frozen modules are held in eval mode while training (no dropout), as GR00T does.

LoRA (``lora_rank > 0``) has three modes (``TuneConfig.lora_mode``):
- ``action_head``: Isaac-GR00T N1.5's ``--lora-rank R`` (``gr00t/utils/peft.py`` ``get_lora_model`` with
  ``action_head_only=True``): adapters on every attention ``to_q/to_k/to_v`` of the action head (the DiT and
  vl_self_attention), then peft freezes *every other parameter*, whatever the ``tune_*`` flags say. So turning
  ``--tune-diffusion-model`` on or off changes nothing; the trainable-params line stays the same.
- ``full_model``: N1.5's ``--lora-full-model``: the same, plus the backbone's q/k/v projections (the LLM's
  query/key/value, the ViT's fused qkv). Everything else is frozen too.
- ``backbone`` (ChefMate's, not upstream's): with ``--tune-llm``/``--tune-visual``, a tuned LLM or vision tower gets
  adapters instead of full tuning, and the head follows its flags. Upstream N1.5 would instead apply action-head
  LoRA and freeze that tuned backbone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

LLM_LORA_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
VISION_LORA_TARGETS = ["qkv", "proj", "fc1", "fc2"]
# Isaac-GR00T N1.5 get_lora_model: Linear layers named like q/k/v projections (to_q/to_k/to_v in the DiT).
HEAD_QKV_TARGETS = ["to_q", "to_k", "to_v"]
LLM_QKV_TARGETS = ["query", "key", "value"]  # BERT's names for q_proj/k_proj/v_proj
VISION_QKV_TARGETS = ["qkv"]  # the ViT projects q, k and v with one fused Linear


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
    lora_full_model: bool = False

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise TuningError(f"--lora-rank must be >= 0, got {self.lora_rank}")
        if self.lora_full_model and not self.lora_rank:
            raise TuningError("--lora-full-model puts LoRA on the whole model, but --lora-rank is 0: "
                              "pass --lora-rank R (e.g. 32), or drop --lora-full-model")

    @property
    def lora_mode(self) -> str:
        """``none``, ``action_head`` (N1.5's --lora-rank), ``full_model`` (N1.5's --lora-full-model) or
        ``backbone`` (LoRA in place of tuning the LLM/ViT in full)."""
        if not self.lora_rank:
            return "none"
        if self.lora_full_model:
            return "full_model"
        return "backbone" if (self.tune_llm or self.tune_visual) else "action_head"

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """The components that get adapters: ``llm``, ``visual``, ``head``."""
        mode = self.lora_mode
        if mode == "backbone":
            return tuple(name for name, on in (("llm", self.tune_llm), ("visual", self.tune_visual)) if on)
        return {"none": (), "action_head": ("head",), "full_model": ("head", "llm", "visual")}[mode]

    @property
    def adapters_only(self) -> bool:
        """N1.5's modes: peft freezes everything but the adapters, overriding the tune flags."""
        return self.lora_mode in ("action_head", "full_model")

    def override_warning(self) -> str | None:
        """Why the tune flags don't matter under N1.5's LoRA, in one line; None where they do."""
        if not self.adapters_only:
            return None
        overridden = [flag for flag, on in (("--tune-llm", self.tune_llm), ("--tune-visual", self.tune_visual),
                                            ("--tune-projector", self.tune_projector),
                                            ("--tune-diffusion-model", self.tune_diffusion_model)) if on]
        where = "the action head's and the backbone's" if self.lora_full_model else "the action head's"
        return (f"warning: --lora-rank {self.lora_rank} puts LoRA on {where} attention q/k/v only, as Isaac-GR00T "
                f"N1.5 does, and peft then freezes every other parameter: "
                f"{', '.join(overridden) if overridden else 'the tune flags'} change nothing here, and the "
                f"trainable-params count is the same with or without them. For LoRA on the LLM/ViT, add "
                f"--tune-llm/--tune-visual without --lora-full-model; to tune the head in full, use --lora-rank 0.")

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


def _lora_sites(model: nn.Module, tune: TuneConfig) -> list[tuple[nn.Module, list[str]]]:
    """(module, target layer names) pairs for the config's LoRA mode."""
    modules = {"llm": model.backbone.llm, "visual": model.backbone.vision, "head": model.action_head}
    if tune.adapters_only:  # N1.5: attention q/k/v projections only
        names = {"llm": LLM_QKV_TARGETS, "visual": VISION_QKV_TARGETS, "head": HEAD_QKV_TARGETS}
    else:
        names = {"llm": LLM_LORA_TARGETS, "visual": VISION_LORA_TARGETS}
    return [(modules[t], names[t]) for t in tune.lora_targets]


def inject_lora(model: nn.Module, tune: TuneConfig) -> None:
    """Add peft LoRA layers where the config's mode puts them. Structure only: run before loading a checkpoint."""
    if not tune.lora_rank:
        return
    from peft import LoraConfig, inject_adapter_in_model

    for module, names in _lora_sites(model, tune):
        inject_adapter_in_model(LoraConfig(r=tune.lora_rank, lora_alpha=tune.lora_alpha,
                                           lora_dropout=tune.lora_dropout, target_modules=names), module)


def apply_tuning(model: nn.Module, tune: TuneConfig) -> list[str]:
    """Set requires_grad per flag (after ``inject_lora``); returns GR00T-style "Tune ..." report lines."""
    if tune.adapters_only:  # peft's get_peft_model: only the adapters train, whatever the flags said
        for pname, p in model.named_parameters():
            p.requires_grad = "lora_" in pname
    else:
        flags = _flags(tune)
        for name, modules in _components(model).items():
            for module in modules:
                for pname, p in module.named_parameters():
                    if name in tune.lora_targets:
                        p.requires_grad = "lora_" in pname  # the adapters train; pretrained weights and MLP1 don't
                    else:
                        p.requires_grad = flags[name]
    lora = f" (LoRA r={tune.lora_rank})"
    frozen = " (frozen by LoRA)" if tune.adapters_only else ""
    return [f"Tune backbone llm: {tune.tune_llm}" + (lora if "llm" in tune.lora_targets else frozen),
            f"Tune backbone vision tower: {tune.tune_visual}" + (lora if "visual" in tune.lora_targets else frozen),
            f"Tune action head projector: {tune.tune_projector}" + frozen,
            f"Tune action head diffusion model: {tune.tune_diffusion_model}"
            + (lora.replace(")", ", attention q/k/v)") if "head" in tune.lora_targets else "")]


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
