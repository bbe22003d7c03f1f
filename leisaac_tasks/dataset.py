"""Demo datasets: LeRobot v3.0, written through LeRobot's own ``LeRobotDataset`` API.

Frames hold ``observation.images.front``/``.wrist`` (video), ``observation.state`` and ``action`` (6 values in
LeRobot's SO-101 units, see ``leisaac_tasks.units``) and ``task`` (the instruction). Next to LeRobot's files, each
dataset keeps a journal, ``meta/chefmate_attempts.jsonl``: one line per attempted demo, kept or rejected, with its
scenario, instruction, intent and seeds, so runs resume exactly and the necessity report knows each scene.

LeRobot only writes parquet footers when a dataset is finalized, so the writer finalizes at every checkpoint and
on any exit, and appends the journal only after a checkpoint is safely on disk. Frames stream straight into
LeRobot's video encoder (``streaming_encoding``): no PNG is staged on disk, and a discarded attempt's encoder is
cancelled.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leisaac_tasks.units import JOINT_NAMES, sim_to_lerobot

JOURNAL = Path("meta") / "chefmate_attempts.jsonl"
CAMERAS: tuple[str, ...] = ("front", "wrist")
ROBOT_TYPE = "so101_follower"
DEFAULT_FPS = 30
VCODEC = "h264"  # decodes everywhere (PyAV, torchcodec, decord); LeRobot's AV1 default needs a newer FFmpeg


def _writer_options() -> dict[str, Any]:
    """How LeRobot encodes our videos: H.264, fed frame by frame as they are recorded.

    LeRobot's streaming encoder drops a frame (with only a warning) when its queue stays full for 0.1 s, which a
    loaded box or a vectorized run writing a whole episode at once does; every later frame of the episode then
    decodes at the wrong timestamp. A queue size of 0 is unbounded, so nothing is dropped: at worst one episode's
    frames wait in memory (the writer records one episode at a time)."""
    from lerobot.configs.video import RGBEncoderConfig

    return {"rgb_encoder": RGBEncoderConfig(vcodec=VCODEC), "streaming_encoding": True, "encoder_queue_maxsize": 0}


class DatasetError(RuntimeError):
    """A dataset on disk can't be used as asked; the message names the path and the fix."""


def features(image_size: tuple[int, int], cameras: tuple[str, ...] = CAMERAS) -> dict[str, dict]:
    """LeRobot feature spec. ``image_size`` is (width, height)."""
    width, height = image_size
    motors = [f"{name}.pos" for name in JOINT_NAMES]
    feats: dict[str, dict] = {
        f"observation.images.{cam}": {"dtype": "video", "shape": (height, width, 3),
                                      "names": ["height", "width", "channels"]}
        for cam in cameras
    }
    feats["observation.state"] = {"dtype": "float32", "shape": (6,), "names": motors}
    feats["action"] = {"dtype": "float32", "shape": (6,), "names": motors}
    return feats


@dataclass
class Attempt:
    """One attempted demo. ``episode_index`` is set only for kept ones."""

    attempt: int
    source: str  # scripted | keyboard | leader
    scenario: str
    instruction: str
    intent: str
    layout_seed: int
    success: bool
    outcome: str  # EpisodeOutcome.label, e.g. "cheese=on_plate,bread=untouched"
    frames: int
    behaviour: str = ""  # EpisodeOutcome.behaviour, e.g. "picked_cheese" or "none"
    episode_index: int | None = None
    recipe: str = ""
    part: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def read_journal(root: Path) -> list[Attempt]:
    path = Path(root) / JOURNAL
    if not path.exists():
        return []
    attempts = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            attempts.append(Attempt(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise DatasetError(f"{path}, line {n}, is not a demo journal entry ({exc}); restore the file or "
                               f"regenerate the dataset") from exc
    return attempts


def check_dataset(root: Path) -> dict[str, Any]:
    """Fail with one clear message unless ``root`` is a complete, readable LeRobot v3 dataset; return info.json."""
    import pyarrow.parquet as pq

    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise DatasetError(f"{root} is not a LeRobot dataset (no meta/info.json); point at a dataset folder "
                           f"written by `chefmate-generate`")
    info = json.loads(info_path.read_text())
    rows: dict[str, int] = {}
    for part in ("data", "meta/episodes"):
        files = sorted((root / part).glob("chunk-*/file-*.parquet"))
        if not files:
            raise DatasetError(f"{root} has no {part} parquet files; the dataset was never finalized. "
                               f"Delete it and generate again")
        total = 0
        for f in files:
            try:
                total += pq.read_metadata(f).num_rows
            except Exception as exc:  # pyarrow raises several types for a torn file
                raise DatasetError(f"{f} is corrupted ({type(exc).__name__}: {exc}). The run that wrote it was "
                                   f"probably killed before it finalized. Delete {root} and generate again; "
                                   f"nothing was changed") from exc
        rows[part] = total
    if rows["meta/episodes"] != info["total_episodes"] or rows["data"] != info["total_frames"]:
        raise DatasetError(f"{root} is inconsistent: info.json says {info['total_episodes']} episodes / "
                           f"{info['total_frames']} frames, the parquet files hold {rows['meta/episodes']} / "
                           f"{rows['data']}. It was not closed cleanly; delete it and generate again")
    return info


def load_dataset(root: Path, **kwargs: Any):
    """Read a dataset back with LeRobot (PyAV decoding, so no system FFmpeg is needed for it)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    check_dataset(root)
    return LeRobotDataset(repo_id=f"chefmate/{Path(root).name}", root=root, video_backend="pyav", **kwargs)


class DemoWriter:
    """Record episodes into a LeRobot v3 dataset, frame by frame, keeping or discarding each one.

    Use as a context manager; leaving it (normally or by an exception) finalizes what was saved. A new dataset
    that ends with no episode is removed, so a failed run leaves nothing half-written behind.
    """

    def __init__(self, root: Path, image_size: tuple[int, int], fps: int = DEFAULT_FPS, resume: bool = False,
                 checkpoint_every: int = 10, cameras: tuple[str, ...] = CAMERAS):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self.root = Path(root)
        self.cameras = cameras
        self.checkpoint_every = max(1, checkpoint_every)
        self.created = False
        if self.root.exists() and not resume:
            raise DatasetError(f"{self.root} already exists; pass --resume to add to it, or choose another --out")
        repo_id = f"chefmate/{self.root.name}"
        if resume and self.root.exists():
            info = check_dataset(self.root)
            if info["fps"] != fps:
                raise DatasetError(f"{self.root} was recorded at {info['fps']} fps, not {fps}; resume with "
                                   f"--fps {info['fps']}")
            want = features(image_size, cameras)
            have = {k: v for k, v in info["features"].items() if k in want}
            for key, ft in want.items():
                if key not in have or tuple(have[key]["shape"]) != tuple(ft["shape"]):
                    raise DatasetError(f"{self.root} stores {key} as {have.get(key, {}).get('shape')}, this run "
                                       f"would write {ft['shape']}; resume with the same --image-size")
            self.journal = read_journal(self.root)
            kept = sum(a.episode_index is not None for a in self.journal)
            if kept != info["total_episodes"]:
                raise DatasetError(f"{self.root} holds {info['total_episodes']} episodes but its journal lists "
                                   f"{kept}; it was changed outside this tool. Start a new dataset")
            self.ds = LeRobotDataset.resume(repo_id=repo_id, root=self.root, video_backend="pyav",
                                            **_writer_options())
        else:
            # PyAV decodes, as everywhere here: without a backend LeRobot probes torchcodec, which on a machine
            # without FFmpeg's libraries logs a 100-line traceback before falling back to PyAV anyway.
            self.ds = LeRobotDataset.create(repo_id=repo_id, fps=fps, features=features(image_size, cameras),
                                            root=self.root, robot_type=ROBOT_TYPE, use_videos=True,
                                            video_backend="pyav", **_writer_options())
            self.journal = []
            self.created = True
        self._pending: list[Attempt] = []
        self._frames = 0
        self._since_checkpoint = 0

    # --- episodes ------------------------------------------------------------------------------------
    @property
    def episodes(self) -> int:
        return sum(a.episode_index is not None for a in self.journal + self._pending)

    @property
    def next_attempt(self) -> int:
        return max((a.attempt for a in self.journal + self._pending), default=-1) + 1

    def add_frame(self, observation: dict[str, np.ndarray], action_rad: np.ndarray, task: str) -> None:
        """One control step: what the robot saw and the joint targets (radians) it was sent."""
        frame = {f"observation.images.{cam}": observation[cam] for cam in self.cameras}
        frame["observation.state"] = sim_to_lerobot(observation["state"]).astype(np.float32)
        frame["action"] = sim_to_lerobot(action_rad).astype(np.float32)
        frame["task"] = task
        self.ds.add_frame(frame)
        self._frames += 1

    def keep(self, attempt: Attempt) -> None:
        attempt.episode_index = self.ds.meta.total_episodes
        attempt.frames = self._frames
        self.ds.save_episode()
        self._log(attempt)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self.checkpoint_every:
            self.checkpoint()

    def discard(self, attempt: Attempt) -> None:
        attempt.episode_index = None
        attempt.frames = self._frames or attempt.frames  # a vectorized run never stages a rejected attempt's frames
        self._drop_buffer()
        self._log(attempt)

    def _drop_buffer(self) -> None:
        """Forget the episode being recorded: LeRobot cancels its streaming encoder, so none of its frames can
        leak into the next episode's video (tests/test_demos.py keeps the regression test from 0.4.4, whose
        staged PNGs of video features survived ``clear_episode_buffer``)."""
        if not self._frames:
            return
        self.ds.clear_episode_buffer()
        self._frames = 0

    def _log(self, attempt: Attempt) -> None:
        self._pending.append(attempt)
        self._frames = 0

    def checkpoint(self) -> None:
        """Finalize LeRobot's files, then append the journal: what the journal lists is always on disk."""
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self.ds.finalize()
        self._flush_journal()
        self._since_checkpoint = 0
        if self.ds.meta.total_episodes:  # reopen so the next episode goes to fresh files (LeRobot's resume path)
            self.ds = LeRobotDataset.resume(repo_id=self.ds.repo_id, root=self.root, video_backend="pyav",
                                            **_writer_options())

    # --- lifetime ------------------------------------------------------------------------------------
    def __enter__(self) -> "DemoWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.ds.has_pending_frames():
            self._drop_buffer()  # an unfinished episode is dropped, never half-saved
        if self.created and self.ds.meta.total_episodes == 0:
            self.ds.finalize()
            shutil.rmtree(self.root, ignore_errors=True)
            return
        self.ds.finalize()
        self._flush_journal()

    def _flush_journal(self) -> None:
        with open(self.root / JOURNAL, "a") as f:
            for attempt in self._pending:
                f.write(json.dumps(asdict(attempt)) + "\n")
        self.journal += self._pending
        self._pending = []
