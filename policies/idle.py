"""The do-nothing floor: holds its start pose, reads nothing, then says it is done.

It runs next to ``expert`` and ``blind`` by default, so every table shows what inaction scores: a metric on
which ``idle`` looks good rewards doing nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.base import Abilities
from policies.motion import MotionConfig


class IdlePolicy:
    name = "idle"
    abilities = Abilities(language_blind=True, clonable=True)  # a control: every language metric must read 0

    def __init__(self, hold_steps: int = MotionConfig().idle_hold_steps):
        self.hold_steps = hold_steps  # as long as the expert holds when it refuses, so both end alike
        self._pose: np.ndarray | None = None
        self._t = 0

    def clone(self) -> "IdlePolicy":
        return IdlePolicy(self.hold_steps)

    def reset(self, instruction: str, seed: int) -> None:
        self._pose, self._t = None, 0

    @property
    def done(self) -> bool:
        return self._t >= self.hold_steps

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        if self._pose is None:
            self._pose = np.asarray(observation["state"], dtype=float).copy()
        self._t += 1
        return self._pose.copy()
