"""The Gymnasium sandwich task, backend-neutral: a scenario + instruction in, images + joints out.

reset(options={"scenario": "H,-", "instruction": "..."}) places the ingredients (seeded jitter);
step(action) takes 6 joint position targets in radians (LeRobot's so101 joint order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from leisaac_tasks.backends import make_backend
from leisaac_tasks.layout import Layout, sample_layout
from leisaac_tasks.outcomes import EpisodeOutcome, IngredientTrack, Outcome, episode_outcome
from leisaac_tasks.scenarios import INGREDIENTS, Scenario
from leisaac_tasks.spec import DEFAULT_SCENE, SceneSpec
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW

CHEESE_INSTRUCTION = "pick up the yellow cheese and put it into the white plate"
BREAD_INSTRUCTION = "pick up the bread and put it into the white plate"



@dataclass(frozen=True)
class TaskDefaults:
    scenario: str
    instruction: str
    rewarded: str | None  # the ingredient whose arrival on the plate pays 1.0; None = judged by leisaac_tasks.oracle


TASKS: dict[str, TaskDefaults] = {
    "sandwich": TaskDefaults("H,H", CHEESE_INSTRUCTION, None),
    "pick_cheese": TaskDefaults("H,-", CHEESE_INSTRUCTION, "cheese"),
    "pick_bread": TaskDefaults("-,H", BREAD_INSTRUCTION, "bread"),
}


class SandwichEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, task: str = "sandwich", backend: str = "mujoco", cameras: tuple[str, ...] = ("front", "wrist"),
                 image_size: int | tuple[int, int] = 224, spec: SceneSpec | None = None,
                 render_mode: str = "rgb_array"):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        width, height = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.scene = (spec or DEFAULT_SCENE).with_resolution(width, height)
        for cam in cameras:
            self.scene.camera(cam)  # fail now on an unknown camera name, not mid-episode
        self.task = TASKS[task]
        self.cameras = tuple(cameras)
        self.render_mode = render_mode
        self.sim = make_backend(backend, self.scene)
        self.metadata = {**self.metadata, "render_fps": int(self.scene.control_hz)}
        self.action_space = spaces.Box(JOINT_LOW, JOINT_HIGH, dtype=np.float32)
        self.observation_space = spaces.Dict({
            "state": spaces.Box(-np.inf, np.inf, (6,), dtype=np.float32),
            **{cam: spaces.Box(0, 255, (height, width, 3), dtype=np.uint8) for cam in self.cameras},
        })
        self.scenario: Scenario = Scenario.parse(self.task.scenario)
        self.task_description: str = self.task.instruction  # LeRobot reads this attribute
        self.layout: Layout | None = None
        self._tracks: dict[str, IngredientTrack | None] = {}

    # --- gym API ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        scenario = options.get("scenario", self.task.scenario)
        self.scenario = scenario if isinstance(scenario, Scenario) else Scenario.parse(str(scenario))
        self.task_description = str(options.get("instruction", self.task.instruction))
        layout_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        self.layout = sample_layout(self.scene, self.scenario, layout_seed)
        self.sim.reset(self.layout)
        self._tracks = {n: None if self.layout.ingredient_poses[n] is None else
                        IngredientTrack.begin(self.sim.ingredient_pose(n), max(self.scene.ingredients[n].extents) / 2)
                        for n in INGREDIENTS}
        return self.observe(), self.privileged_info()

    def step(self, action: np.ndarray):
        self.advance(action)
        info = self.privileged_info()
        reward = 0.0
        if self.task.rewarded is not None:
            reward = float(info["outcome"].per_ingredient[self.task.rewarded] == Outcome.ON_PLATE)
        return self.observe(), reward, False, False, info

    def advance(self, action: np.ndarray) -> None:
        """One control step of physics and outcome tracking, with no rendering: a vector env renders only the
        envs whose policy is about to look (a VLA looks once per action chunk; rendering is most of a step)."""
        self.sim.step(np.asarray(action, dtype=np.float64))
        for name, track in self._tracks.items():
            if track is not None:
                track.update(self.sim.ingredient_pose(name))

    def render(self) -> np.ndarray:
        return self.sim.render(self.cameras[0] if self.cameras else "front")

    def close(self) -> None:
        self.sim.close()

    # --- helpers ---------------------------------------------------------------------------------
    def outcome(self) -> EpisodeOutcome:
        return episode_outcome(self._tracks, self.layout.plate_region(self.scene))

    def observe(self) -> dict[str, np.ndarray]:
        obs = {"state": self.sim.joint_positions().astype(np.float32)}
        for cam in self.cameras:
            obs[cam] = self.sim.render(cam)
        return obs

    def privileged_info(self) -> dict[str, Any]:
        """Privileged state for scripted policies and outcome checks; learned policies must not read it."""
        return {
            "scenario": self.scenario.label,
            "task_description": self.task_description,
            "object_poses": {n: None if t is None else t.final.copy() for n, t in self._tracks.items()},
            "plate_xy": self.layout.plate_xy.copy(),
            "plate_region": self.layout.plate_region(self.scene),
            "holder_xy": self.layout.holder_xy.copy(),
            "ee_pos": self.sim.ee_position(),
            "outcome": self.outcome(),
        }
