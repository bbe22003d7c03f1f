"""Every trial that gets a results row is also a LeRobot v3 dataset episode, through the project's ``DemoWriter``.

Frames: ``observation.images.front``/``.wrist`` (video), ``observation.state`` (the measured joints) and
``action`` (the joint targets actually sent, after safety), both in LeRobot degrees / gripper 0-100 whatever
units the arm ran in, so real trials mix with every other ChefMate dataset; ``task`` is the instruction.
The outcome, policy, who answered and the safety log go to the dataset's attempt journal
(``meta/chefmate_attempts.jsonl``); redone, skipped and abandoned runs are logged there too, without an episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eval.runner import Episode
from leisaac_tasks.dataset import Attempt, DemoWriter
from leisaac_tasks.outcomes import EpisodeOutcome


class TrialRecorder:
    def __init__(self, root: Path, image_shape: tuple[int, int], fps: int, source: str):
        # One checkpoint per trial: a session may stop at any trial and resume days later.
        self.writer = DemoWriter(Path(root), image_shape, fps=fps, resume=True, checkpoint_every=1)
        self.source = source
        self.frames = 0  # frames of the trial being recorded

    @property
    def episodes(self) -> int:
        return self.writer.episodes

    def frame(self, observation: dict[str, np.ndarray], sent_rad: np.ndarray, task: str) -> None:
        """``observation``: "state" (radians) and the camera images, as the policy saw them."""
        self.writer.add_frame(observation, sent_rad, task)
        self.frames += 1

    def _attempt(self, episode: Episode, outcome: EpisodeOutcome | None, success: bool,
                 extra: dict[str, Any]) -> Attempt:
        return Attempt(attempt=self.writer.next_attempt, source=self.source, scenario=episode.scenario.label,
                       instruction=episode.instruction.text, intent=str(episode.instruction.intent),
                       layout_seed=episode.seed, success=success, frames=0,
                       outcome=outcome.label if outcome else "", behaviour=outcome.behaviour if outcome else "",
                       extra={"policy": episode.policy, "family": episode.instruction.family, **extra})

    def keep(self, episode: Episode, outcome: EpisodeOutcome, success: bool, extra: dict[str, Any]) -> int | None:
        """Save the recorded frames as an episode; returns its index (None if nothing was recorded)."""
        attempt = self._attempt(episode, outcome, success, extra)
        frames, self.frames = self.frames, 0
        if frames == 0:  # the run died before its first step: log it, no empty episode
            self.writer.discard(attempt)
            return None
        self.writer.keep(attempt)
        return attempt.episode_index

    def discard(self, episode: Episode, reason: str) -> None:
        self.frames = 0
        self.writer.discard(self._attempt(episode, None, False, {"discarded": reason}))

    def close(self) -> None:
        self.writer.close()
