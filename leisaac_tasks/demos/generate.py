"""Scripted demo generation: run the language-following expert over a recipe's cells, keep the successes.

    python -m leisaac_tasks.generate --recipe seed --episodes 50 --out datasets/seed
    python -m leisaac_tasks.generate --recipe seed --episodes 80 --out datasets/seed --resume   # add 30 more
    python -m leisaac_tasks.generate --recipe seed --episodes 500 --out datasets/seed --backend isaaclab --num-envs 256

Each attempt draws a fresh layout (the spec's jitter) and a noisy expert (speed, approach height, grasp height,
gripper timing), records every control step, and is judged by eval's oracle; only demos the oracle accepts are
kept. Attempt k of a dataset always uses layout seed ``--seed + k``, so runs replay and resume exactly.
With ``--num-envs N`` (or ``--backend isaaclab``) attempts run N at a time on a vectorized backend
(leisaac_tasks/demos/vector_generate.py) and the datasets and journals come out the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eval import oracle
from leisaac_tasks.console import LIBRARIES_LOG, library_log, quiet_libraries
from leisaac_tasks.demos.dataset import CAMERAS, Attempt, DatasetError, DemoWriter, load_dataset, read_journal
from leisaac_tasks.demos.recipes import Cell, DatasetPlan, RecipeError, RECIPES, get_recipe
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.outcomes import EpisodeOutcome
from policies.scripted import ScriptedExpert

SETTLE_FRAMES = 10  # recorded after the expert is done, holding still while the slice comes to rest


@dataclass(frozen=True)
class GenerateConfig:
    recipe: str
    out: Path
    episodes: int = 50  # kept demos per dataset of the recipe
    image_size: int = 224
    seed: int = 0
    resume: bool = False
    max_steps: int = 360  # an attempt longer than this is rejected
    max_attempts_factor: float = 3.0  # stop with an error if fewer than 1 in 3 attempts succeed
    checkpoint_every: int = 10
    backend: str = "mujoco"
    num_envs: int = 1  # > 1 (or backend "isaaclab"): attempts run in parallel on a vectorized backend

    @property
    def vectorized(self) -> bool:
        return self.num_envs > 1 or self.backend == "isaaclab"

    def validate(self) -> None:
        get_recipe(self.recipe)
        if self.num_envs < 1:
            raise RecipeError(f"--num-envs must be at least 1, got {self.num_envs}")
        if self.vectorized:
            from leisaac_tasks.vec_env import VEC_BACKENDS

            if self.backend not in VEC_BACKENDS:
                raise RecipeError(f"no vectorized {self.backend!r} backend for --num-envs {self.num_envs}; use "
                                  f"--backend {' or --backend '.join(sorted(VEC_BACKENDS))}")
        else:
            from leisaac_tasks.backends import BACKENDS

            if self.backend not in BACKENDS:
                raise RecipeError(f"unknown backend {self.backend!r}; use --backend "
                                  f"{' or --backend '.join(sorted(BACKENDS))} or --backend isaaclab --num-envs N")
        if self.episodes < 1:
            raise RecipeError(f"--episodes must be at least 1, got {self.episodes}")
        if self.image_size < 16:
            raise RecipeError(f"--image-size must be at least 16 pixels, got {self.image_size}")
        if self.out.exists() and not self.resume:
            raise DatasetError(f"{self.out} already exists; pass --resume to continue it, or choose another --out")


@dataclass
class DatasetTally:
    name: str
    kept: int = 0
    attempts: int = 0
    frames: int = 0
    wall_seconds: float = 0.0
    rejected_cells: dict[str, int] = field(default_factory=dict)

    @property
    def rejection_rate(self) -> float:
        return 1.0 - self.kept / self.attempts if self.attempts else 0.0


def judge_attempt(cell: Cell, layout_seed: int, attempt: int, outcome: EpisodeOutcome, steps: int,
                  settled: bool) -> Attempt:
    """The journal entry of a finished expert episode: kept only if it settled and the oracle accepts it."""
    success = settled and oracle.judge(oracle.expected(cell.scenario, cell.instruction.intent), outcome)
    return Attempt(attempt=attempt, source="scripted", scenario=cell.scenario.label, instruction=cell.instruction.text,
                   intent=str(cell.instruction.intent), layout_seed=layout_seed, success=success,
                   outcome=outcome.label, frames=steps, behaviour=outcome.behaviour)


def attempt_budget(cfg: GenerateConfig, first: int) -> int:
    """Attempts stop (with an error) at this index."""
    return first + int(np.ceil(cfg.episodes * cfg.max_attempts_factor))


def out_of_attempts(name: str, root: Path, kept: int, episodes: int, attempts: int) -> RuntimeError:
    return RuntimeError(f"{name}: only {kept} of {episodes} demos after {attempts} attempts; the expert keeps "
                        f"failing (see {root}/meta/chefmate_attempts.jsonl for the rejected cells)")


def record_attempt(env: SandwichEnv, expert: ScriptedExpert, writer: DemoWriter, cell: Cell, layout_seed: int,
                   attempt: int, max_steps: int) -> Attempt:
    """Run one expert episode, recording each step, and judge it. The caller keeps or discards it."""
    text = cell.instruction.text
    obs, info = env.reset(seed=layout_seed, options={"scenario": cell.scenario, "instruction": text})
    expert.reset(text, layout_seed)
    steps, settle = 0, SETTLE_FRAMES
    while steps < max_steps and settle > 0:
        action = expert.act(obs, info)
        writer.add_frame(obs, action, text)
        obs, _, _, _, info = env.step(action)
        steps += 1
        if expert.done:
            settle -= 1
    return judge_attempt(cell, layout_seed, attempt, env.outcome(), steps, settle == 0)


def generate_dataset(cfg: GenerateConfig, plan: DatasetPlan, root: Path, env: SandwichEnv,
                     progress: bool = True) -> DatasetTally:
    expert = ScriptedExpert(noise=True)
    start = time.perf_counter()
    size = (cfg.image_size, cfg.image_size)
    with DemoWriter(root, size, fps=int(env.scene.control_hz), resume=cfg.resume,
                    checkpoint_every=cfg.checkpoint_every) as writer:
        first = writer.next_attempt
        budget = attempt_budget(cfg, first)
        bar = tqdm(total=cfg.episodes, initial=min(writer.episodes, cfg.episodes), desc=f"{plan.name}",
                   unit="demo", disable=not progress)
        attempt, rejected = first, 0
        while writer.episodes < cfg.episodes:
            if attempt >= budget:
                raise out_of_attempts(plan.name, root, writer.episodes, cfg.episodes, attempt)
            cell = plan.cells[writer.episodes % len(plan.cells)]  # kept demos stay balanced across cells
            record = record_attempt(env, expert, writer, cell, cfg.seed + attempt, attempt, cfg.max_steps)
            record.recipe, record.part = cfg.recipe, plan.name
            if record.success:
                writer.keep(record)
                bar.update(1)
            else:
                writer.discard(record)
                rejected += 1
            attempt += 1
            bar.set_postfix(attempts=attempt - first, rejected=rejected)
        bar.close()
    return tally_journal(plan.name, root, time.perf_counter() - start)


def tally_journal(name: str, root: Path, wall_seconds: float) -> DatasetTally:
    tally = DatasetTally(name, wall_seconds=wall_seconds)
    for a in read_journal(root):
        tally.attempts += 1
        if a.episode_index is not None:
            tally.kept += 1
            tally.frames += a.frames
        else:
            key = f"{a.scenario} | {a.instruction}"
            tally.rejected_cells[key] = tally.rejected_cells.get(key, 0) + 1
    return tally


def verify_readback(root: Path) -> int:
    """Load a written dataset with LeRobot and decode its first and last frames; returns its frame count."""
    ds = load_dataset(root)
    for index in (0, len(ds) - 1):
        item = ds[index]
        for key in ds.meta.video_keys:
            if item[key].shape[0] != 3:
                raise DatasetError(f"{root}: {key} decoded with shape {tuple(item[key].shape)}")
    return len(ds)


def generate(cfg: GenerateConfig, progress: bool = True) -> list[DatasetTally]:
    cfg.validate()  # before anything is created on disk
    with library_log(cfg.out / LIBRARIES_LOG):  # LeRobot's Python logging: a file, not the console
        return _generate(cfg, progress)


def _generate(cfg: GenerateConfig, progress: bool) -> list[DatasetTally]:
    recipe = get_recipe(cfg.recipe)
    if cfg.vectorized:
        from leisaac_tasks.demos.vector_generate import generate_dataset_vectorized
        from leisaac_tasks.vec_env import make_vec_env

        try:
            env = make_vec_env(cfg.backend, cfg.num_envs, cameras=CAMERAS, image_size=cfg.image_size)
        except ModuleNotFoundError as exc:  # Isaac Lab is an optional install (Python 3.12, NVIDIA GPU)
            raise RecipeError(f"--backend {cfg.backend} needs the {exc.name!r} package, which is not installed; "
                              f"install Isaac Lab as the README's Isaac Lab section says, or use --backend mujoco")
        run_dataset = generate_dataset_vectorized
    else:
        env = SandwichEnv(backend=cfg.backend, cameras=CAMERAS, image_size=cfg.image_size)
        run_dataset = generate_dataset
    tallies = []
    try:
        for plan in recipe.datasets:
            root = cfg.out / plan.name
            tally = run_dataset(cfg, plan, root, env, progress)
            verify_readback(root)
            tallies.append(tally)
    finally:
        env.close()
    summary = {t.name: {"kept": t.kept, "attempts": t.attempts, "rejection_rate": round(t.rejection_rate, 4),
                        "frames": t.frames, "wall_seconds_this_run": round(t.wall_seconds, 1),
                        "rejected_cells": t.rejected_cells} for t in tallies}
    (cfg.out / "generation.json").write_text(json.dumps({"recipe": cfg.recipe, "datasets": summary}, indent=2))
    return tallies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leisaac_tasks.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help=f"one of: {', '.join(RECIPES)}")
    parser.add_argument("--out", type=Path, required=True, help="output folder (one dataset per recipe part)")
    parser.add_argument("--episodes", type=int, default=50, help="kept demos per dataset (default 50)")
    parser.add_argument("--image-size", type=int, default=224, help="square camera images, pixels (default 224)")
    parser.add_argument("--seed", type=int, default=0, help="attempt k uses layout seed SEED + k")
    parser.add_argument("--max-steps", type=int, default=360)
    parser.add_argument("--checkpoint-every", type=int, default=10,
                        help="finalize the dataset files every N kept demos (a hard kill loses at most N)")
    parser.add_argument("--backend", default="mujoco", help="simulator: mujoco (default) or isaaclab (vectorized)")
    parser.add_argument("--num-envs", type=int, default=1,
                        help="run this many attempts at once on the vectorized backend (default 1: one env)")
    parser.add_argument("--resume", action="store_true", help="continue an existing --out up to --episodes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    cfg = GenerateConfig(recipe=args.recipe, out=args.out, episodes=args.episodes, image_size=args.image_size,
                         seed=args.seed, resume=args.resume, max_steps=args.max_steps,
                         checkpoint_every=args.checkpoint_every, backend=args.backend, num_envs=args.num_envs)
    try:
        with quiet_libraries():  # no x264 statistics, "Map:" bars or known deprecation warnings between the bars
            tallies = generate(cfg, progress=not args.quiet)
    except (RecipeError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\n{'dataset':<22}{'kept':>6}{'attempts':>10}{'rejected':>10}{'frames':>9}")
    for t in tallies:
        print(f"{t.name:<22}{t.kept:>6}{t.attempts:>10}{t.rejection_rate:>10.1%}{t.frames:>9}")
    datasets = ", ".join(f"{cfg.out / t.name}/" for t in tallies)
    print(f"wrote {datasets} and {cfg.out / 'generation.json'} (the rejected cells); library messages in "
          f"{cfg.out / LIBRARIES_LOG}")
    return 0
