"""The sandwich task as LeRobot's env utilities expect it (``lerobot.envs.utils.preprocess_observation``):
``pixels`` is a dict of camera images, ``agent_pos`` the joint state, both in LeRobot's SO-101 units, and the
instruction is the env's ``task_description`` (and ``task``), which lerobot-eval passes to the policy.

Actions arrive in LeRobot units too (degrees, gripper 0-100) and are converted to the simulator's radians. An
episode lasts ``episode_length`` steps; at its end ChefMate's oracle judges the physics outcome and the last
step's info carries ``is_success``, which lerobot-eval averages.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from leisaac_tasks import oracle
from leisaac_tasks import MAX_EPISODE_STEPS
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.instructions import SEED_INSTRUCTIONS
from leisaac_tasks.perturbations import build_instructions
from leisaac_tasks.scenarios import Scenario
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, lerobot_to_sim, sim_to_lerobot

CAMERAS = ("front", "wrist")
FPS = 30
EPISODE_STEPS = MAX_EPISODE_STEPS
DEFAULT_IMAGE_SIZE = 96  # the small VLA's input; LeRobot policies resize as their config says
SEED_SCENARIO = "H,H"  # both slices in the holder: only the instruction says which one to take


def pick_instruction(scenario: Scenario, family: str, variant: int, instruction: str | None):
    """The instruction (text + intent) an env runs: given text, or a family's variant for this scenario."""
    options = build_instructions(scenario, () if family == "seed" else (family,), SEED_INSTRUCTIONS)
    if instruction is not None:
        known = {i.text: i for i in options}
        if instruction in known:
            return known[instruction]
        raise ValueError(f"--env.instruction {instruction!r} is not one the benchmark can score for {scenario.label} "
                         f"(the oracle needs its meaning); choose one of: {'; '.join(known)}, or pick one with "
                         f"--env.family and --env.variant")
    family_only = [i for i in options if family == "seed" and i.family == "seed" or i.family == family]
    if not 0 <= variant < len(family_only):
        raise ValueError(f"--env.variant {variant} is out of range: family {family!r} has {len(family_only)} "
                         f"instruction(s) for {scenario.label} (0..{len(family_only) - 1})")
    return family_only[variant]


class LeRobotSandwichEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, scenario: str = SEED_SCENARIO, instruction: str | None = None, family: str = "seed",
                 variant: int = 0, image_size: int = DEFAULT_IMAGE_SIZE, episode_length: int = EPISODE_STEPS,
                 render_mode: str = "rgb_array"):
        self.scenario = Scenario.parse(scenario)
        self.instruction = pick_instruction(self.scenario, family, variant, instruction)
        self.task_description = self.task = self.instruction.text
        self.episode_length = episode_length
        self.render_mode = render_mode
        self._expected = oracle.expected(self.scenario, self.instruction.intent)
        self._sim = SandwichEnv(cameras=CAMERAS, image_size=image_size)
        image = spaces.Box(0, 255, (image_size, image_size, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict({"pixels": spaces.Dict({cam: image for cam in CAMERAS}),
                                              "agent_pos": spaces.Box(-np.inf, np.inf, (6,), dtype=np.float32)})
        low, high = sim_to_lerobot(JOINT_LOW), sim_to_lerobot(JOINT_HIGH)
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self._steps = 0

    def _observation(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        return {"pixels": {cam: obs[cam] for cam in CAMERAS},
                "agent_pos": sim_to_lerobot(obs["state"]).astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        layout_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        obs, _ = self._sim.reset(seed=layout_seed, options={"scenario": self.scenario,
                                                            "instruction": self.instruction.text})
        self._steps = 0
        return self._observation(obs), {"is_success": False}

    def step(self, action: np.ndarray):
        target = np.clip(lerobot_to_sim(np.asarray(action, dtype=np.float64)), JOINT_LOW, JOINT_HIGH)
        obs, _, _, _, info = self._sim.step(target)
        self._steps += 1
        done = self._steps >= self.episode_length
        success = bool(done and oracle.judge(self._expected, info["outcome"]))
        return self._observation(obs), float(success), done, False, {"is_success": success}

    def render(self) -> np.ndarray:
        return self._sim.render()

    def close(self) -> None:
        self._sim.close()
