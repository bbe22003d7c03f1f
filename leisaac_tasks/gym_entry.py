"""The Gymnasium entry point: one id per task, the simulator chosen by ``backend=`` (``num_envs`` on Isaac Lab).

The Isaac Lab env is imported only when asked for, so the CPU install never needs ``isaaclab``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym


def make_sandwich_env(task: str = "sandwich", backend: str = "mujoco", num_envs: int = 1, **kwargs: Any) -> gym.Env:
    if backend == "isaaclab":
        from leisaac_tasks.isaaclab.gym_env import IsaacLabSandwichEnv

        return IsaacLabSandwichEnv(task=task, num_envs=num_envs, **kwargs)
    if num_envs != 1:
        raise ValueError(f"num_envs={num_envs} needs a vectorized backend: pass backend='isaaclab' "
                         f"(the {backend!r} env runs one episode at a time)")
    from leisaac_tasks.env import SandwichEnv

    return SandwichEnv(task=task, backend=backend, **kwargs)
