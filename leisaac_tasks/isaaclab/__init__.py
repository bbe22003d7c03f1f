"""The Isaac Lab 3.0 backend (kit-less: Newton MJWarp physics, Newton Warp camera renderer).

- ``so101_usd``: facts about the ``isaaclab-so101`` USD and how its joints map onto the MJCF's (pure Python).
- ``description``: the scene spec translated into a backend-neutral description (pure Python, CPU-testable).
- ``scene_cfg``, ``vec_env``, ``gym_env``: the Isaac Lab side; they import ``isaaclab`` and run on an NVIDIA GPU.

Nothing here imports Isaac Lab at package import, so CPU installs and CI never need it.
"""
