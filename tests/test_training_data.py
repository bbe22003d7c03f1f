"""training.data: demo datasets read straight from the v3 files, cut into windows, mixed and normalised.

The datasets are synthetic (DemoWriter with flat grey frames, one level per episode/frame/camera), so every
decoded frame can be placed, and LeRobot's own reader is the cross-check for pixels, states and actions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from leisaac_tasks.dataset import Attempt, DatasetError, DemoWriter, load_dataset
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, sim_to_lerobot
from policies.vla.normalize import NormStats
from training.data import (DemoData, Episode, TrainingWindows, collate, compute_norm_stats,
                           mixture_sampler, mixture_weights)

REPO = Path(__file__).resolve().parents[1]
FPS = 30
SIZE = 32
HORIZON = 16
LEVEL_TOLERANCE = 8  # grey levels; neighbouring frames differ by >= 23, so a one-frame shift can't pass
CHEESE = "pick up the yellow cheese and put it into the white plate"
BREAD = "pick up the bread and put it into the white plate"


def frame_level(dataset: int, episode: int, frame: int, camera: str) -> int:
    return 16 + (23 * frame + 61 * episode + 37 * dataset + (100 if camera == "wrist" else 0)) % 200


@dataclass
class Source:
    root: Path
    size: int
    lengths: tuple[int, ...]
    tasks: tuple[str, ...]
    states: list[np.ndarray]  # per episode, LeRobot units, float32
    actions: list[np.ndarray]


def write_dataset(root: Path, dataset: int, size: int, lengths: tuple[int, ...], tasks: tuple[str, ...],
                  cameras: tuple[str, ...] = ("front", "wrist")) -> Source:
    rng = np.random.default_rng(dataset)
    states, actions = [], []
    # checkpoint_every=2 puts episodes 0-1 and 2 in different v3 files, so episode 1 starts mid-file
    with DemoWriter(root, (size, size), fps=FPS, checkpoint_every=2, cameras=cameras) as writer:
        for e, (length, task) in enumerate(zip(lengths, tasks)):
            q = rng.uniform(JOINT_LOW, JOINT_HIGH, size=(length, 6))
            a = rng.uniform(JOINT_LOW, JOINT_HIGH, size=(length, 6))
            for i in range(length):
                obs = {cam: np.full((size, size, 3), frame_level(dataset, e, i, cam), np.uint8) for cam in cameras}
                writer.add_frame({**obs, "state": q[i]}, a[i], task)
            writer.keep(Attempt(attempt=e, source="scripted", scenario="H,H", instruction=task, intent="place",
                                layout_seed=e, success=True, outcome="cheese=on_plate", behaviour="picked_cheese",
                                frames=length))
            states.append(sim_to_lerobot(q).astype(np.float32))
            actions.append(sim_to_lerobot(a).astype(np.float32))
    return Source(root, size, lengths, tasks, states, actions)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Source]:
    base = tmp_path_factory.mktemp("training_data")
    return [write_dataset(base / "a", 0, SIZE, (12, 17, 9), (CHEESE, BREAD, CHEESE)),
            # 48x48 videos, read at 32x32 (resized); a 5-step episode is shorter than the horizon
            write_dataset(base / "b", 1, 48, (20, 5), (BREAD, CHEESE))]


@pytest.fixture(scope="module")
def data(sources) -> DemoData:
    return DemoData([s.root for s in sources], image_size=SIZE)


@pytest.fixture(scope="module")
def windows(data) -> TrainingWindows:
    return TrainingWindows(data, horizon=HORIZON)


# --- loading ------------------------------------------------------------------------------------------------------
def test_episodes_hold_the_recorded_data(data, sources):
    assert data.fps == FPS and data.image_size == SIZE and data.roots == [s.root for s in sources]
    expected = [(d, e, s) for d, s in enumerate(sources) for e in range(len(s.lengths))]
    assert [(ep.dataset, ep.episode_index) for ep in data.episodes] == [(d, e) for d, e, _ in expected]
    for ep, (d, e, src) in zip(data.episodes, expected):
        assert ep.task == src.tasks[e] and ep.length == src.lengths[e]
        assert ep.front.shape == ep.wrist.shape == (ep.length, 3, SIZE, SIZE)
        assert ep.front.dtype == ep.wrist.dtype == torch.uint8
        assert ep.states.dtype == ep.actions.dtype == torch.float32
        np.testing.assert_array_equal(ep.states.numpy(), src.states[e])
        np.testing.assert_array_equal(ep.actions.numpy(), src.actions[e])


def test_each_frame_is_at_its_step(data):
    # flat grey frames stay flat through H.264 and the 48 -> 32 resize, so the level says which frame it is
    for ep in data.episodes:
        for cam in ("front", "wrist"):
            levels = getattr(ep, cam).float().mean((1, 2, 3)).numpy()
            expected = [frame_level(ep.dataset, ep.episode_index, i, cam) for i in range(ep.length)]
            np.testing.assert_allclose(levels, expected, atol=LEVEL_TOLERANCE,
                                       err_msg=f"dataset {ep.dataset} episode {ep.episode_index} {cam}")


def test_frames_equal_lerobot_dataset(sources):
    src = sources[0]  # stored at SIZE, so no resize: the pixels must be LeRobot's, byte for byte
    ours = DemoData(src.root, image_size=SIZE)
    theirs = load_dataset(src.root)
    index = 0
    for ep in ours.episodes:
        for t in range(ep.length):
            item = theirs[index]
            assert int(item["episode_index"]) == ep.episode_index and int(item["frame_index"]) == t
            for cam in ("front", "wrist"):
                pixels = (item[f"observation.images.{cam}"] * 255).round().to(torch.uint8)
                assert torch.equal(pixels, getattr(ep, cam)[t]), (index, cam)
            assert torch.equal(item["observation.state"], ep.states[t])
            assert torch.equal(item["action"], ep.actions[t])
            assert item["task"] == ep.task
            index += 1
    assert index == len(theirs)


def test_resize_is_antialiased_bilinear(sources, data):
    full = DemoData(sources[1].root, image_size=48)
    assert full.episodes[0].front.shape[-2:] == (48, 48)
    expected = torch.nn.functional.interpolate(full.episodes[0].front, size=(SIZE, SIZE), mode="bilinear",
                                               antialias=True, align_corners=False)
    small = next(ep for ep in data.episodes if ep.dataset == 1 and ep.episode_index == 0)
    assert torch.equal(small.front, expected)


def test_training_and_acting_see_identical_pixels(sources, data):
    """The frames a model trains on equal those VLAPolicy feeds it for the same camera image: decode the 48x48
    video at full size, hand those frames to the acting path (model_batch, HWC uint8 like an env's), compare."""
    from policies.vla.config import PRESETS
    from policies.vla.policy import model_batch

    class Tiny:  # model_batch reads only the config
        cfg = replace(PRESETS["tiny"], image_size=SIZE)

    full = DemoData(sources[1].root, image_size=48).episodes[0]
    trained = next(ep for ep in data.episodes if ep.dataset == 1 and ep.episode_index == 0)
    hwc = {cam: getattr(full, cam).permute(0, 2, 3, 1).numpy() for cam in Tiny.cfg.cameras}
    acted = model_batch(Tiny, hwc, np.zeros((len(full.front), 6)), [CHEESE] * len(full.front), "cpu")
    for cam in Tiny.cfg.cameras:
        assert torch.equal(acted[cam], getattr(trained, cam))


# --- windows ------------------------------------------------------------------------------------------------------
def test_windows_pad_the_episode_end_with_the_last_action(windows, data):
    assert len(windows) == data.num_frames == sum(ep.length for ep in data.episodes)
    index = 0
    for e, ep in enumerate(data.episodes):
        for t in range(ep.length):
            item = windows[index]
            assert windows.locate(index) == (e, t)
            real = min(HORIZON, ep.length - t)
            assert item["actions"].shape == (HORIZON, 6) and item["actions"].dtype == torch.float32
            assert item["action_mask"].dtype == torch.bool
            assert item["action_mask"].tolist() == [True] * real + [False] * (HORIZON - real)
            assert torch.equal(item["actions"][:real], ep.actions[t:t + real])
            assert torch.equal(item["actions"][real:], ep.actions[-1].expand(HORIZON - real, 6))
            assert torch.equal(item["state"], ep.states[t])
            assert torch.equal(item["front"], ep.front[t]) and torch.equal(item["wrist"], ep.wrist[t])
            assert item["task"] == ep.task
            index += 1


def test_collate_stacks_tensors_and_keeps_tasks(windows):
    batch = next(iter(DataLoader(windows, batch_size=5, collate_fn=collate)))
    assert batch["front"].shape == batch["wrist"].shape == (5, 3, SIZE, SIZE)
    assert batch["state"].shape == (5, 6) and batch["actions"].shape == (5, HORIZON, 6)
    assert batch["action_mask"].shape == (5, HORIZON)
    assert batch["task"] == [windows[i]["task"] for i in range(5)]


# --- normalisation ------------------------------------------------------------------------------------------------
def test_window_batches_equal_collated_items(windows):
    """The trainer's device-side gather returns what collate over the items would: every frame, the padded
    action windows near episode ends, the masks and the tasks, for indices across episodes and datasets."""
    from training.data import WindowBatches

    batches = WindowBatches(windows, "cpu")
    ends = np.cumsum(windows.episode_lengths) - 1  # last step of each episode: the most padding
    indices = [0, int(ends[0]), int(ends[0]) + 1, *ends[1:].tolist(), len(windows) - 2, 3, 3]
    got, want = batches(indices), collate([windows[i] for i in indices])
    assert got.keys() == want.keys() and got["task"] == want["task"]
    for key in ("front", "wrist", "state", "actions", "action_mask"):
        assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key
    assert not got["action_mask"].all()  # the end-of-episode windows are really padded


def test_norm_stats_are_relative_arm_and_absolute_gripper(windows):
    stats = compute_norm_stats(windows)
    assert stats.horizon == HORIZON
    states = torch.cat([ep.states for ep in windows.data.episodes]).double()
    targets = []
    for i in range(len(windows)):  # the definition, item by item, real steps only
        item = windows[i]
        a = item["actions"][item["action_mask"]].double()
        a[:, :5] -= item["state"][:5].double()
        targets.append(a)
    targets = torch.cat(targets)
    assert stats.state_min == tuple(states.amin(0).tolist()) and stats.state_max == tuple(states.amax(0).tolist())
    assert stats.action_min == tuple(targets.amin(0).tolist())
    assert stats.action_max == tuple(targets.amax(0).tolist())
    assert compute_norm_stats(windows.data, horizon=HORIZON) == stats


def test_normalization_round_trips(windows):
    stats = compute_norm_stats(windows)
    batch = collate([windows[i] for i in range(len(windows))])
    state, actions = batch["state"], batch["actions"]
    norm = stats.normalize_actions(actions, state)
    assert norm.dtype == torch.float32 and norm.shape == actions.shape
    assert norm.min() >= -1 - 1e-6 and norm.max() <= 1 + 1e-6
    assert torch.isclose(norm.amin((0, 1)), torch.tensor(-1.0)).all()  # the extremes are reached, per dim
    assert torch.isclose(norm.amax((0, 1)), torch.tensor(1.0)).all()
    # computed in float64: back to the very same float32 values, bit for bit
    back = stats.unnormalize_actions(stats.normalize_actions(actions.double(), state.double()), state.double())
    assert torch.equal(back.float(), actions)
    assert torch.equal(stats.unnormalize_state(stats.normalize_state(state.double())).float(), state)
    # the float32 path (what the model sees) is within float32 rounding of it
    torch.testing.assert_close(stats.unnormalize_actions(norm, state), actions, rtol=0, atol=1e-4)
    torch.testing.assert_close(stats.unnormalize_state(stats.normalize_state(state)), state, rtol=0, atol=1e-4)
    # relative arm, absolute gripper: shifting the arm state and the arm actions together changes nothing
    shift = torch.tensor([5.0, -3.0, 2.0, 1.0, -7.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(stats.normalize_actions(actions.double() + shift, state.double() + shift),
                               stats.normalize_actions(actions.double(), state.double()))
    # numpy in, numpy out; one unbatched window too
    n_np = stats.normalize_actions(actions[0].numpy(), state[0].numpy())
    assert isinstance(n_np, np.ndarray) and n_np.dtype == np.float32
    np.testing.assert_array_equal(n_np, norm[0].numpy())


def test_constant_dimensions_do_not_divide_by_zero():
    stats = NormStats(state_min=(0.0,) * 5 + (7.0,), state_max=(2.0,) * 5 + (7.0,),
                      action_min=(-1.0,) * 5 + (30.0,), action_max=(1.0,) * 5 + (30.0,))
    state = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 7.0]], dtype=torch.float64)
    actions = torch.tensor([[[1.5, 0.5, 1.0, 2.0, 0.0, 30.0]] * 3], dtype=torch.float64)
    norm_state = stats.normalize_state(state)
    assert torch.isfinite(norm_state).all() and norm_state[0, 5] == 0
    norm = stats.normalize_actions(actions, state)
    assert torch.isfinite(norm).all() and (norm[..., 5] == 0).all()
    torch.testing.assert_close(norm[0, 0, :5], torch.tensor([0.5, -0.5, 0.0, 1.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(stats.unnormalize_actions(norm, state), actions, rtol=0, atol=1e-12)


def test_norm_stats_json_round_trip(windows, tmp_path):
    stats = compute_norm_stats(windows)
    assert NormStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats
    stats.save(tmp_path / "stats.json")
    assert NormStats.read(tmp_path / "stats.json") == stats


# --- mixture sampling ---------------------------------------------------------------------------------------------
def fake_windows(lengths_per_dataset: list[list[int]]) -> TrainingWindows:
    """Windows over tiny in-memory episodes: only lengths and datasets matter to the sampler."""
    episodes = []
    for d, lengths in enumerate(lengths_per_dataset):
        for e, length in enumerate(lengths):
            img = torch.zeros((length, 3, 2, 2), dtype=torch.uint8)
            episodes.append(Episode(dataset=d, episode_index=e, task="t", front=img, wrist=img,
                                    states=torch.zeros(length, 6), actions=torch.zeros(length, 6)))
    roots = [f"d{d}" for d in range(len(lengths_per_dataset))]
    return TrainingWindows(DemoData.from_episodes(episodes, roots, image_size=2, fps=FPS))


SMALL = [20] * 10  # 10 episodes, 200 steps
LARGE = [10, 30] * 15  # 30 episodes, 600 steps; half of them 3x as long as the others


def shares(windows: TrainingWindows, p: np.ndarray) -> tuple[float, float]:
    """(share of the second dataset, share of the long episodes within it) under item probabilities p."""
    in_large = windows.episode_datasets[windows.item_episode] == 1
    long_ = windows.episode_lengths[windows.item_episode] == 30
    return p[in_large].sum() / p.sum(), p[in_large & long_].sum() / p[in_large].sum()


@pytest.mark.parametrize("balance_dataset, balance_trajectory, large_share, long_share", [
    (False, True, 0.5, 0.75),  # equal dataset weights: half each, though one is 3x larger
    (True, True, 0.75, 0.75),  # GR00T's balancing scales by size: every step of the mixture equally likely
    (True, False, 0.75, 0.5),  # every episode of a dataset equally likely, whatever its length
    (False, False, 0.5, 0.5),
])
def test_mixture_weights_follow_gr00t(balance_dataset, balance_trajectory, large_share, long_share):
    windows = fake_windows([SMALL, LARGE])
    p = mixture_weights(windows, balance_dataset, balance_trajectory)
    assert p.shape == (len(windows),) and np.isclose(p.sum(), 1.0)
    assert np.allclose(shares(windows, p), (large_share, long_share))
    for e in range(len(windows.episode_lengths)):  # a step is drawn uniformly within its episode
        assert np.allclose(p[windows.item_episode == e], p[windows.item_episode == e][0])
    if balance_dataset and balance_trajectory:
        assert np.allclose(p, 1 / len(windows))

    sampler = mixture_sampler(windows, balance_dataset, balance_trajectory, seed=0, num_samples=40_000)
    drawn = np.bincount(np.fromiter(iter(sampler), dtype=np.int64), minlength=len(windows)) / 40_000
    assert np.allclose(shares(windows, drawn), (large_share, long_share), atol=0.02)


def test_dataset_weights_and_seed():
    windows = fake_windows([SMALL, LARGE])
    p = mixture_weights(windows, balance_dataset_weights=False, dataset_weights=[2.0, 1.0])
    assert np.isclose(shares(windows, p)[0], 1 / 3)
    p = mixture_weights(windows, dataset_weights=[1.0, 0.0])  # weight 0: never drawn
    assert np.isclose(p.sum(), 1.0) and (p[windows.episode_datasets[windows.item_episode] == 1] == 0).all()
    with pytest.raises(ValueError, match="one non-negative number per dataset"):
        mixture_weights(windows, dataset_weights=[1.0])
    first = list(mixture_sampler(windows, True, True, seed=3))
    assert first == list(mixture_sampler(windows, True, True, seed=3)) != list(mixture_sampler(windows, True, True, 4))
    assert len(first) == len(windows)


# --- refusing bad datasets ----------------------------------------------------------------------------------------
def test_missing_camera_is_one_clear_error(tmp_path):
    front_only = write_dataset(tmp_path / "front_only", 2, SIZE, (3,), (CHEESE,), cameras=("front",))
    with pytest.raises(DatasetError) as err:
        DemoData(front_only.root, image_size=SIZE)
    message = str(err.value)
    assert "observation.images.wrist" in message and str(front_only.root) in message
    assert "both cameras" in message and "is missing" in message and len(message.splitlines()) == 1


def test_wrong_state_shape_is_refused_before_decoding(sources, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(sources[1].root, bad)
    info = json.loads((bad / "meta/info.json").read_text())
    info["features"]["observation.state"]["shape"] = [7]
    (bad / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"observation.state is of shape \(7,\).*6-vector") as err:
        DemoData([sources[0].root, bad], image_size=SIZE)  # the good first dataset isn't decoded first
    assert str(bad) in str(err.value)
    del info["features"]["action"]
    info["features"]["observation.state"]["shape"] = [6]
    (bad / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="action is missing"):
        DemoData(bad, image_size=SIZE)


def test_mixed_frame_rates_are_refused(sources, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(sources[1].root, other)
    info = json.loads((other / "meta/info.json").read_text())
    info["fps"] = 15
    (other / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="15 fps"):
        DemoData([sources[0].root, other], image_size=SIZE)


def test_torn_video_is_one_clear_error(sources, tmp_path):
    torn = tmp_path / "torn"
    shutil.copytree(sources[0].root, torn)
    victim = sorted((torn / "videos" / "observation.images.wrist").glob("chunk-*/file-*.mp4"))[-1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    with pytest.raises(DatasetError, match=victim.name):
        DemoData(torn, image_size=SIZE)


# --- portability --------------------------------------------------------------------------------------------------
BLOCKED = ("lerobot", "datasets", "huggingface_hub", "pandas", "mujoco", "torchvision", "torchcodec",
           "leisaac_tasks.env")


def test_loads_without_lerobot_or_hugging_face(sources):
    """The GPU trainer has no lerobot/datasets/huggingface_hub/pandas: the whole path must run without them."""
    script = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == b or name.startswith(b + ".") for b in {BLOCKED!r}):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from training.data import DemoData, TrainingWindows, collate, compute_norm_stats, mixture_sampler
windows = TrainingWindows(DemoData({[str(s.root) for s in sources]!r}, image_size=24))
batch = collate([windows[i] for i in mixture_sampler(windows, True, True, seed=0, num_samples=4)])
compute_norm_stats(windows).normalize_actions(batch["actions"], batch["state"])
print(sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r}))
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
