"""Run one episode of a policy in the sandwich env and turn the physics outcome into a CSV row."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

from eval import heuristic, oracle
from eval.instructions import Instruction
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.scenarios import INGREDIENTS, Scenario
from policies.base import Policy

SETTLE_STEPS = 15  # after a policy is done, let the physics come to rest before judging


@dataclass(frozen=True)
class Episode:
    policy: str
    scenario: Scenario
    instruction: Instruction
    seed: int

    def key(self) -> tuple[str, ...]:
        return (self.policy, self.scenario.label, self.instruction.text, str(self.seed))


def run_episode(env: SandwichEnv, policy: Policy, episode: Episode, max_steps: int) -> dict[str, Any]:
    start = time.perf_counter()
    row: dict[str, Any] = {
        "policy": episode.policy, "backend": env.sim.name, "scenario": episode.scenario.label,
        "instruction": episode.instruction.text, "family": episode.instruction.family,
        "intent": str(episode.instruction.intent), "seed": episode.seed, "error": "",
    }
    steps = 0
    try:
        obs, info = env.reset(seed=episode.seed, options={"scenario": episode.scenario,
                                                          "instruction": episode.instruction.text})
        policy.reset(episode.instruction.text, episode.seed)
        settle = SETTLE_STEPS
        while steps < max_steps and settle > 0:
            obs, _, _, _, info = env.step(policy.act(obs, info))
            steps += 1
            if policy.done:
                settle -= 1
    except Exception as exc:  # the grid goes on; the row says what broke
        row["error"] = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
        traceback.print_exc()
    outcome = env.outcome()
    expected = oracle.expected(episode.scenario, episode.instruction.intent)
    row.update({
        **{name: outcome.per_ingredient[name].value for name in INGREDIENTS},
        "behaviour": "policy_error" if row["error"] else outcome.behaviour,
        "outcome_label": outcome.label,
        "expected": oracle.describe(expected),
        "success": int(not row["error"] and oracle.judge(expected, outcome)),
        "heuristic_agreement": int(not row["error"] and heuristic.agrees(episode.scenario, outcome.behaviour)),
        "steps": steps,
        "sim_seconds": round(env.sim.sim_time(), 3),
        "wall_seconds": round(time.perf_counter() - start, 3),
    })
    return row


def policy_cameras(policies: dict[str, Policy]) -> tuple[str, ...]:
    """Render only what some policy reads: the scripted baselines need no images at all."""
    return tuple(dict.fromkeys(cam for p in policies.values() for cam in p.cameras))
