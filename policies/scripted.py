"""The scripted baselines. All see object poses (privileged state) and move the same way; they differ only in
what they make of the instruction.

- ``ScriptedExpert``: parses the instruction, places the named slice if it is in the holder, else stays still.
- ``VisualHeuristic``: the seed's language-blind state machine: something on the plate -> stop; else pick
  any slice in the holder (random, by seed); else search.
- ``WordMatcher``: a bag of words: places the first slice the instruction names and ignores every other word,
  "not" included, as a policy that grounded object words but not meaning would.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from leisaac_tasks.kinematics import SO101Kinematics
from leisaac_tasks.scenarios import INGREDIENTS
from leisaac_tasks.spec import DEFAULT_SCENE, SceneSpec
from policies.base import Abilities
from policies.instruction_parser import first_named_slice, parse_instruction
from policies.motion import MotionConfig, TrajectoryBuilder, plan_pick_place

_ON_PLATE_MAX_Z = 0.05  # above this a slice over the plate is being carried, not lying on it


class _ScriptedPickPlace:
    name = "scripted"
    abilities = Abilities(privileged=True, clonable=True, plans_in_pool=True)

    def __init__(self, spec: SceneSpec = DEFAULT_SCENE, motion: MotionConfig = MotionConfig(), noise: bool = False):
        self.spec = spec
        self.motion = motion
        self.noise = noise  # demo generation varies speed, grasp height and timing; evaluation stays exact
        self.kin = SO101Kinematics(spec.robot)
        self.rest = np.array(spec.robot.home_qpos)
        self._plan: np.ndarray | None = None
        self._t = 0
        self.instruction = ""
        self.rng = np.random.default_rng(0)
        self.target: str | None = None

    # What clone() shares between parallel envs (read-only); everything else in vars() is per-episode state.
    shared_state: tuple[str, ...] = ("spec", "motion", "kin", "rest")

    def clone(self) -> "_ScriptedPickPlace":
        """Another policy for a parallel env: fresh episode state, the same (read-only) kinematics model."""
        twin = copy.copy(self)
        twin.reset("", 0)
        return twin

    def reset(self, instruction: str, seed: int) -> None:
        self.instruction = instruction
        self.rng = np.random.default_rng(seed)
        self._plan, self._t, self.target = None, 0, None

    @property
    def done(self) -> bool:
        return self._plan is not None and self._t >= len(self._plan)

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        if self._plan is None:
            self._plan = self._make_plan(observation["state"].astype(float), info)
        row = self._plan[min(self._t, len(self._plan) - 1)]
        self._t += 1
        return row.copy()

    # --- planning --------------------------------------------------------------------------------
    def choose(self, info: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def _make_plan(self, q: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        self.target = self.choose(info)
        if self.target == "search":
            return self._search_plan(q)
        if self.target is None:
            return np.repeat(q[None], self.motion.idle_hold_steps, axis=0)  # hold exactly where we are
        pose = info["object_poses"][self.target]
        return plan_pick_place(self.kin, q, self.rest, pose, self.spec.ingredients[self.target].extents,
                               info["holder_xy"], info["plate_xy"], self.spec.plate.top_z, self.motion,
                               rng=self.rng if self.noise else None)

    def _search_plan(self, q: np.ndarray) -> np.ndarray:
        """Sweep the gripper over the workspace, as the seed's robot did with nothing to pick."""
        b = TrajectoryBuilder(q, self.motion)
        arm = q[:5]
        for azimuth in self.rng.permutation(np.linspace(-0.6, 0.6, 4)):
            point = np.array([0.2 * np.cos(azimuth), 0.2 * np.sin(azimuth), 0.12])
            arm = self.kin.solve(point, np.array([-np.sin(azimuth), np.cos(azimuth), 0.0]), arm).qpos
            b.move(arm, gripper=self.motion.gripper_open)
        b.move(self.rest[:5], gripper=self.rest[5])
        return b.array()

    # --- what the scene looks like ---------------------------------------------------------------
    def on_plate(self, info: dict[str, Any], name: str) -> bool:
        pose = info["object_poses"].get(name)
        return pose is not None and info["plate_region"].holds(pose) and pose[2] < _ON_PLATE_MAX_Z

    def pickable(self, info: dict[str, Any]) -> list[str]:
        return [n for n in INGREDIENTS if info["object_poses"].get(n) is not None and not self.on_plate(info, n)]


class ScriptedExpert(_ScriptedPickPlace):
    name = "expert"

    def choose(self, info: dict[str, Any]) -> str | None:
        intent = parse_instruction(self.instruction)
        if intent.verb == "place" and intent.target in self.pickable(info):
            return intent.target
        return None  # avoid, no task, absent or already on the plate: leave everything where it is


class VisualHeuristic(_ScriptedPickPlace):
    name = "blind"
    # a control: its language influence index must be 0
    abilities = Abilities(privileged=True, language_blind=True, clonable=True, plans_in_pool=True)

    def choose(self, info: dict[str, Any]) -> str | None:
        if any(self.on_plate(info, n) for n in INGREDIENTS):
            return None
        candidates = self.pickable(info)
        if not candidates:
            return "search"
        return candidates[int(self.rng.integers(len(candidates)))]


class WordMatcher(_ScriptedPickPlace):
    name = "words"

    def choose(self, info: dict[str, Any]) -> str | None:
        named = first_named_slice(self.instruction)
        return named if named in self.pickable(info) else None
