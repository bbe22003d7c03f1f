"""What a grid runs: policies x scenarios x instructions x seeds, and where and how (the dataclass holds the
defaults that eval/run_matrix.py's flags show). The grid library (eval/grid.py) and its runners read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eval.breaker import DEFAULT_LIMIT
from eval.runner import Episode
from leisaac_tasks import MAX_EPISODE_STEPS
from leisaac_tasks.instructions import SEED_INSTRUCTIONS, Instruction
from leisaac_tasks.perturbations import build_instructions, family_names
from leisaac_tasks.scenarios import Scenario, scenario_set


@dataclass(frozen=True)
class MatrixConfig:
    policies: tuple[str, ...] = ("expert", "words", "blind", "idle")  # the ladder every default table shows
    scenarios: tuple[Scenario, ...] = scenario_set()
    families: tuple[str, ...] = family_names()
    extra_instructions: tuple[Instruction, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    backend: str = "mujoco"
    image_size: int = 224
    max_steps: int = MAX_EPISODE_STEPS
    out: Path = Path("reports/matrix")
    resume: bool = False
    workers: int = 1
    num_envs: int = 0  # > 0: a vectorized backend steps this many envs at once (required for isaaclab)
    breaker: int = DEFAULT_LIMIT  # consecutive policy errors that stop contacting a policy (0: never)

    def instructions(self, scenario: Scenario) -> list[Instruction]:
        """The scenario's instructions in run order: the seed's, each family's variants, then the extras."""
        return build_instructions(scenario, self.families, SEED_INSTRUCTIONS, self.extra_instructions)

    def episodes(self) -> list[Episode]:
        """Deterministic order; each cell's seed is the seed index itself, so a cell replays from its row."""
        return [Episode(policy, scenario, instruction, seed)
                for policy in self.policies for scenario in self.scenarios
                for instruction in self.instructions(scenario) for seed in self.seeds]
