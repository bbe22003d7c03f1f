"""Reading LeRobot v3.0 dataset files directly (pyarrow + PyAV), without LeRobot itself.

The GR00T exporter and the training loader both need this; training also runs on machines without LeRobot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from leisaac_tasks.dataset import CAMERAS, DatasetError

VIDEO_KEYS: tuple[str, ...] = tuple(f"observation.images.{cam}" for cam in CAMERAS)
STATE_DIM = 6  # 5 SO-101 joints + gripper


def read_parquet(path: Path, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except Exception as exc:  # pyarrow raises several types for a torn file
        raise DatasetError(f"{path} can't be read ({type(exc).__name__}: {exc}); the dataset is damaged. "
                           f"Regenerate it; nothing was written") from exc


def source_episodes(root: Path) -> list[dict[str, Any]]:
    """meta/episodes rows (without the per-episode stats), sorted by episode_index."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        names = pq.read_schema(f).names
        rows += read_parquet(f, [n for n in names if not n.startswith("stats/")]).to_pylist()
    return sorted(rows, key=lambda r: r["episode_index"])


def source_tasks(root: Path) -> dict[int, str]:
    """meta/tasks.parquet: LeRobot v3 keeps the task text as the index and task_index as the column."""
    df = read_parquet(root / "meta" / "tasks.parquet").to_pandas()
    return {int(i): str(task) for task, i in zip(df.index, df["task_index"])}


def episode_frames(path: Path, from_ts: float, length: int, fps: int) -> Iterator[np.ndarray]:
    """The ``length`` frames of one episode inside a v3 video file (starting at ``from_ts``), as yuv420p planes."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{path} has no video stream; the dataset is damaged. Regenerate it")
            stream = container.streams.video[0]
            container.seek(int(from_ts / stream.time_base), stream=stream, backward=True)  # keyframe at/before
            expected = 0
            for frame in container.decode(stream):
                i = round((float(frame.pts * stream.time_base) - from_ts) * fps)
                if i < expected:  # decoded from the keyframe before this episode
                    continue
                if i > expected:
                    raise DatasetError(f"{path}: frame {expected} of the episode at {from_ts:.3f}s is missing")
                yield frame.to_ndarray(format="yuv420p")
                expected += 1
                if expected == length:
                    return
    except av.FFmpegError as exc:
        raise DatasetError(f"{path} can't be decoded ({exc}); the dataset is damaged. Regenerate it") from exc
    raise DatasetError(f"{path} holds {expected} frames of the episode at {from_ts:.3f}s, the episode index says "
                       f"{length}; the dataset is damaged. Regenerate it")


def width_height(feature: dict[str, Any]) -> tuple[int, int]:
    shape, names = feature["shape"], feature["names"]
    return shape[names.index("width")], shape[names.index("height")]


def check_demo_features(root: Path, info: dict[str, Any], reader: str) -> None:
    """What every consumer of a demo dataset relies on: LeRobot v3.0, RGB video from both cameras, and a
    6-vector state and action. ``reader`` names the consumer in the message ("training", "the GR00T export")."""
    if info.get("codebase_version") != "v3.0":
        raise DatasetError(f"{root} is LeRobot {info.get('codebase_version')}, not v3.0; {reader} reads the "
                           f"datasets written by `chefmate-generate`")
    feats = info.get("features", {})
    for key in VIDEO_KEYS:
        ft = feats.get(key)
        if ft is None or ft.get("dtype") != "video" or not _is_rgb(ft):
            found = "missing" if ft is None else f"a {ft.get('dtype')} feature of shape {tuple(ft.get('shape', ()))}"
            raise DatasetError(f"{root}: {key} is {found}; {reader} needs RGB video from both cameras "
                               f"({', '.join(VIDEO_KEYS)}). Record the dataset with both cameras "
                               f"(`chefmate-generate` does) or leave it out")
    for key in ("observation.state", "action"):
        ft = feats.get(key)
        if ft is None or tuple(ft.get("shape", ())) != (STATE_DIM,):
            found = "missing" if ft is None else f"of shape {tuple(ft.get('shape', ()))}"
            raise DatasetError(f"{root}: {key} is {found}, {reader} needs a {STATE_DIM}-vector (5 SO-101 joints in "
                               f"degrees + gripper 0-100). Regenerate the dataset with `python -m "
                               f"chefmate-generate` or leave it out")


def _is_rgb(feature: dict[str, Any]) -> bool:
    names, shape = feature.get("names") or [], feature.get("shape") or []
    return len(shape) == 3 and {"height", "width", "channels"} <= set(names) and shape[names.index("channels")] == 3
