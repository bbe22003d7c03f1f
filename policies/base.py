"""The Policy protocol every controller implements: scripted baselines, VLAs, LeRobot policies and remote servers."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


class PolicyError(RuntimeError):
    """A policy could not produce an action (server down, timed out, malformed reply).

    The runner records the episode as ``policy_error`` with this message and goes on with the grid, so the
    message should name the problem and the fix in one line.
    """


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


def is_language_blind(policy: Policy) -> bool:
    """Policies that ignore the instruction by design (the blind heuristic, ACT, Diffusion) set
    ``language_blind = True``; reports show them as controls, whose language influence should be 0."""
    return bool(getattr(policy, "language_blind", False))
