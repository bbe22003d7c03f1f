"""The Gymnasium face of the Isaac Lab backend: ``gym.make("LeIsaac-SO101-Sandwich-v0", backend="isaaclab",
num_envs=N)``. Like Isaac Lab's own envs it is one ``gym.Env`` whose arrays carry a leading env axis.

    obs, info = env.reset(seed=0, options={"scenario": ["H,H", "H,-"], "instruction": [..., ...]})
    obs["state"]    # (N, 6) radians, MJCF zeros;  obs["front"]: (N, H, W, 3) uint8
    obs, reward, terminated, truncated, info = env.step(actions)   # actions (N, 6)

Env ``i`` uses layout seed ``seed + i`` unless ``options["seeds"]`` lists them; a scalar scenario or instruction
applies to every env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from leisaac_tasks.env import TASKS
from leisaac_tasks.isaaclab.vec_env import IsaacLabVecEnv
from leisaac_tasks.outcomes import Outcome
from leisaac_tasks.scenarios import Scenario
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW


class IsaacLabSandwichEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, task: str = "sandwich", num_envs: int = 1, cameras: tuple[str, ...] = ("front", "wrist"),
                 image_size: int | tuple[int, int] = 224, spec=None, render_mode: str = "rgb_array", **kwargs):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        self.task = TASKS[task]
        self.vec = IsaacLabVecEnv(num_envs, cameras=cameras, image_size=image_size, spec=spec, **kwargs)
        self.num_envs, self.cameras, self.render_mode = num_envs, tuple(cameras), render_mode
        cam = self.vec.spec.cameras[0]
        self.action_space = spaces.Box(np.tile(JOINT_LOW, (num_envs, 1)), np.tile(JOINT_HIGH, (num_envs, 1)),
                                       dtype=np.float32)
        self.observation_space = spaces.Dict({
            "state": spaces.Box(-np.inf, np.inf, (num_envs, 6), dtype=np.float32),
            **{c: spaces.Box(0, 255, (num_envs, cam.height, cam.width, 3), dtype=np.uint8) for c in self.cameras},
        })
        self.task_description: list[str] = [self.task.instruction] * num_envs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        n = self.num_envs
        per_env = lambda v: list(v) if isinstance(v, (list, tuple)) else [v] * n  # noqa: E731
        scenarios = [s if isinstance(s, Scenario) else Scenario.parse(str(s))
                     for s in per_env(options.get("scenario", self.task.scenario))]
        self.task_description = [str(t) for t in per_env(options.get("instruction", self.task.instruction))]
        base = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        seeds = list(options.get("seeds", range(base, base + n)))
        if not (len(scenarios) == len(self.task_description) == len(seeds) == n):
            raise ValueError(f"give one scenario, instruction and seed per env (num_envs={n}) or a single value")
        self.vec.reset_envs(range(n), scenarios, self.task_description, seeds)
        return self.vec.observations(range(n)), self._info()

    def step(self, action: np.ndarray):
        self.vec.step(np.asarray(action, dtype=np.float64).reshape(self.num_envs, 6))
        info = self._info()
        reward = np.zeros(self.num_envs, dtype=np.float32)
        if self.task.rewarded is not None:
            reward[:] = [o.per_ingredient[self.task.rewarded] == Outcome.ON_PLATE for o in info["outcome"]]
        done = np.zeros(self.num_envs, dtype=bool)
        return self.vec.observations(range(self.num_envs)), reward, done, done.copy(), info

    def _info(self) -> dict[str, Any]:
        infos = self.vec.infos(range(self.num_envs))
        return {key: [inf[key] for inf in infos] for key in infos[0]}

    def render(self) -> np.ndarray:
        return self.vec.images(self.cameras[0] if self.cameras else "front").cpu().numpy()

    def close(self) -> None:
        self.vec.close()
