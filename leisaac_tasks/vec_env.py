"""Many sandwich episodes stepped together: the interface the vectorized grid runner and demo generation use.

Each env index is an independent episode with its own scenario, instruction and seed; ``reset_envs`` restarts
only the envs it names, so a runner can refill an env the moment its episode ends. ``MujocoVecEnv`` is the
embedded backend behind this interface (a list of ``SandwichEnv``; ``ProcessVecEnv`` spreads them over worker
processes); the Isaac Lab backend steps all its envs as
one batch on the GPU (``leisaac_tasks.isaaclab.vec_env``).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, Sequence

import numpy as np

from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.outcomes import EpisodeOutcome
from leisaac_tasks.scenarios import Scenario
from leisaac_tasks.spec import SceneSpec


class VecSandwichEnv(Protocol):
    num_envs: int
    backend: str  # the CSV's ``backend`` column
    cameras: tuple[str, ...]

    def reset_envs(self, env_ids: Sequence[int], scenarios: Sequence[Scenario], instructions: Sequence[str],
                   seeds: Sequence[int]) -> None: ...

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> None:
        """(num_envs, 6) joint targets in sim radians. Inactive envs may be left unstepped (or held)."""

    def observations(self, env_ids: Sequence[int]) -> dict[str, np.ndarray]:
        """``state`` (n, 6) float32 and each camera (n, H, W, 3) uint8, rows in ``env_ids`` order."""

    def info(self, env_id: int) -> dict[str, Any]:
        """The privileged info ``SandwichEnv`` returns (object poses, plate region, holder/plate xy, ee_pos)."""

    def infos(self, env_ids: Sequence[int]) -> list[dict[str, Any]]:
        """``info`` of each of ``env_ids``, in that order: one request per worker where envs live in processes."""

    def outcome(self, env_id: int) -> EpisodeOutcome: ...
    def sim_time(self, env_id: int) -> float: ...
    def close(self) -> None: ...


class MujocoVecEnv:
    """The embedded backend as a vector env: one ``SandwichEnv`` per index, stepped one after another."""

    def __init__(self, num_envs: int, cameras: tuple[str, ...] = (), image_size: int = 224,
                 spec: SceneSpec | None = None, backend: str = "mujoco"):
        self.envs = [SandwichEnv(backend=backend, cameras=cameras, image_size=image_size, spec=spec)
                     for _ in range(num_envs)]
        self.num_envs = num_envs
        self.backend = self.envs[0].sim.name
        self.cameras = tuple(cameras)
        self._obs: list[dict[str, np.ndarray] | None] = [None] * num_envs
        self._info: list[dict[str, Any] | None] = [None] * num_envs

    def reset_envs(self, env_ids, scenarios, instructions, seeds) -> None:
        for i, scenario, text, seed in zip(env_ids, scenarios, instructions, seeds):
            self._obs[i], self._info[i] = self.envs[i].reset(seed=int(seed), options={"scenario": scenario,
                                                                                      "instruction": text})

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> None:
        # Observations and info are made when asked for (see SandwichEnv.advance): most steps of a VLA need none.
        for i, env in enumerate(self.envs):
            if active is None or active[i]:
                env.advance(actions[i])
                self._obs[i] = self._info[i] = None

    def observations(self, env_ids: Sequence[int]) -> dict[str, np.ndarray]:
        for i in env_ids:
            if self._obs[i] is None:
                self._obs[i] = self.envs[i].observe()
        rows = [self._obs[i] for i in env_ids]
        return {key: np.stack([r[key] for r in rows]) if rows else np.zeros((0,)) for key in ("state", *self.cameras)}

    def info(self, env_id: int) -> dict[str, Any]:
        if self._info[env_id] is None:
            self._info[env_id] = self.envs[env_id].privileged_info()
        return self._info[env_id]

    def infos(self, env_ids: Sequence[int]) -> list[dict[str, Any]]:
        return [self.info(i) for i in env_ids]

    def outcome(self, env_id: int) -> EpisodeOutcome:
        return self.envs[env_id].outcome()

    def sim_time(self, env_id: int) -> float:
        return self.envs[env_id].sim.sim_time()

    def close(self) -> None:
        for env in self.envs:
            env.close()


# Import paths, so asking for the embedded backend never loads Isaac Lab.
VEC_BACKENDS: dict[str, str] = {
    "mujoco": "leisaac_tasks.vec_env:MujocoVecEnv",
    "isaaclab": "leisaac_tasks.isaaclab.vec_env:IsaacLabVecEnv",
}
# The mujoco backend over worker processes (--workers), which wraps MujocoVecEnv (hence a path, as above).
PROCESS_VEC_ENV = "leisaac_tasks.process_vec_env:ProcessVecEnv"


def _load(path: str) -> Any:
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


def make_vec_env(backend: str, num_envs: int, cameras: tuple[str, ...] = (), image_size: int = 224,
                 spec: SceneSpec | None = None, workers: int = 1) -> VecSandwichEnv:
    """``workers`` > 1 spreads the embedded backend's envs over that many processes (a many-core box); Isaac Lab
    steps all its envs as one GPU batch and takes no workers."""
    if backend not in VEC_BACKENDS:
        raise ValueError(f"no vectorized {backend!r} backend; choose one of {', '.join(sorted(VEC_BACKENDS))} "
                         f"(e.g. --backend isaaclab)")
    if num_envs < 1:
        raise ValueError(f"--num-envs must be at least 1 (got {num_envs})")
    if workers > 1:
        if backend != "mujoco":
            raise ValueError(f"--workers spreads the mujoco backend over processes; {backend} steps its envs as "
                             f"one batch: leave --workers out")
        return _load(PROCESS_VEC_ENV)(num_envs, workers, cameras=cameras, image_size=image_size, spec=spec)
    return _load(VEC_BACKENDS[backend])(num_envs, cameras=cameras, image_size=image_size, spec=spec)
