"""When an episode ends, and the one control loop that runs it.

Every runner ends an episode the same way: after ``max_steps`` control steps, or once the policy has said it is done
for ``settle_steps`` steps (the physics comes to rest before the outcome is judged). ``EpisodeClock`` holds that
rule; ``control_loop`` is the step loop the in-process grid, real-arm trials and demo recording share. The vectorized
grid and generator step many envs at once, one ``EpisodeClock`` per env.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

Observation = dict[str, Any]
Info = dict[str, Any]


@dataclass
class EpisodeClock:
    max_steps: int
    settle_steps: int
    steps: int = 0
    steps_after_done: int = 0

    @property
    def settled(self) -> bool:
        """The policy was done for the whole settling time (rather than cut off by ``max_steps``)."""
        return self.steps_after_done >= self.settle_steps

    @property
    def running(self) -> bool:
        return self.steps < self.max_steps and not self.settled

    def tick(self, policy_done: bool) -> None:
        """One control step was taken; ``policy_done`` is the policy's ``done`` after it."""
        self.steps += 1
        if policy_done:
            self.steps_after_done += 1


def control_loop(clock: EpisodeClock, observation: Observation, info: Info,
                 act: Callable[[Observation, Info], np.ndarray],
                 step: Callable[[np.ndarray], tuple[Observation, Info]],
                 done: Callable[[], bool]) -> tuple[Observation, Info]:
    """Act and step until the clock stops; returns the last observation and info. ``act`` may record the frame it
    acts on (demos), ``step`` may filter and send the action (the real arm); an exception ends the episode there."""
    while clock.running:
        observation, info = step(act(observation, info))
        clock.tick(done())
    return observation, info
