"""Run one episode of a policy in the sandwich env and turn the physics outcome into a CSV row."""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from leisaac_tasks import heuristic, oracle
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.episode import EpisodeClock, control_loop
from leisaac_tasks.instructions import Instruction
from leisaac_tasks.outcomes import EpisodeOutcome
from leisaac_tasks.scenarios import INGREDIENTS, Scenario
from policies.base import Policy, PolicyError

SETTLE_STEPS = 15  # after a policy is done, let the physics come to rest before judging

# Called with (step, observation) after reset (step 0) and after every env step: how a replay records frames.
StepCallback = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class Episode:
    policy: str
    scenario: Scenario
    instruction: Instruction
    seed: int

    def key(self) -> tuple[str, ...]:
        return (self.policy, self.scenario.label, self.instruction.text, str(self.seed))


_TRACED: set[str] = set()  # errors whose traceback this process printed already


def run_episode(env: SandwichEnv, policy: Policy, episode: Episode, max_steps: int,
                on_step: StepCallback | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    error = ""
    clock = EpisodeClock(max_steps, SETTLE_STEPS)

    def step(action: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, _, _, _, info = env.step(action)
        if on_step:
            on_step(clock.steps + 1, obs)
        return obs, info

    try:
        obs, info = env.reset(seed=episode.seed, options={"scenario": episode.scenario,
                                                          "instruction": episode.instruction.text})
        policy.reset(episode.instruction.text, episode.seed)
        if on_step:
            on_step(0, obs)
        control_loop(clock, obs, info, policy.act, step, lambda: policy.done)
    except Exception as exc:  # the grid goes on; the row says what broke
        error = error_text(exc)
        if isinstance(exc, PolicyError) or error in _TRACED:  # one line; a failing policy would flood the log
            print(f"policy_error: {error}", file=sys.stderr)
        else:  # the first time: where it broke
            _TRACED.add(error)
            traceback.print_exc()
    return episode_row(episode, env.sim.name, env.outcome(), error, clock.steps, env.sim.sim_time(),
                       time.perf_counter() - start)


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]


def episode_row(episode: Episode, backend: str, outcome: EpisodeOutcome, error: str, steps: int,
                sim_seconds: float, wall_seconds: float, failure: str = "policy_error") -> dict[str, Any]:
    """One CSV row (eval/results.py COLUMNS): every backend and runner builds its rows here.

    With an ``error``, the behaviour is ``failure`` (the real arm also has ``robot_error``) and nothing scores."""
    expected = oracle.expected(episode.scenario, episode.instruction.intent)
    return {
        "policy": episode.policy, "backend": backend, "scenario": episode.scenario.label,
        "instruction": episode.instruction.text, "family": episode.instruction.family,
        "intent": str(episode.instruction.intent), "seed": episode.seed, "error": error,
        **{name: outcome.per_ingredient[name].value for name in INGREDIENTS},
        "behaviour": failure if error else outcome.behaviour,
        "outcome_label": outcome.label,
        "expected": oracle.describe(expected),
        "success": int(not error and oracle.judge(expected, outcome)),
        "heuristic_agreement": int(not error and heuristic.agrees(episode.scenario, outcome.behaviour)),
        "steps": steps,
        "sim_seconds": round(sim_seconds, 3),
        "wall_seconds": round(wall_seconds, 3),
    }


def policy_cameras(policies: dict[str, Policy]) -> tuple[str, ...]:
    """Render only what some policy reads: the scripted baselines need no images at all."""
    return tuple(dict.fromkeys(cam for p in policies.values() for cam in p.abilities.cameras))
