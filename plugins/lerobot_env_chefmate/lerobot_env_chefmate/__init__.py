"""ChefMate Bench's sandwich tasks for LeRobot's own tools: ``lerobot-eval --env.type=chefmate``.

LeRobot imports this package by name (it is a ``lerobot_env_*`` distribution); importing it registers the gym id
``lerobot_env_chefmate/Sandwich-v0`` and the ``chefmate`` EnvConfig.
"""

import importlib.util

import gymnasium as gym

GYM_NAMESPACE = "lerobot_env_chefmate"
TASK = "Sandwich-v0"

gym.register(id=f"{GYM_NAMESPACE}/{TASK}", entry_point="lerobot_env_chefmate.env:LeRobotSandwichEnv")

if importlib.util.find_spec("lerobot") is not None:  # the gym env works without LeRobot; its config needs it
    from lerobot_env_chefmate import configuration as configuration  # noqa: F401
