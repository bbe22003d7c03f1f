"""How much GPU memory and time each fine-tuning setting costs, before you rent the GPU (GR00T's VRAM check).

    python -m training.probe_vram                              # small preset, batch 32, 24 GiB budget
    python -m training.probe_vram --preset tiny --device cpu --steps 1 --batch-size 4
    python -m training.probe_vram --budget-gb 12 --out outputs/probe_vram/vram_12g.md

Six settings, each a ``TuneConfig``: the frozen backbone GR00T defaults to, LoRA r16/r32 on the LLM, LoRA r16/r32 on
the LLM and the vision tower, and full fine-tuning. For each: trainable and total parameters, memory, seconds per
training step and the latency of one action chunk (batch 1, 4 Euler steps).

- On CUDA the memory is measured: the peak of ``torch.cuda.max_memory_allocated`` over ``--steps`` training steps
  after 2 warm-up steps (bf16 autocast, AdamW, gradient clipping: what ``training.finetune`` does) on random batches
  of the real shapes. It leaves out the CUDA context (about 0.5 GiB), which the allocator never sees.
- On CPU the memory is an estimate: fp32 parameters (4 B each) + gradients of the trainable ones (4 B) + AdamW's two
  moments (8 B per trainable), plus the activations autograd keeps for the backward pass, measured by summing the
  tensors one forward pass saves (fp32 on CPU; bf16 autocast on a GPU keeps roughly half of that).

The recommendation is the setting with the most trainable parameters whose memory fits ``--budget-gb`` (GiB, as GPU
cards are sold). Writes ``--out`` (markdown; default ``outputs/probe_vram/vram.md``, git-ignored) and a .csv and
.json beside it. Needs only torch, transformers and peft (no simulator, no datasets), so it runs on a bare GPU box.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm import tqdm

from eval.config_cli import add_options, defaults_from, from_args
from policies.vla.config import PRESETS, VLAConfig
from policies.vla.model import VLA
from policies.vla.normalize import NormStats
from policies.vla.runtime import RuntimeConfigError, autocast, preset, resolve_device
from policies.vla.tuning import TuneConfig, apply_tuning, frozen_to_eval

GIB = 2**30
INFERENCE_STEPS = 4
LEAK_TOLERANCE = 2**27  # 128 MiB: cuBLAS keeps its workspaces (~64 MiB on an H100) after the first setting

# The benchmark's instructions (so the token counts are real), written out rather than imported: eval/ pulls in
# leisaac_tasks, gymnasium and yaml, which a bare GPU box does not have.
TASK_TEXTS = ("pick up the yellow cheese and put it into the white plate",
              "pick up the bread and put it into the white plate",
              "do not pick up the cheese",
              "place the yellow cheese onto the plate")

TUNINGS: tuple[tuple[str, TuneConfig], ...] = (
    ("frozen backbone (GR00T default)", TuneConfig()),
    ("LLM LoRA r16", TuneConfig(tune_llm=True, lora_rank=16)),
    ("LLM LoRA r32", TuneConfig(tune_llm=True, lora_rank=32)),
    ("LLM+vision LoRA r16", TuneConfig(tune_llm=True, tune_visual=True, lora_rank=16)),
    ("LLM+vision LoRA r32", TuneConfig(tune_llm=True, tune_visual=True, lora_rank=32)),
    ("full", TuneConfig(tune_llm=True, tune_visual=True, tune_projector=True, tune_diffusion_model=True, lora_rank=0)),
)

# Plausible LeRobot-unit ranges (degrees, gripper 0-100): the normaliser only needs finite, non-degenerate bounds.
SYNTHETIC_NORM = NormStats(state_min=(-100.0,) * 5 + (0.0,), state_max=(100.0,) * 5 + (100.0,),
                           action_min=(-20.0,) * 5 + (0.0,), action_max=(20.0,) * 5 + (100.0,))


class ProbeError(ValueError):
    pass


@dataclass(frozen=True)
class ProbeConfig:
    preset: str = "small"
    batch_size: int = 32
    steps: int = 10  # timed training steps per setting, after the warm-up ones; 0 skips training (memory estimate only)
    budget_gb: float = 24.0
    out: Path = Path("outputs/probe_vram/vram.md")  # git-ignored: reports/ is tracked
    device: str = "auto"
    latency_runs: int = 20
    seed: int = 0
    warmup_steps: int = 2  # untimed training steps first: allocator growth, AdamW state, kernel selection
    latency_warmup: int = 3

    def __post_init__(self) -> None:
        preset(self.preset)  # a bad name fails here, with the choices
        if self.batch_size < 1:
            raise ProbeError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.steps < 0:
            raise ProbeError(f"--steps must be >= 0, got {self.steps}")
        if not self.budget_gb > 0:
            raise ProbeError(f"--budget-gb must be > 0, got {self.budget_gb}")
        if self.latency_runs < 0:
            raise ProbeError(f"--latency-runs must be >= 0, got {self.latency_runs}")
        if self.warmup_steps < 0 or self.latency_warmup < 0:
            raise ProbeError("warm-up counts must be >= 0")
        if Path(self.out).suffix != ".md":
            raise ProbeError(f"--out must name a .md file (the .csv and .json go beside it), got {self.out}")

    @property
    def model_config(self) -> VLAConfig:
        return replace(preset(self.preset), num_inference_steps=INFERENCE_STEPS)


@dataclass
class ProbeRow:
    name: str
    tune: dict[str, Any]
    trainable_params: int
    total_params: int
    static_gib: float  # analytic: fp32 params + grads + AdamW moments
    activation_gib: float  # tensors one forward pass saves for backward (measured)
    peak_gib: float | None = None  # CUDA only: measured peak over the training steps
    seconds_per_step: float | None = None
    latency_ms: float | None = None  # median predict_chunk, batch 1
    device: str = "cpu"

    @property
    def estimate_gib(self) -> float:
        return self.static_gib + self.activation_gib

    @property
    def memory_gib(self) -> float:
        """What the budget is checked against: the measured peak where there is one."""
        return self.peak_gib if self.peak_gib is not None else self.estimate_gib

    @property
    def memory_source(self) -> str:
        return "measured peak" if self.peak_gib is not None else "estimate"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "estimate_gib": self.estimate_gib, "memory_gib": self.memory_gib,
                "memory_source": self.memory_source}


@dataclass(frozen=True)
class Recommendation:
    row: ProbeRow | None
    message: str


@dataclass
class ProbeResult:
    config: ProbeConfig
    device: str
    device_name: str
    rows: list[ProbeRow] = field(default_factory=list)

    @property
    def recommendation(self) -> Recommendation:
        return recommend(self.rows, self.config.budget_gb)


# --- measuring ---------------------------------------------------------------------------------------------
def synthetic_batch(cfg: VLAConfig, batch_size: int, device: torch.device, generator: torch.Generator) -> dict:
    """Random data of exactly the training batch's shapes and dtypes (see training.data.collate)."""
    s, h = cfg.image_size, cfg.action_horizon
    batch: dict[str, Any] = {cam: torch.randint(0, 256, (batch_size, 3, s, s), dtype=torch.uint8, generator=generator)
                             for cam in cfg.cameras}
    state = torch.rand(batch_size, cfg.state_dim, generator=generator) * 200 - 100
    batch["state"] = state
    batch["actions"] = state[:, None] + torch.randn(batch_size, h, cfg.action_dim, generator=generator) * 5
    batch["action_mask"] = torch.ones(batch_size, h, dtype=torch.bool)
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["task"] = [TASK_TEXTS[i % len(TASK_TEXTS)] for i in range(batch_size)]
    return batch


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total), LoRA adapters included in both."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def static_bytes(trainable: int, total: int) -> int:
    """fp32 weights (autocast keeps fp32 masters) + fp32 grads + AdamW exp_avg and exp_avg_sq."""
    return 4 * total + 4 * trainable + 8 * trainable


def count_saved_bytes(forward: Callable[[], torch.Tensor], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the distinct tensors autograd keeps for backward while ``forward()`` runs (``exclude``: parameters).

    Counted per storage, so views of one buffer count once. The pack hook hands autograd a detached alias: handing
    back the tensor itself would tie a saved output to its own grad_fn, a reference cycle that keeps the whole
    graph (all its activations) alive after the forward pass.
    """
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # e.g. a tensor subclass without plain storage
            return t.detach()
        if storage.data_ptr() not in excluded:
            saved[storage.data_ptr()] = max(saved.get(storage.data_ptr(), 0), storage.nbytes())
        return t.detach()  # keeps the storage alive (addresses stay unique) without the cycle

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out  # no backward: the graph and everything it saved go now
    return sum(saved.values())


def saved_activation_bytes(model: VLA, tune: TuneConfig, batch: dict) -> int:
    """Activations one training forward pass keeps for backward. With a frozen backbone autograd records nothing
    inside it, which is exactly why that setting is cheap."""
    model.train()
    frozen_to_eval(model, tune)
    device = next(model.parameters()).device

    def forward() -> torch.Tensor:
        with autocast(device):
            return model(batch)

    return count_saved_bytes(forward, exclude=model.parameters())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(model: VLA, tune: TuneConfig, batch: dict, steps: int, device: torch.device,
                  warmup_steps: int = 2, on_step: Callable[[int, int], None] = lambda done, total: None,
                  fused: bool = False) -> float:
    """Mean seconds per optimizer step over ``steps`` steps after the warm-up ones; the loop of training.finetune
    (``fused``: its AdamW on CUDA)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=fused)

    def step() -> None:
        model.train()
        frozen_to_eval(model, tune)
        with autocast(device):
            loss = model(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    total = warmup_steps + steps
    for i in range(warmup_steps):
        step()
        on_step(i + 1, total)
    _sync(device)
    began = time.perf_counter()
    for i in range(steps):
        step()
        on_step(warmup_steps + i + 1, total)
    _sync(device)
    return (time.perf_counter() - began) / steps  # the optimizer state goes with this frame


def chunk_latency_ms(model: VLA, cfg: VLAConfig, runs: int, device: torch.device, seed: int,
                     warmup: int = 3, batch_size: int = 1) -> float:
    """Median wall time of predict_chunk on ``batch_size`` observations (one, as VLAPolicy runs it; many, as the
    batched grid does), eval mode, fp32."""
    generator = torch.Generator().manual_seed(seed)
    batch = synthetic_batch(cfg, batch_size, device, generator)
    noise = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    times = []
    for i in range(warmup + runs):
        _sync(device)
        began = time.perf_counter()
        model.predict_chunk(batch, noise)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times)


def probe_one(name: str, tune: TuneConfig, cfg: ProbeConfig, device: torch.device,
              phase: Callable[[str], None] = lambda what: None) -> ProbeRow:
    """``phase`` hears what runs now (a setting takes a minute or more on a CPU)."""
    model_cfg = cfg.model_config
    phase("building the model")
    torch.manual_seed(cfg.seed)
    model = VLA(model_cfg, SYNTHETIC_NORM, tune)
    apply_tuning(model, tune)
    trainable, total = count_parameters(model)
    row = ProbeRow(name, tune.to_dict(), trainable, total, static_bytes(trainable, total) / GIB, 0.0,
                   device=str(device))
    model.to(device)
    batch = synthetic_batch(model_cfg, cfg.batch_size, device, torch.Generator().manual_seed(cfg.seed))
    phase("counting activations")
    row.activation_gib = saved_activation_bytes(model, tune, batch) / GIB
    if cfg.steps:
        if device.type == "cuda":
            gc.collect()
            torch.cuda.reset_peak_memory_stats(device)
        row.seconds_per_step = time_training(model, tune, batch, cfg.steps, device, cfg.warmup_steps,
                                             on_step=lambda done, total: phase(f"training step {done}/{total}"))
        if device.type == "cuda":
            row.peak_gib = torch.cuda.max_memory_allocated(device) / GIB
    if cfg.latency_runs:
        phase(f"chunk latency ({cfg.latency_runs} runs)")
        row.latency_ms = chunk_latency_ms(model, model_cfg, cfg.latency_runs, device, cfg.seed, cfg.latency_warmup)
    del model, batch  # free before the next setting, so peaks do not stack up
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def run_probe(cfg: ProbeConfig, log: Callable[[str], None] = print, progress: bool = True) -> ProbeResult:
    device = resolve_device(cfg.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    result = ProbeResult(cfg, str(device), device_name)
    # One bar over the settings; its text says what the current one is doing (a CPU takes minutes in all).
    bar = tqdm(TUNINGS, desc="settings", unit="setting", disable=not progress, dynamic_ncols=True)

    def say(line: str) -> None:
        with tqdm.external_write_mode():  # a printed line must not run into the bar
            log(line)

    for name, tune in bar:
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        row = probe_one(name, tune, cfg, device,
                        phase=lambda what: bar.set_postfix_str(f"{name}: {what}", refresh=True))
        if device.type == "cuda" and torch.cuda.memory_allocated(device) > before + LEAK_TOLERANCE:
            # Anything left over would sit under the next setting's peak and inflate it.
            say(f"warning: {name} left {(torch.cuda.memory_allocated(device) - before) / GIB:.2f} GiB allocated; "
                f"later peaks include it")
        result.rows.append(row)
        say(f"{name:32s} trainable {row.trainable_params:>11,} / {row.total_params:,}  "
            f"{row.memory_source} {row.memory_gib:.2f} GiB"
            + (f"  {row.seconds_per_step:.3f} s/step" if row.seconds_per_step is not None else "")
            + (f"  chunk {row.latency_ms:.1f} ms" if row.latency_ms is not None else ""))
    return result


# --- deciding and reporting ------------------------------------------------------------------------------------
def recommend(rows: list[ProbeRow], budget_gib: float) -> Recommendation:
    """The setting with the most trainable parameters that fits; ties go to the smaller memory."""
    fitting = [r for r in rows if r.memory_gib <= budget_gib]
    if not fitting:
        smallest = min(rows, key=lambda r: r.memory_gib)
        return Recommendation(None, f"none fits in {budget_gib:g} GiB: even '{smallest.name}' needs "
                                    f"{smallest.memory_gib:.2f} GiB ({smallest.memory_source}); lower --batch-size "
                                    f"or use a larger GPU")
    best = max(fitting, key=lambda r: (r.trainable_params, -r.memory_gib))
    if not best.tune["tune_llm"]:
        why = "the only setting that fits, but the language model stays frozen, so instruction features stay as " \
              "pretrained (the seed's failure mode)"
    elif best.tune["lora_rank"]:
        why = "the most trainable capacity that fits; the adapters let instruction features change while the " \
              "pretrained weights stay put"
    else:
        why = "everything fits, so every weight can adapt, language model and vision tower included"
    return Recommendation(best, f"**{best.name}**: {best.trainable_params:,} trainable parameters in "
                                f"{best.memory_gib:.2f} GiB ({best.memory_source}) of {budget_gib:g} GiB; {why}.")


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _method(result: ProbeResult) -> str:
    cfg = result.config
    if result.device.startswith("cuda") and cfg.steps:
        return (f"Training: {cfg.steps} timed steps after {cfg.warmup_steps} warm-up steps, bf16 autocast, AdamW, "
                f"random batches; memory is the measured peak.")
    if result.device.startswith("cuda"):
        return ("--steps 0, so memory is an **estimate**: fp32 params + grads + AdamW, plus the activations one "
                "bf16-autocast forward pass saves.")
    return ("Memory is an **estimate** (no GPU measured it): fp32 params + grads + AdamW, plus the activations one "
            "forward pass saves in fp32, an upper bound for a bf16-autocast GPU run, which keeps about half as much.")


def to_markdown(result: ProbeResult) -> str:
    cfg, rec = result.config, result.recommendation
    measured = result.device.startswith("cuda")
    lines = [
        f"# VRAM probe: `{cfg.preset}` preset, batch {cfg.batch_size}",
        "",
        f"Device: {result.device_name} (`{result.device}`), torch {torch.__version__}. " + _method(result),
        "",
        "| setting | trainable params | total params | trainable % | params+grads+AdamW (GiB) | saved activations "
        "(GiB) | memory (GiB) | source | s/step | chunk latency (ms) | fits |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in result.rows:
        fits = "yes" if r.memory_gib <= cfg.budget_gb else "no"
        lines.append(f"| {r.name} | {r.trainable_params:,} | {r.total_params:,} | "
                     f"{100 * r.trainable_params / r.total_params:.2f} | {r.static_gib:.3f} | {r.activation_gib:.3f} | "
                     f"{r.memory_gib:.3f} | {r.memory_source} | {_fmt(r.seconds_per_step, '.3f')} | "
                     f"{_fmt(r.latency_ms, '.1f')} | {fits} |")
    lines += [
        "",
        f"Recommendation for a {cfg.budget_gb:g} GiB budget: {rec.message}",
        "",
        "Notes:",
        "- *params+grads+AdamW* is analytic: 4 B per parameter, plus 4 B (gradient) and 8 B (AdamW moments) per "
        "trainable one.",
        "- *saved activations* sums the distinct tensors autograd keeps from one forward pass at this batch size "
        f"({'bf16 autocast' if measured else 'fp32'}; parameters excluded).",
        "- *memory* is the measured `torch.cuda.max_memory_allocated` peak on CUDA (the CUDA context, ~0.5 GiB, "
        "comes on top), else params+grads+AdamW + saved activations.",
        f"- *chunk latency*: median of {cfg.latency_runs} `predict_chunk` calls (batch 1, {INFERENCE_STEPS} Euler "
        f"steps, fp32, after {cfg.latency_warmup} warm-ups){', CUDA-synchronised' if measured else ''}.",
    ]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("name", "trainable_params", "total_params", "static_gib", "activation_gib", "estimate_gib", "peak_gib",
              "memory_gib", "memory_source", "seconds_per_step", "latency_ms", "device")


def write_reports(result: ProbeResult) -> list[Path]:
    md = Path(result.config.out)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(to_markdown(result))
    with open(md.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in result.rows:
            writer.writerow(r.to_dict())
    rec = result.recommendation
    payload = {"settings": {**asdict(result.config), "out": str(result.config.out)}, "device": result.device,
               "device_name": result.device_name, "torch": torch.__version__,
               "rows": [r.to_dict() for r in result.rows],
               "recommendation": {"name": rec.row.name if rec.row else None, "message": rec.message}}
    md.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    return [md, md.with_suffix(".csv"), md.with_suffix(".json")]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.probe_vram", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help=f"model size: {', '.join(PRESETS)}")
    add_options(p, ProbeConfig, "batch_size steps budget_gb",
                steps="timed training steps per setting (0: estimate only)", budget_gb="GPU memory to fit in, GiB")
    p.add_argument("--out", type=Path,
                   help=f"markdown report; the .csv and .json go beside it (default {ProbeConfig.out}, git-ignored)")
    add_options(p, ProbeConfig, "device latency_runs seed", device="auto, cpu, cuda or cuda:N",
                latency_runs="predict_chunk calls to take the median of (0: skip)")
    defaults_from(p, ProbeConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        cfg = from_args(ProbeConfig, a)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # "pooler weights not used" is expected: GR00T reads hidden states
        result = run_probe(cfg)
    except (ProbeError, RuntimeConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = write_reports(result)
    print(f"recommendation: {result.recommendation.message}")
    print(f"wrote {', '.join(map(str, paths[:-1]))} and {paths[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
