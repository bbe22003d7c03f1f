"""The Policy protocol every controller implements: scripted baselines now, VLAs and remote servers later."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    name: str
    # Cameras the policy reads; () lets the runner skip rendering, the dominant cost on a CPU.
    cameras: tuple[str, ...]
    # Whether it reads the env's privileged ``info`` (object poses). Only scripted baselines should.
    privileged: bool

    def reset(self, instruction: str, seed: int) -> None:
        """Start an episode. ``seed`` drives any randomness, so episodes replay exactly."""

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """Six joint position targets (radians) for the next control step."""

    @property
    def done(self) -> bool:
        """True once the policy has nothing left to do; the runner may then end the episode early."""
