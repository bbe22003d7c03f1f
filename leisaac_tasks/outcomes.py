"""Per-ingredient outcomes read from physics state, and the episode's behaviour label.

Only poses are used, so every backend shares one definition of "picked" and "on the plate".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping

import numpy as np

from leisaac_tasks.scenarios import INGREDIENTS


class Outcome(str, Enum):
    ABSENT = "absent"  # not in the scene
    UNTOUCHED = "untouched"
    MOVED = "moved"  # displaced or tipped, never lifted
    LIFTED = "lifted"  # lifted and still in the air at the end (held)
    ON_PLATE = "on_plate"  # lifted and now resting on the plate
    DROPPED = "dropped"  # lifted and now resting somewhere other than the plate


PICKED = frozenset({Outcome.LIFTED, Outcome.ON_PLATE, Outcome.DROPPED})
LEFT_ALONE = frozenset({Outcome.UNTOUCHED, Outcome.MOVED})


@dataclass(frozen=True)
class OutcomeThresholds:
    lift_m: float = 0.03  # rise above the start height that counts as a pick
    move_m: float = 0.01
    tilt_rad: float = 0.26  # ~15 degrees
    rest_slack_m: float = 0.008  # resting = centre at most this above its highest resting height


@dataclass(frozen=True)
class PlateRegion:
    center_xy: tuple[float, float]
    radius: float
    top_z: float

    def holds(self, xy: np.ndarray) -> bool:
        return float(np.hypot(*(np.asarray(xy[:2]) - self.center_xy))) <= self.radius


def _tilt(q0: np.ndarray, q1: np.ndarray) -> float:
    """Angle between two unit quaternions (w, x, y, z)."""
    return float(2.0 * np.arccos(np.clip(abs(np.dot(q0, q1)), 0.0, 1.0)))


@dataclass
class IngredientTrack:
    """What the classifier needs from one ingredient's trajectory: start, highest point, end."""

    start: np.ndarray  # pose (x, y, z, qw, qx, qy, qz)
    max_z: float
    final: np.ndarray
    rest_half_height: float  # half its largest extent: the highest its centre sits when resting on a surface

    @classmethod
    def begin(cls, pose: np.ndarray, rest_half_height: float) -> "IngredientTrack":
        pose = np.asarray(pose, dtype=float)
        return cls(start=pose.copy(), max_z=float(pose[2]), final=pose.copy(), rest_half_height=rest_half_height)

    def update(self, pose: np.ndarray) -> None:
        self.final = np.asarray(pose, dtype=float).copy()
        self.max_z = max(self.max_z, float(pose[2]))


def classify(track: IngredientTrack, plate: PlateRegion, th: OutcomeThresholds = OutcomeThresholds()) -> Outcome:
    lifted = track.max_z - track.start[2] > th.lift_m
    if not lifted:
        shift = float(np.linalg.norm(track.final[:3] - track.start[:3]))
        tipped = _tilt(track.start[3:], track.final[3:]) > th.tilt_rad
        return Outcome.MOVED if shift > th.move_m or tipped else Outcome.UNTOUCHED
    final_z = float(track.final[2])
    if plate.holds(track.final) and final_z <= plate.top_z + track.rest_half_height + th.rest_slack_m:
        return Outcome.ON_PLATE
    if final_z > track.start[2] + th.lift_m:
        return Outcome.LIFTED
    return Outcome.DROPPED


@dataclass(frozen=True)
class EpisodeOutcome:
    """Per-ingredient outcomes plus a one-word behaviour, e.g. ``picked_cheese`` or ``none``."""

    per_ingredient: Mapping[str, Outcome] = field(default_factory=dict)

    def picked(self) -> tuple[str, ...]:
        return tuple(i for i in INGREDIENTS if self.per_ingredient.get(i) in PICKED)

    @property
    def behaviour(self) -> str:
        picked = self.picked()
        if len(picked) == 2:
            return "picked_both"
        if picked:
            return f"picked_{picked[0]}"
        if any(self.per_ingredient.get(i) == Outcome.MOVED for i in INGREDIENTS):
            return "disturbed"
        return "none"

    @property
    def label(self) -> str:
        """Joint outcome, the unit the language influence index compares."""
        return ",".join(f"{i}={self.per_ingredient.get(i, Outcome.ABSENT).value}" for i in INGREDIENTS)


def episode_outcome(tracks: Mapping[str, IngredientTrack | None], plate: PlateRegion) -> EpisodeOutcome:
    return EpisodeOutcome({i: Outcome.ABSENT if tracks.get(i) is None else classify(tracks[i], plate)
                           for i in INGREDIENTS})
