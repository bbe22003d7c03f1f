"""Where a study keeps each unit of work, and how a finished unit is marked (last, atomically)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leisaac_tasks.atomic import write_text_atomic
from training.study.spec import StudySpec

MARKER = "DONE.json"
EPISODES = "episodes.csv"  # as the evaluation grid writes it
EPISODES_KEPT = EPISODES + ".gz"  # as the committed study keeps it (training.study.keep)
SUPERSEDED = ".superseded-"  # runs/NAME.superseded-K: a run trained for an older spec, moved aside (never deleted)


def run_name(data: str, tuning: str, seed: int) -> str:
    return f"{data}__{tuning}__s{seed}"


@dataclass(frozen=True)
class Layout:
    out: Path

    def data(self, name: str) -> Path:
        return self.out / "data" / name

    @property
    def backbone(self) -> Path:
        return self.out / "backbone"

    @property
    def base(self) -> Path:
        return self.out / "base"

    def run(self, name: str) -> Path:
        return self.out / "runs" / name

    def model(self, name: str) -> Path:
        return self.run(name) / "model"

    def grid(self, name: str) -> Path:
        return self.run(name) / "eval"

    def diagnosis(self, name: str) -> Path:
        return self.run(name) / "diagnose"

    def episodes(self, name: str) -> Path:
        """The evaluation's episodes: as the grid wrote them, or gzipped as committed (training.study.keep)."""
        written = self.grid(name) / EPISODES
        return written if written.exists() else written.with_name(EPISODES_KEPT)


def is_done(folder: Path) -> bool:
    return (folder / MARKER).exists()


def done_info(folder: Path) -> dict[str, Any]:
    """What a finished unit's marker recorded; {} for an unfinished one."""
    return json.loads((folder / MARKER).read_text()) if is_done(folder) else {}


def mark_done(folder: Path, **info: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # A kill leaves either no marker or a whole one.
    write_text_atomic(folder / MARKER, json.dumps({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}, indent=2))


def eval_seeds(spec: StudySpec) -> tuple[int, ...]:
    e = spec.evaluation
    return tuple(range(e.seed_offset, e.seed_offset + e.layout_seeds))
