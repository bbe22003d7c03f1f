"""The Policy protocol every controller implements: scripted baselines, VLAs, LeRobot policies and remote servers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


class PolicyError(RuntimeError):
    """A policy could not produce an action (server down, timed out, malformed reply).

    The runner records the episode as ``policy_error`` with this message and goes on with the grid, so the
    message should name the problem and the fix in one line.
    """


@dataclass(frozen=True)
class Abilities:
    """What a policy needs and can do, declared once: runners, reports and probes read this instead of probing
    for attributes."""

    cameras: tuple[str, ...] = ()  # the cameras it reads; () lets the runner skip rendering, the main CPU cost
    privileged: bool = False  # reads the env's privileged ``info`` (object poses): scripted baselines only
    language_blind: bool = False  # ignores the instruction by design: a control, whose language metrics must read 0
    batched: bool = False  # has reset_slot / act_batch / slot_done / slot_needs_observation: one pass for many envs
    remote: bool = False  # acts through a server (GR00T): its latency and failures are the network's too
    clonable: bool = False  # clone() gives a fresh policy sharing read-only parts, cheaper than building one
    plans_in_pool: bool = False  # its first act() plans the episode, which a process pool can do (``shared_state``)
    global_torch_rng: bool = False  # draws noise from torch's global generator: two in one process interfere
    white_box: bool = False  # exposes ``.model`` (features, tune flags) to diagnose's probes


@runtime_checkable
class Policy(Protocol):
    name: str
    abilities: Abilities

    def reset(self, instruction: str, seed: int) -> None:
        """Start an episode. ``seed`` drives any randomness, so episodes replay exactly."""

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """Six joint position targets (radians) for the next control step."""

    @property
    def done(self) -> bool:
        """True once the policy has nothing left to do; the runner may then end the episode early."""

