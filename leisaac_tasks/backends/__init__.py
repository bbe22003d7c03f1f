"""The one registry of simulator backends. Entries are import paths, so a backend's heavy
dependencies (MuJoCo's GL, Isaac Lab) load only when someone asks for it."""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from leisaac_tasks.layout import Layout
from leisaac_tasks.spec import SceneSpec


class SimBackend(Protocol):
    """What a task needs from a simulator: set a layout, step at the control rate, read poses, render."""

    name: str
    spec: SceneSpec

    def reset(self, layout: Layout, qpos: np.ndarray | None = None) -> None: ...
    def step(self, joint_targets: np.ndarray) -> None: ...
    def joint_positions(self) -> np.ndarray: ...
    def ingredient_pose(self, name: str) -> np.ndarray: ...
    def ee_position(self) -> np.ndarray: ...
    def sim_time(self) -> float: ...
    def render(self, camera: str) -> np.ndarray: ...
    def close(self) -> None: ...


BACKENDS: dict[str, str] = {
    "mujoco": "leisaac_tasks.backends.mujoco.sim:MujocoSim",
}


def register_backend(name: str, import_path: str) -> None:
    BACKENDS[name] = import_path


def make_backend(name: str, spec: SceneSpec) -> SimBackend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(sorted(BACKENDS))} "
                         f"(e.g. --backend mujoco)")
    module, attr = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)(spec)
