"""Training data for the GR00T-style VLA: demo datasets (LeRobot v3.0) held in memory, cut into action windows.

Training also runs on a GPU machine without LeRobot or the Hugging Face libraries, so this module reads the v3
files itself: parquet through pyarrow, the concatenated mp4 files through PyAV (via the episode cutter of
``training.demos.export_gr00t``). It runs without lerobot, datasets, huggingface_hub, pandas, torchvision,
mujoco or the simulator (a test blocks them all). Note that ``import leisaac_tasks`` imports gymnasium, to
register the env ids, so gymnasium (and farama-notifications) must be there too.

    data = DemoData(["datasets/seed/cheese", "datasets/seed/bread"], image_size=96)
    windows = TrainingWindows(data, horizon=16)
    stats = compute_norm_stats(windows)                 # save stats.to_dict() next to the checkpoint
    loader = DataLoader(windows, batch_size=64, collate_fn=collate,
                        sampler=mixture_sampler(windows, balance_dataset_weights=True,
                                                balance_trajectory_weights=True, seed=0))
    for batch in loader:
        target = stats.normalize_actions(batch["actions"], batch["state"])   # (B, 16, 6) in [-1, 1]

Units are LeRobot's SO-101 units throughout (5 arm joints in degrees, gripper 0-100), as the datasets store them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from leisaac_tasks.dataset import CAMERAS, DatasetError, check_dataset
from leisaac_tasks.v3_files import (STATE_DIM, VIDEO_KEYS, check_demo_features, episode_frames, read_parquet,
                                    source_episodes, width_height)
from policies.vla.images import resize_images
from policies.vla.normalize import ARM_DIMS, NormStats

DEFAULT_HORIZON = 16

__all__ = ["Episode", "DemoData", "TrainingWindows", "WindowBatches", "compute_norm_stats", "mixture_weights",
           "mixture_sampler", "collate", "DatasetError", "DEFAULT_HORIZON"]


# --- loading ---------------------------------------------------------------------------------------------------
@dataclass
class Episode:
    """One demo, fully in memory. Frame i of each camera goes with ``states[i]`` and ``actions[i]``."""

    dataset: int  # index of the dataset root in DemoData.roots
    episode_index: int  # LeRobot's episode_index inside that dataset
    task: str
    front: torch.Tensor  # uint8 (T, 3, S, S)
    wrist: torch.Tensor  # uint8 (T, 3, S, S)
    states: torch.Tensor  # float32 (T, 6)
    actions: torch.Tensor  # float32 (T, 6)

    @property
    def length(self) -> int:
        return len(self.states)


class DemoData:
    """Every episode of one or more demo datasets, decoded once: ``DemoData(roots, image_size)``.

    Frames are resized to ``image_size`` x ``image_size`` by ``policies.vla.images.resize_images``, the function
    every acting path uses (skipped when the video already has that size: its pixels then equal LeRobot's own
    decoding exactly); a non-square video is squashed, not cropped. Memory is about
    ``frames * 2 cameras * 3 * S * S`` bytes, e.g. 100k frames at S=96 take 5.5 GB.
    """

    roots: list[Path]
    image_size: int
    fps: int
    episodes: list[Episode]

    def __init__(self, roots: Path | str | Sequence[Path | str], image_size: int, verbose: bool = False):
        roots = [Path(roots)] if isinstance(roots, (str, Path)) else [Path(r) for r in roots]
        if not roots:
            raise ValueError("DemoData needs at least one dataset folder")
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        # Check every dataset before decoding any: a bad third dataset should fail in a second, not after minutes.
        infos = [_check_training_dataset(root) for root in roots]
        fps = int(infos[0]["fps"])
        for root, info in zip(roots, infos):
            if int(info["fps"]) != fps:  # the action horizon is counted in steps, so the rates must agree
                raise DatasetError(f"{root} was recorded at {info['fps']} fps but {roots[0]} at {fps} fps; an "
                                   f"action horizon in steps would mean different durations. Train on datasets "
                                   f"of one frame rate")
        episodes: list[Episode] = []
        for d, (root, info) in enumerate(zip(roots, infos)):
            start = time.perf_counter()
            loaded = _load_episodes(root, info, d, image_size)
            episodes += loaded
            if verbose:
                frames = sum(e.length for e in loaded)
                seconds = time.perf_counter() - start
                print(f"{root}: {len(loaded)} episodes, {frames} frames x {len(CAMERAS)} cameras in "
                      f"{seconds:.1f}s ({len(CAMERAS) * frames / max(seconds, 1e-9):.0f} frames/s)")
        self.roots, self.image_size, self.fps, self.episodes = roots, image_size, fps, episodes

    @classmethod
    def from_episodes(cls, episodes: list[Episode], roots: Sequence[Path | str], image_size: int,
                      fps: int) -> "DemoData":
        """Episodes already in memory (tests, synthetic data); ``episode.dataset`` indexes ``roots``."""
        data = cls.__new__(cls)
        data.roots, data.image_size, data.fps, data.episodes = [Path(r) for r in roots], image_size, fps, episodes
        return data

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return sum(e.length for e in self.episodes)

    def state_action_pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(states (T, 6), actions (T, 6)) float32 numpy views, episode by episode."""
        for ep in self.episodes:
            yield ep.states.numpy(), ep.actions.numpy()


def _check_training_dataset(root: Path) -> dict[str, Any]:
    """info.json of ``root`` if it is a finished v3 dataset with everything training reads; else one clear error."""
    info = check_dataset(root)  # missing or torn datasets get check_dataset's own message
    check_demo_features(root, info, "training")
    return info


def _load_episodes(root: Path, info: dict[str, Any], dataset: int, image_size: int) -> list[Episode]:
    fps = int(info["fps"])
    meta = source_episodes(root)
    if len(meta) != info["total_episodes"]:
        raise DatasetError(f"{root}: meta/episodes lists {len(meta)} episodes, info.json {info['total_episodes']}; "
                           f"the dataset is damaged. Regenerate it")
    episodes: list[Episode] = []
    file_key, columns = None, {}
    for ep in meta:
        e, length = int(ep["episode_index"]), int(ep["length"])
        if len(ep["tasks"]) != 1:
            raise DatasetError(f"{root}: episode {e} has {len(ep['tasks'])} tasks {ep['tasks']}; training takes "
                               f"one instruction per episode")
        key = (int(ep["data/chunk_index"]), int(ep["data/file_index"]))
        if key != file_key:  # episodes come in file order and share v3 files: read each file once
            file_key = key
            columns = _read_data_file(root / info["data_path"].format(chunk_index=key[0], file_index=key[1]))
        rows = np.flatnonzero(columns["episode_index"] == e)
        if len(rows) != length or not np.array_equal(columns["frame_index"][rows], np.arange(length)):
            raise DatasetError(f"{root}: episode {e} has {len(rows)} rows in its data file, its index says {length}; "
                               f"the dataset is damaged. Regenerate it")
        cams = {cam: _decode_episode(root, info, ep, video_key, fps, image_size)
                for cam, video_key in zip(CAMERAS, VIDEO_KEYS)}
        episodes.append(Episode(dataset=dataset, episode_index=e, task=str(ep["tasks"][0]), **cams,
                                states=torch.from_numpy(columns["observation.state"][rows]),
                                actions=torch.from_numpy(columns["action"][rows])))
    return episodes


def _read_data_file(path: Path) -> dict[str, np.ndarray]:
    table = read_parquet(path, ["observation.state", "action", "episode_index", "frame_index"])
    out: dict[str, np.ndarray] = {}
    for name in ("observation.state", "action"):
        col = table[name].combine_chunks()
        out[name] = np.asarray(col.flatten(), dtype=np.float32).reshape(len(col), STATE_DIM)  # flatten honours slices
    for name in ("episode_index", "frame_index"):
        out[name] = table[name].to_numpy()
    return out


def _decode_episode(root: Path, info: dict[str, Any], ep: dict[str, Any], video_key: str, fps: int,
                    image_size: int) -> torch.Tensor:
    """uint8 (T, 3, S, S): the episode's frames, frame i at from_timestamp + i/fps of the shared mp4."""
    import av

    length = int(ep["length"])
    from_ts, to_ts = float(ep[f"videos/{video_key}/from_timestamp"]), float(ep[f"videos/{video_key}/to_timestamp"])
    if abs((to_ts - from_ts) * fps - length) > 0.5:
        raise DatasetError(f"{root}: episode {ep['episode_index']} spans {from_ts:.3f}-{to_ts:.3f}s of {video_key}, "
                           f"which is not its {length} frames at {fps} fps; the dataset is damaged. Regenerate it")
    path = root / info["video_path"].format(video_key=video_key, chunk_index=ep[f"videos/{video_key}/chunk_index"],
                                           file_index=ep[f"videos/{video_key}/file_index"])
    width, height = width_height(info["features"][video_key])
    frames = np.empty((length, height, width, 3), np.uint8)
    n = 0
    # episode_frames seeks, checks every frame's timestamp and raises unless exactly `length` frames come out.
    # It yields yuv420p planes; converting them with PyAV's default swscale path gives the same RGB bytes as
    # decoding straight to rgb24 (LeRobot's pyav backend) for the untagged streams LeRobot writes (tested).
    for planes in episode_frames(path, from_ts, length, fps):
        if planes.shape != (height * 3 // 2, width):
            raise DatasetError(f"{path}: frames are not {width}x{height} as info.json says; regenerate the dataset")
        frames[n] = av.VideoFrame.from_ndarray(planes, format="yuv420p").to_ndarray(format="rgb24")
        n += 1
    return resize_images(frames, image_size).contiguous()  # the acting paths' preprocessing, exactly


# --- windows ---------------------------------------------------------------------------------------------------
class TrainingWindows(Dataset):
    """Item i is step t of episode e (episodes in order, steps in order): what the robot saw and did at t.

    ``actions`` are ``actions[t : t+H]`` of the episode; near the end the last action is repeated (the arm holds
    its final target) and ``action_mask`` is False on those padded steps, so a loss can leave them out.
    Every step is an item, including the last H-1, as in GR00T's LeRobotSingleDataset.
    """

    def __init__(self, data: DemoData, horizon: int = DEFAULT_HORIZON):
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        self.data = data
        self.horizon = horizon
        lengths = np.array([e.length for e in data.episodes], dtype=np.int64)
        self.episode_lengths = lengths
        self.episode_datasets = np.array([e.dataset for e in data.episodes], dtype=np.int64)
        self.item_episode = np.repeat(np.arange(len(lengths)), lengths)  # item -> episode
        self.item_step = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # item -> t
        self._offsets = torch.arange(horizon)

    def __len__(self) -> int:
        return len(self.item_episode)

    def locate(self, index: int) -> tuple[int, int]:
        """(episode, step) of item ``index``."""
        return int(self.item_episode[index]), int(self.item_step[index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        e, t = self.locate(index)
        ep = self.data.episodes[e]
        steps = t + self._offsets
        return {
            "front": ep.front[t],
            "wrist": ep.wrist[t],
            "state": ep.states[t],
            "actions": ep.actions[steps.clamp(max=ep.length - 1)],
            "action_mask": steps < ep.length,
            "task": ep.task,
        }


class WindowBatches:
    """Batches of ``TrainingWindows`` items gathered on one device: ``batches(indices)`` equals
    ``collate([windows[i] for i in indices])`` moved to ``device``, without a Python call per item.

    Every frame is copied to the device once, as uint8 (on a GPU the whole dataset then lives there: about
    ``frames * 2 cameras * 3 * S * S`` bytes), so a training step gathers its batch with a few indexing kernels
    instead of stacking items on the CPU and copying them over.
    """

    def __init__(self, windows: TrainingWindows, device: torch.device | str = "cpu"):
        episodes = windows.data.episodes
        self.device, self.horizon = torch.device(device), windows.horizon
        lengths = torch.from_numpy(windows.episode_lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        item_episode = torch.from_numpy(windows.item_episode)
        self.item_frame = starts[item_episode] + torch.from_numpy(windows.item_step)  # flat frame of item i
        self.item_end = (starts + lengths)[item_episode]  # one past its episode's last frame
        self.item_task = [episodes[e].task for e in windows.item_episode.tolist()]
        self._offsets = torch.arange(windows.horizon)
        n = int(lengths.sum())
        # Filled episode by episode, so the host never holds a second full copy next to DemoData's.
        self.frames: dict[str, torch.Tensor] = {}
        for cam in CAMERAS:
            shape = getattr(episodes[0], cam).shape[1:] if episodes else (3, 1, 1)
            self.frames[cam] = torch.empty((n, *shape), dtype=torch.uint8, device=self.device)
        self.states = torch.empty((n, STATE_DIM), dtype=torch.float32, device=self.device)
        self.actions = torch.empty((n, STATE_DIM), dtype=torch.float32, device=self.device)
        for ep, start in zip(episodes, starts.tolist()):
            span = slice(start, start + ep.length)
            for cam in CAMERAS:
                self.frames[cam][span] = getattr(ep, cam)
            self.states[span], self.actions[span] = ep.states, ep.actions

    def __call__(self, indices: Sequence[int]) -> dict[str, Any]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        frame, end = self.item_frame[idx], self.item_end[idx]
        steps = frame[:, None] + self._offsets  # (B, H) flat frames of each window
        to = lambda t: t.to(self.device, non_blocking=True)  # noqa: E731
        frame_d = to(frame)
        return {**{cam: frames[frame_d] for cam, frames in self.frames.items()},
                "state": self.states[frame_d],
                "actions": self.actions[to(torch.minimum(steps, end[:, None] - 1))],
                "action_mask": to(steps < end[:, None]),
                "task": [self.item_task[i] for i in idx.tolist()]}


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the tensors of a list of items; ``task`` stays a list of str (the tokenizer runs on the batch)."""
    out: dict[str, Any] = {}
    for key, value in batch[0].items():
        out[key] = torch.stack([b[key] for b in batch]) if isinstance(value, torch.Tensor) else [b[key] for b in batch]
    return out


# --- mixture sampling ------------------------------------------------------------------------------------------
def mixture_weights(windows: TrainingWindows, balance_dataset_weights: bool = True,
                    balance_trajectory_weights: bool = True,
                    dataset_weights: Sequence[float] | None = None) -> np.ndarray:
    """Probability of each item of ``windows`` (float64, sums to 1), as Isaac-GR00T's LeRobotMixtureDataset.

    GR00T (``gr00t/data/dataset.py``) samples in three stages: a dataset, then a trajectory of it, then a step of
    that trajectory uniformly. With ``w_d`` the mixture weight of dataset d (default 1 each), N_d its number of
    steps and L_e the length of episode e:

    * ``balance_dataset_weights=True``: P(d) ~ w_d * N_d. Despite the name this does NOT give each dataset an
      equal share: it scales the weights by dataset size, so with equal weights every step of the mixture is
      equally likely and a dataset 3x larger is drawn 3x as often. ``False``: P(d) ~ w_d, so equal weights give
      each dataset an equal share however small it is (its steps are repeated more).
    * ``balance_trajectory_weights=True``: P(e | d) ~ L_e, so every step within a dataset is equally likely.
      ``False``: P(e | d) = 1 / (episodes in d), so each episode is drawn equally often and the steps of short
      episodes more often than those of long ones.

    An item's probability is P(d) * P(e | d) / L_e. (GR00T's ``gr00t_finetune.py`` defaults: both True.)
    """
    lengths, datasets = windows.episode_lengths.astype(np.float64), windows.episode_datasets
    n_datasets = len(windows.data.roots)
    w = np.ones(n_datasets) if dataset_weights is None else np.asarray(dataset_weights, dtype=np.float64)
    if w.shape != (n_datasets,) or (w < 0).any() or not np.isfinite(w).all():
        raise ValueError(f"dataset_weights needs one non-negative number per dataset ({n_datasets}), got "
                         f"{dataset_weights}")
    steps = np.bincount(datasets, weights=lengths, minlength=n_datasets)
    p_dataset = w * steps if balance_dataset_weights else w * (steps > 0)  # an empty dataset can't be drawn
    if p_dataset.sum() <= 0:
        raise ValueError("no dataset can be sampled: every dataset is empty or has weight 0")
    p_dataset /= p_dataset.sum()
    traj = lengths if balance_trajectory_weights else np.ones_like(lengths)
    p_episode = p_dataset[datasets] * traj / np.bincount(datasets, weights=traj, minlength=n_datasets)[datasets]
    return (p_episode / lengths)[windows.item_episode]


def mixture_sampler(windows: TrainingWindows, balance_dataset_weights: bool = True,
                    balance_trajectory_weights: bool = True, seed: int = 42,
                    dataset_weights: Sequence[float] | None = None,
                    num_samples: int | None = None) -> WeightedRandomSampler:
    """A sampler drawing items (with replacement) with :func:`mixture_weights`' probabilities.

    ``num_samples`` is the length of one pass (default ``len(windows)``); each pass draws fresh items, and the
    seeded generator makes the whole sequence of passes reproducible.
    """
    weights = torch.from_numpy(mixture_weights(windows, balance_dataset_weights, balance_trajectory_weights,
                                               dataset_weights))
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(weights, num_samples or len(windows), replacement=True, generator=generator)


def compute_norm_stats(data: TrainingWindows | DemoData, horizon: int | None = None) -> NormStats:
    """Min/max over every frame of the state, and over every (t, k < H) of the action targets (see NormStats).

    Padded window steps repeat the last action, whose pair (t, T-1) is already a real one, so they add nothing.
    """
    if isinstance(data, TrainingWindows):
        horizon = horizon or data.horizon
        data = data.data
    horizon = horizon or DEFAULT_HORIZON
    if not data.episodes:
        raise ValueError("no episodes to compute normalisation statistics from")
    s_lo = torch.full((STATE_DIM,), torch.inf, dtype=torch.float64)
    s_hi, a_lo, a_hi = -s_lo.clone(), s_lo.clone(), -s_lo.clone()
    offsets = torch.arange(horizon)
    for ep in data.episodes:
        states, actions = ep.states.double(), ep.actions.double()
        steps = (torch.arange(ep.length)[:, None] + offsets).clamp(max=ep.length - 1)  # (T, H)
        targets = actions[steps]  # (T, H, 6)
        targets[..., :ARM_DIMS] -= states[:, None, :ARM_DIMS]
        s_lo, s_hi = torch.minimum(s_lo, states.amin(0)), torch.maximum(s_hi, states.amax(0))
        a_lo, a_hi = torch.minimum(a_lo, targets.amin((0, 1))), torch.maximum(a_hi, targets.amax((0, 1)))
    as_tuple = lambda t: tuple(float(v) for v in t)  # noqa: E731
    return NormStats(as_tuple(s_lo), as_tuple(s_hi), as_tuple(a_lo), as_tuple(a_hi), horizon=horizon)
