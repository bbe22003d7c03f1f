"""Sandwich tasks for the SO-101: one scene spec, several simulator backends, Gymnasium ids.

The ids take ``backend=`` (``"mujoco"``, the default, or ``"isaaclab"`` with ``num_envs=N``); backends are
imported only when an env is made.
"""

from gymnasium.envs.registration import register, registry

MAX_EPISODE_STEPS = 360  # 12 s at 30 Hz: a pick-and-place takes ~8-10 s

_IDS = {
    "LeIsaac-SO101-Sandwich-v0": "sandwich",
    "LeIsaac-SO101-PickCheese-v0": "pick_cheese",
    "LeIsaac-SO101-PickBread-v0": "pick_bread",
}

for _env_id, _task in _IDS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point="leisaac_tasks.gym_entry:make_sandwich_env", kwargs={"task": _task},
                 max_episode_steps=MAX_EPISODE_STEPS)
