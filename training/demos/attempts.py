"""What one generation attempt is and what a dataset run may spend: the generator's config, its per-dataset
tally, the oracle's verdict on an attempt, and the attempt budget. Shared by the sequential generator
(generate.py) and the vectorized one (vector_generate.py), which must judge and budget attempts identically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leisaac_tasks import oracle
from leisaac_tasks.dataset import Attempt, DatasetError, read_journal
from leisaac_tasks.outcomes import EpisodeOutcome
from training.demos.recipes import Cell, RecipeError, get_recipe


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
    workers: int = 1  # > 1: the mujoco backend's --num-envs envs step in this many processes (a many-core box)
    # > 1 (vectorized only): the expert plans each attempt (IK, ~0.1-0.5 s) in this many processes, while the
    # other envs step; otherwise the stepping process plans them all, one after another
    plan_workers: int = 0

    @property
    def vectorized(self) -> bool:
        return self.num_envs > 1 or self.backend == "isaaclab"

    def validate(self) -> None:
        get_recipe(self.recipe)
        if self.num_envs < 1:
            raise RecipeError(f"--num-envs must be at least 1, got {self.num_envs}")
        if self.workers < 1:
            raise RecipeError(f"--workers must be at least 1, got {self.workers}")
        if self.workers > 1 and (self.backend != "mujoco" or self.num_envs < self.workers):
            raise RecipeError(f"--workers {self.workers} spreads the mujoco backend's envs over processes: pass "
                              f"--num-envs N with N >= {self.workers} (e.g. --num-envs {4 * self.workers}), "
                              f"and no other --backend")
        if self.plan_workers > 1 and not self.vectorized:
            raise RecipeError(f"--plan-workers {self.plan_workers} plans for parallel envs: pass --num-envs N "
                              f"with N > 1 too (e.g. --num-envs {4 * self.plan_workers})")
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
    # Where the stepping thread spent its wall time (vectorized runs: "envs" waiting on the simulator and its
    # workers, "expert" choosing actions, "writing" waiting on LeRobot's writer, which encodes on a thread of its
    # own and is waited for only when a whole queue behind): what to speed up first.
    parent_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rejection_rate(self) -> float:
        return 1.0 - self.kept / self.attempts if self.attempts else 0.0


def judge_attempt(cell: Cell, layout_seed: int, attempt: int, outcome: EpisodeOutcome, steps: int,
                  settled: bool) -> Attempt:
    """The journal entry of a finished expert episode: kept only if it settled and the oracle accepts it."""
    success = settled and oracle.judge(oracle.expected(cell.scenario, cell.instruction.intent), outcome)
    return Attempt(attempt=attempt, source="scripted", scenario=cell.scenario.label, instruction=cell.task,
                   intent=str(cell.instruction.intent), layout_seed=layout_seed, success=success,
                   outcome=outcome.label, frames=steps, behaviour=outcome.behaviour)


def attempt_budget(cfg: GenerateConfig, first: int) -> int:
    """Attempts stop (with an error) at this index."""
    return first + int(np.ceil(cfg.episodes * cfg.max_attempts_factor))


def out_of_attempts(name: str, root: Path, kept: int, episodes: int, attempts: int) -> RuntimeError:
    return RuntimeError(f"{name}: only {kept} of {episodes} demos after {attempts} attempts; the expert keeps "
                        f"failing (see {root}/meta/chefmate_attempts.jsonl for the rejected cells)")


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
