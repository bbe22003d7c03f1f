"""The per-episode CSV: one row appended and flushed as each episode ends, so a killed run loses
at most the episode in flight and ``--resume`` picks up where it stopped."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Iterable

COLUMNS = (
    "policy", "backend", "scenario", "instruction", "family", "intent", "seed",
    "cheese", "bread", "behaviour", "outcome_label", "expected", "success", "heuristic_agreement",
    "steps", "sim_seconds", "wall_seconds", "error",
)
KEY_COLUMNS = ("policy", "scenario", "instruction", "seed")


def episode_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[c]) for c in KEY_COLUMNS)


class ResultsFileError(ValueError):
    pass


class ResultStore:
    def __init__(self, path: Path, resume: bool):
        self.path = Path(path)
        self.done: set[tuple[str, ...]] = set()
        if self.path.exists() and self.path.stat().st_size > 0:
            self._drop_partial_last_line()
            self.done = {episode_key(r) for r in self.rows()}
            if self.done and not resume:
                raise ResultsFileError(
                    f"{self.path} already holds {len(self.done)} episodes; pass --resume to continue that run, "
                    f"or choose a new --out directory (nothing was overwritten)")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)

    def rows(self) -> Iterable[dict[str, str]]:
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ResultsFileError(f"{self.path} is not a ChefMate episodes file (header {reader.fieldnames}); "
                                       f"point --out at a fresh directory")
            yield from reader

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, COLUMNS).writerow({c: row.get(c, "") for c in COLUMNS})
            f.flush()
            os.fsync(f.fileno())
        self.done.add(episode_key(row))

    def _drop_partial_last_line(self) -> None:
        """A kill mid-write can leave half a row; drop it so that episode simply runs again."""
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            self.path.write_bytes(data[: data.rfind(b"\n") + 1])
