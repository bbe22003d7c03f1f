"""Scripted demo generation: run the language-following expert over a recipe's cells, keep the successes.

    chefmate-generate --recipe seed --episodes 50 --out datasets/seed
    chefmate-generate --recipe seed --episodes 80 --out datasets/seed --resume   # add 30 more
    chefmate-generate --recipe seed --episodes 500 --out datasets/seed --backend isaaclab --num-envs 256
    chefmate-generate --recipe seed --episodes 500 --out datasets/seed --num-envs 32 --workers 8 --plan-workers 8

Each attempt draws a fresh layout (the spec's jitter) and a noisy expert (speed, approach height, grasp height,
gripper timing), records every control step, and is judged by the task's oracle; only demos the oracle accepts are
kept. Attempt k of a dataset always uses layout seed ``--seed + k``, so runs replay and resume exactly.
With ``--num-envs N`` (or ``--backend isaaclab``) attempts run N at a time on a vectorized backend
(training/demos/vector_generate.py) and the datasets and journals come out the same; ``--workers W`` steps the
mujoco envs in W processes, while one writer keeps the demos in attempt order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eval.config_cli import defaults_from, from_args
from leisaac_tasks.console import LIBRARIES_LOG, library_log, quiet_libraries
from leisaac_tasks.dataset import CAMERAS, Attempt, DatasetError, DemoWriter, load_dataset
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.episode import EpisodeClock, control_loop
from policies.scripted import ScriptedExpert
from training.demos.attempts import (SETTLE_FRAMES, DatasetTally, GenerateConfig, attempt_budget, judge_attempt,
                                     out_of_attempts, tally_journal)
from training.demos.recipes import Cell, DatasetPlan, RecipeError, RECIPES, get_recipe


def record_attempt(env: SandwichEnv, expert: ScriptedExpert, writer: DemoWriter, cell: Cell, layout_seed: int,
                   attempt: int, max_steps: int) -> Attempt:
    """Run one expert episode, recording each step, and judge it. The caller keeps or discards it."""
    text = cell.instruction.text
    obs, info = env.reset(seed=layout_seed, options={"scenario": cell.scenario, "instruction": text})
    expert.reset(text, layout_seed)

    def act(observation: dict, info: dict) -> np.ndarray:
        action = expert.act(observation, info)
        writer.add_frame(observation, action, cell.task)  # the frame the action was chosen on
        return action

    def step(action: np.ndarray) -> tuple[dict, dict]:
        observation, _, _, _, info = env.step(action)
        return observation, info

    clock = EpisodeClock(max_steps, SETTLE_FRAMES)
    control_loop(clock, obs, info, act, step, lambda: expert.done)
    return judge_attempt(cell, layout_seed, attempt, env.outcome(), clock.steps, clock.settled)


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
        from training.demos.vector_generate import generate_dataset_vectorized
        from leisaac_tasks.vec_env import make_vec_env

        try:
            env = make_vec_env(cfg.backend, cfg.num_envs, cameras=CAMERAS, image_size=cfg.image_size,
                               workers=cfg.workers)
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
                        "parent_seconds": t.parent_seconds, "rejected_cells": t.rejected_cells} for t in tallies}
    (cfg.out / "generation.json").write_text(json.dumps({"recipe": cfg.recipe, "datasets": summary}, indent=2))
    return tallies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chefmate-generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help=f"one of: {', '.join(RECIPES)}")
    parser.add_argument("--out", type=Path, required=True, help="output folder (one dataset per recipe part)")
    parser.add_argument("--episodes", type=int, help="kept demos per dataset (default %(default)s)")
    parser.add_argument("--image-size", type=int, help="square camera images, pixels (default %(default)s)")
    parser.add_argument("--seed", type=int, help="attempt k uses layout seed SEED + k")
    parser.add_argument("--max-steps", type=int, help="an attempt longer than this is rejected")
    parser.add_argument("--checkpoint-every", type=int,
                        help="finalize the dataset files every N kept demos (a hard kill loses at most N)")
    parser.add_argument("--backend", help="simulator: mujoco (default) or isaaclab (vectorized)")
    parser.add_argument("--num-envs", type=int,
                        help="run this many attempts at once on the vectorized backend (default %(default)s: one env)")
    parser.add_argument("--workers", type=int,
                        help="with --num-envs: step the mujoco envs in this many processes (default %(default)s)")
    parser.add_argument("--plan-workers", type=int,
                        help="with --num-envs: the expert plans attempts in this many processes while the envs step "
                             "(default %(default)s: in the stepping process; a many-core box wants its cores)")
    parser.add_argument("--resume", action="store_true", help="continue an existing --out up to --episodes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    defaults_from(parser, GenerateConfig)
    args = parser.parse_args(argv)
    cfg = from_args(GenerateConfig, args)
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


if __name__ == "__main__":
    sys.exit(main())
