"""Automatic outcome guesses for the operator to confirm: ``eval.real_arm.detect`` compares the front camera before
and after a run inside the calibrated plate and holder regions.

Regions: on the simulated arm they come from the scene spec; on the real arm from ``--regions FILE`` or, the first
time, by clicking on a live front-camera frame (saved to ``OUT/regions.json`` for the next session).
Guessing is optional: if it fails the operator simply types every outcome.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from eval.real_arm.operator import Guess
from leisaac_tasks.outcomes import Outcome
from leisaac_tasks.scenarios import Scenario


class GuessSetupError(RuntimeError):
    """Regions can't be had (no file, no display to click on); the message names the fix."""


class Guesser:
    def __init__(self, regions: Any):
        from eval.real_arm import detect

        self._propose = detect.propose
        self.regions = regions
        self.failures = 0

    def guess(self, before: np.ndarray | None, after: np.ndarray | None, scenario: Scenario,
              frames: list[np.ndarray] | None = None) -> dict[str, Guess]:
        if before is None or after is None:
            return {}
        try:
            proposals = self._propose(before, after, self.regions, scenario, frames=frames)
        except Exception as exc:  # noqa: BLE001  a detector failure must not cost the trial: the operator types
            self.failures += 1
            print(f"automatic guess failed ({type(exc).__name__}: {exc}); type the outcome", file=sys.stderr)
            return {}
        return {name: Guess(Outcome(p.outcome), float(p.confidence), str(getattr(p, "why", "")))
                for name, p in proposals.items() if scenario.present(name)}


def sim_guesser(robot) -> Guesser:
    from eval.real_arm import detect

    size = robot.config.image_size
    return Guesser(detect.regions_from_scene(robot.env.scene, camera="front", image_size=size))


def real_guesser(robot, regions_file: Path | None, out: Path) -> Guesser:
    """Regions from ``regions_file``, else from ``OUT/regions.json``, else by clicking (then saved there)."""
    from eval.real_arm import detect

    saved = out / "regions.json"
    for path in (regions_file, saved):
        if path is not None and Path(path).exists():
            return Guesser(detect.load_regions(Path(path)))
    if regions_file is not None:
        raise GuessSetupError(f"--regions {regions_file} does not exist; drop the flag to calibrate by clicking, "
                              f"or pass --no-detect")
    frame = np.asarray(robot.get_observation()["front"])
    try:
        regions = detect.calibrate_by_clicking(frame)
    except Exception as exc:  # noqa: BLE001  headless OpenCV, no display
        raise GuessSetupError(f"could not calibrate the plate/holder regions by clicking ({type(exc).__name__}: "
                              f"{exc}); run where a display is available, pass --regions FILE, or --no-detect") from exc
    detect.save_regions(regions, saved)
    print(f"regions saved to {saved}; pass --regions {saved} next time")
    return Guesser(regions)
