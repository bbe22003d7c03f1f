"""Speed benchmark for the embedded backend: env steps/s with and without cameras, grid episodes/min, and
scripted demo generation (frames/s, demos/min, dataset size per 100 demos).

    python -m training.embedded_bench                 # prints a markdown table; paste it into reports/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.run_matrix import MatrixConfig, run
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.scenarios import SEED_SCENARIOS
from training.demos.generate import GenerateConfig, generate


def env_steps_per_second(cameras: tuple[str, ...], image_size: int, steps: int) -> float:
    env = SandwichEnv(cameras=cameras, image_size=image_size)
    env.reset(seed=0, options={"scenario": "H,H"})
    home = np.array(env.scene.robot.home_qpos)
    wiggle = np.array([0.3, 0.2, -0.2, 0.2, 0.3, 0.3])
    env.step(home)  # first render allocates the GL context
    start = time.perf_counter()
    for i in range(steps):
        env.step(home + wiggle * np.sin(i / 10))
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def grid_episodes_per_minute(seeds: int, workers: int = 1) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as out:
        cfg = MatrixConfig(scenarios=SEED_SCENARIOS, families=(), seeds=tuple(range(seeds)), out=Path(out),
                           workers=workers)
        n = len(cfg.episodes())
        start = time.perf_counter()
        run(cfg, progress=False)
        return n / ((time.perf_counter() - start) / 60), n


def demo_generation(image_size: int, episodes: int, workers: int = 1) -> dict[str, float]:
    """Both cameras recorded, videos encoded, dataset finalized and read back: the whole `generate` path. With
    ``workers`` > 1, 2 envs per worker process step in parallel (``--num-envs 2W --workers W``)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = GenerateConfig(recipe="disambiguating", out=Path(out) / "d", episodes=episodes, image_size=image_size,
                             num_envs=2 * workers if workers > 1 else 1, workers=workers)
        start = time.perf_counter()
        (tally,) = generate(cfg, progress=False)
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (Path(out) / "d").rglob("*") if f.is_file())
    return {"frames/s": tally.frames / seconds, "demos/min": tally.kept / (seconds / 60),
            "MB per 100 demos": size / tally.kept * 100 / 1e6, "frames per demo": tally.frames / tally.kept}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--grid-seeds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2,
                   help="also time the grid and demo generation with this many worker processes")
    p.add_argument("--demos", type=int, default=6, help="demos generated for the demo rows (0 skips them)")
    a = p.parse_args()
    rows = [
        ("env steps/s, no cameras", env_steps_per_second((), a.image_size, a.steps * 4)),
        (f"env steps/s, front only {a.image_size}²", env_steps_per_second(("front",), a.image_size, a.steps)),
        (f"env steps/s, front + wrist {a.image_size}²", env_steps_per_second(("front", "wrist"), a.image_size, a.steps)),
    ]
    for workers in sorted({1, a.workers}):
        per_min, n = grid_episodes_per_minute(a.grid_seeds, workers)
        rows.append((f"grid episodes/min (both baselines, 8 cells × 3 seed instructions, {n} episodes, "
                     f"--workers {workers})", per_min))
    for workers in sorted({1, a.workers}) if a.demos else ():
        how = f", --num-envs {2 * workers} --workers {workers}" if workers > 1 else ""
        for name, value in demo_generation(a.image_size, a.demos, workers).items():
            rows.append((f"demo generation, front + wrist {a.image_size}², {a.demos} demos{how}: {name}", value))
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:,.1f} |")


if __name__ == "__main__":
    main()
