"""The GR00T export: a v3 demo dataset comes out in the layout Isaac-GR00T's loader reads unchanged.

What the loader reads (NVIDIA/Isaac-GR00T, N1/N1.5 era; the tests below read the export the same way):

gr00t/data/dataset.py, ``LeRobotSingleDataset``
  * meta/modality.json, validated as ``LeRobotModalityMetadata`` (gr00t/data/schema.py): ``state``/``action``
    map a sub-key to ``start``/``end`` (python slice of the parquet vector) and optional ``original_key``
    (defaults ``observation.state`` / ``action``), ``absolute`` (default true), ``dtype``, ``rotation_type``;
    ``video`` maps a sub-key to ``original_key`` (the LeRobot video key); ``annotation`` maps a sub-key to
    ``original_key``, the parquet column holding an index into tasks.jsonl (if null, the column named
    ``annotation.<sub-key>``). Every key of the data config must resolve here (``_check_integrity``).
  * meta/info.json: ``data_path`` and ``video_path`` (formatted with ``episode_chunk``, ``episode_index``,
    ``video_key``), ``chunks_size`` (chunk = episode_index // chunks_size), and for each video's original_key
    ``features[key]["shape"]`` indexed by ``names.index("height"/"width")``, plus channels and fps from
    ``features[key]["info"]["video.channels"/"video.fps"]`` (the v2.1 fallback branch; older code takes
    channels from ``names.index("channels")``).
  * meta/episodes.jsonl: ``episode_index`` (trajectory id) and ``length`` of each line.
  * meta/tasks.jsonl: ``task_index`` -> ``task``, looked up with ``tasks.loc[indices]["task"]``.
  * meta/stats.json: optional, but if present every entry must validate as ``DatasetStatisticalValues``
    (``max``, ``min``, ``mean``, ``std``, ``q01``, ``q99``), else it is recomputed from all parquet columns and
    rewritten; state/action stats are sliced per modality key with ``start``/``end``.
  * per-episode parquet (pandas): ``np.stack(df[original_key])`` must be (T, D) for state/action, a
    ``timestamp`` column selects video frames, ``df[annotation original_key][i].item()`` is a task index.
gr00t/utils/video.py: ``get_frames_by_timestamps`` (decord: nearest frame to each timestamp; torchcodec:
  ``get_frames_played_at``), ``get_all_frames`` (decord / pyav / torchvision_av). H.264 yuv420p decodes in all.
gr00t/experiment/data_config.py, ``So100DualCamDataConfig`` (``so100_dualcam``): video.front, video.wrist,
  state.single_arm, state.gripper, action.single_arm, action.gripper, annotation.human.task_description;
  state at delta 0, actions at deltas 0..15; min_max normalisation of state and action.
getting_started/examples/so100__modality.json: the SO-100 split (single_arm 0:5, gripper 5:6, annotation
  ``human.task_description`` -> ``task_index``); getting_started/LeRobot_compatible_data_schema.md: the layout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leisaac_tasks.dataset import JOURNAL, Attempt, DatasetError, DemoWriter
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, MOTOR_KEYS, sim_to_lerobot
from leisaac_tasks.v3_files import source_episodes
from training.demos.export_gr00t import EncodeConfig, export_gr00t, main

REPO = Path(__file__).resolve().parents[1]
SIZE = 64
FPS = 30
LENGTHS = (12, 40, 9)  # episode 1 reaches frames whose float32 time i/30 falls below i/30 (17, 19, ...)
INSTRUCTIONS = ("pick up the yellow cheese and put it into the white plate",
                "pick up the bread and put it into the white plate",
                "pick up the yellow cheese and put it into the white plate")
SO100_DUALCAM_KEYS = ("video.front", "video.wrist", "state.single_arm", "state.gripper", "action.single_arm",
                      "action.gripper", "annotation.human.task_description")
LEVEL_TOLERANCE = 8  # grey levels; neighbouring frames differ by >= 23, so a one-frame shift can't pass


def frame_level(episode: int, frame: int, camera: str) -> int:
    """Each frame is one flat grey level, unique to (episode, frame, camera), so decoded frames can be placed."""
    return 16 + (23 * frame + 61 * episode + (100 if camera == "wrist" else 0)) % 200


@dataclass
class Source:
    root: Path
    states: list[np.ndarray]  # per episode, LeRobot units, float32 (what DemoWriter should have stored)
    actions: list[np.ndarray]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Source:
    root = tmp_path_factory.mktemp("v3") / "demos"
    rng = np.random.default_rng(0)
    states, actions = [], []
    # checkpoint_every=2 puts episodes 0-1 and 2 in different v3 files, so episode 1 starts mid-file
    with DemoWriter(root, (SIZE, SIZE), fps=FPS, checkpoint_every=2) as writer:
        for e, (length, instruction) in enumerate(zip(LENGTHS, INSTRUCTIONS)):
            q = rng.uniform(JOINT_LOW, JOINT_HIGH, size=(length, 6))
            a = rng.uniform(JOINT_LOW, JOINT_HIGH, size=(length, 6))
            for i in range(length):
                obs = {cam: np.full((SIZE, SIZE, 3), frame_level(e, i, cam), np.uint8) for cam in ("front", "wrist")}
                writer.add_frame({**obs, "state": q[i]}, a[i], instruction)
            writer.keep(Attempt(attempt=e, source="scripted", scenario="H,H", instruction=instruction,
                                intent="place", layout_seed=e, success=True, outcome="cheese=on_plate",
                                behaviour="picked_cheese", frames=length))
            states.append(sim_to_lerobot(q).astype(np.float32))
            actions.append(sim_to_lerobot(a).astype(np.float32))
    return Source(root, states, actions)


@pytest.fixture(scope="module")
def export(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gr00t") / "demos_gr00t"
    export_gr00t(source.root, out)
    return out


class Gr00tView:
    """Reads an export the way gr00t/data/dataset.py does, without needing GR00T installed."""

    def __init__(self, root: Path):
        self.root = root
        self.info = json.loads((root / "meta/info.json").read_text())
        self.modality = json.loads((root / "meta/modality.json").read_text())
        self.episodes = [json.loads(line) for line in (root / "meta/episodes.jsonl").read_text().splitlines()]
        tasks = [json.loads(line) for line in (root / "meta/tasks.jsonl").read_text().splitlines()]
        self.tasks = pd.DataFrame(tasks).set_index("task_index")
        self.stats = json.loads((root / "meta/stats.json").read_text())

    def key_meta(self, key: str) -> dict:
        modality, sub = key.split(".", 1)
        return self.modality[modality][sub]

    def chunk(self, episode: int) -> int:
        return episode // self.info["chunks_size"]

    def parquet(self, episode: int) -> pd.DataFrame:
        path = self.info["data_path"].format(episode_chunk=self.chunk(episode), episode_index=episode)
        return pd.read_parquet(self.root / path)

    def vector(self, episode: int, key: str) -> np.ndarray:
        modality = key.split(".", 1)[0]
        meta = self.key_meta(key)
        column = meta.get("original_key") or {"state": "observation.state", "action": "action"}[modality]
        return np.stack(self.parquet(episode)[column])[:, np.arange(meta["start"], meta["end"])]

    def language(self, episode: int) -> list[str]:
        column = self.key_meta("annotation.human.task_description").get("original_key") or \
            "annotation.human.task_description"
        df = self.parquet(episode)
        return self.tasks.loc[[df[column][i].item() for i in range(len(df))]]["task"].tolist()

    def video_path(self, episode: int, key: str) -> Path:
        original = self.key_meta(key).get("original_key") or key.split(".", 1)[1]
        return self.root / self.info["video_path"].format(episode_chunk=self.chunk(episode),
                                                         episode_index=episode, video_key=original)


def decode(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """All frames (RGB) and their presentation times, as gr00t/utils/video.py's decoders see them."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        props = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt}
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base))
    return np.stack(frames), np.array(times), props


# --- the export, read as GR00T reads it ---------------------------------------------------------------------------
def test_every_so100_dualcam_key_resolves(export):
    view = Gr00tView(export)
    for key in SO100_DUALCAM_KEYS:  # _check_integrity: each data-config key must be in modality.json
        view.key_meta(key)
    for sub, field in view.modality["video"].items():
        assert view.info["features"][field["original_key"]]["dtype"] == "video", sub


def test_info_json(export, source):
    view, info = Gr00tView(export), Gr00tView(export).info
    assert info["codebase_version"] == "v2.1"
    assert info["fps"] == FPS and isinstance(info["chunks_size"], int)
    assert info["total_episodes"] == len(LENGTHS) and info["total_frames"] == sum(LENGTHS)
    assert info["total_tasks"] == len(set(INSTRUCTIONS))
    for sub in ("front", "wrist"):
        ft = info["features"][view.modality["video"][sub]["original_key"]]
        assert ft["shape"][ft["names"].index("height")] == SIZE and ft["shape"][ft["names"].index("width")] == SIZE
        assert ft["info"]["video.channels"] == 3 and ft["info"]["video.fps"] == FPS
        assert (ft["info"]["video.codec"], ft["info"]["video.pix_fmt"]) == ("h264", "yuv420p")
    for e in range(len(LENGTHS)):
        assert (export / info["data_path"].format(episode_chunk=view.chunk(e), episode_index=e)).is_file()


def test_modality_ranges_split_the_six_joints(export):
    view = Gr00tView(export)
    for modality, column in (("state", "observation.state"), ("action", "action")):
        names = view.info["features"][column]["names"]
        parts = {sub: names[m["start"]:m["end"]] for sub, m in view.modality[modality].items()}
        assert parts["single_arm"] == list(MOTOR_KEYS[:5]) and parts["gripper"] == ["gripper.pos"]
        assert sorted(n for p in parts.values() for n in p) == sorted(MOTOR_KEYS)  # every joint exactly once


def test_episodes_and_language(export):
    view = Gr00tView(export)
    assert [(ep["episode_index"], ep["length"]) for ep in view.episodes] == list(enumerate(LENGTHS))
    assert sorted(view.tasks["task"]) == sorted(set(INSTRUCTIONS))
    for e, instruction in enumerate(INSTRUCTIONS):
        assert view.episodes[e]["tasks"] == [instruction]
        assert view.language(e) == [instruction] * LENGTHS[e]


def test_states_and_actions_equal_the_source(export, source):
    view = Gr00tView(export)
    index = 0
    for e, length in enumerate(LENGTHS):
        for prefix, expected in (("state", source.states[e]), ("action", source.actions[e])):
            got = np.concatenate([view.vector(e, f"{prefix}.single_arm"), view.vector(e, f"{prefix}.gripper")], 1)
            np.testing.assert_array_equal(got, expected)
        df = view.parquet(e)
        assert df["observation.state"][0].dtype == np.float32 and df["action"][0].dtype == np.float32
        np.testing.assert_array_equal(df["frame_index"], np.arange(length))
        np.testing.assert_allclose(df["timestamp"], np.arange(length) / FPS, atol=1e-5)
        assert (df["episode_index"] == e).all()
        np.testing.assert_array_equal(df["index"], np.arange(index, index + length))  # global, across episodes
        index += length


def test_stats_validate_and_match_the_data(export, source):
    view = Gr00tView(export)
    columns = set(view.parquet(0).columns)
    assert set(view.stats) == columns  # an entry per column, so GR00T never recomputes or rewrites the file
    for name, entry in view.stats.items():
        assert {"mean", "std", "min", "max", "q01", "q99"} <= set(entry), name
    for column, data in (("observation.state", source.states), ("action", source.actions)):
        everything = np.concatenate(data)
        np.testing.assert_allclose(view.stats[column]["min"], everything.min(0), rtol=1e-6)
        np.testing.assert_allclose(view.stats[column]["max"], everything.max(0), rtol=1e-6)
        np.testing.assert_allclose(view.stats[column]["mean"], everything.mean(0), rtol=1e-5, atol=1e-4)


def test_videos_hold_each_frame_at_its_timestamp(export):
    view = Gr00tView(export)
    for e, length in enumerate(LENGTHS):
        timestamps = view.parquet(e)["timestamp"].to_numpy()
        for cam in ("front", "wrist"):
            frames, times, props = decode(view.video_path(e, f"video.{cam}"))
            assert props == {"codec": "h264", "pix_fmt": "yuv420p"}
            assert frames.shape == (length, SIZE, SIZE, 3)
            # decord's rule: each requested timestamp takes the nearest frame
            picked = np.abs(times[:, None] - timestamps[None, :]).argmin(0)
            np.testing.assert_array_equal(picked, np.arange(length))
            levels = frames[picked].reshape(length, -1).mean(1)
            expected = [frame_level(e, i, cam) for i in range(length)]
            np.testing.assert_allclose(levels, expected, atol=LEVEL_TOLERANCE, err_msg=f"episode {e} {cam}")


def _yuv_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="yuv420p") for f in container.decode(container.streams.video[0])])


def _packet_bytes(path: Path, from_ts: float = 0.0, length: int | None = None) -> list[bytes]:
    """The H.264 packets shown from ``from_ts`` on (``length`` of them, or all), in decode order."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = round(from_ts / stream.time_base)
        last = first + (length or 10**9) * round(1 / (FPS * stream.time_base))
        return [bytes(p) for p in container.demux(stream) if p.pts is not None and first <= p.pts < last]


def test_videos_are_the_sources_own_packets_and_re_encoding_remains_for_the_rest(export, source, tmp_path):
    """The export remuxes each episode's H.264 packets (LeRobot encodes every episode from a keyframe), so the
    bitstream and the decoded pixels equal the source's exactly; with stream_copy off, the re-encode path still gives
    frame i at i/fps."""
    from leisaac_tasks.v3_files import episode_frames

    info = json.loads((source.root / "meta/info.json").read_text())
    view = Gr00tView(export)
    episodes = source_episodes(source.root)
    for ep in episodes:
        e = int(ep["episode_index"])
        for cam in ("front", "wrist"):
            vk = f"observation.images.{cam}"
            video = source.root / info["video_path"].format(video_key=vk, chunk_index=ep[f"videos/{vk}/chunk_index"],
                                                            file_index=ep[f"videos/{vk}/file_index"])
            original = np.stack(list(episode_frames(video, float(ep[f"videos/{vk}/from_timestamp"]),
                                                    int(ep["length"]), FPS)))
            np.testing.assert_array_equal(_yuv_frames(view.video_path(e, f"video.{cam}")), original)
            assert _packet_bytes(view.video_path(e, f"video.{cam}")) == \
                _packet_bytes(video, float(ep[f"videos/{vk}/from_timestamp"]), int(ep["length"]))
    reencoded = tmp_path / "reencoded"
    export_gr00t(source.root, reencoded, cfg=EncodeConfig(stream_copy=False))
    again = Gr00tView(reencoded)
    for e, length in enumerate(LENGTHS):
        frames, times, _ = decode(again.video_path(e, "video.front"))
        np.testing.assert_allclose(times, np.arange(length) / FPS, atol=1e-6)
        assert len(frames) == length


def test_journal_is_copied(export, source):
    assert (export / JOURNAL).read_bytes() == (source.root / JOURNAL).read_bytes()


# --- refusing and failing cleanly ---------------------------------------------------------------------------------
def test_existing_output_is_refused_and_left_alone(source, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main([str(source.root), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--overwrite" in err and len(err.splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    # --overwrite replaces earlier exports only, never an unrelated folder
    with pytest.raises(DatasetError, match="not a GR00T export"):
        export_gr00t(source.root, out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_replaces_an_earlier_export(source, tmp_path):
    out = tmp_path / "out"
    export_gr00t(source.root, out)
    (out / "stale.txt").write_text("old")
    assert main([str(source.root), str(out), "--overwrite"]) == 0
    assert not (out / "stale.txt").exists()
    assert Gr00tView(out).info["total_frames"] == sum(LENGTHS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folders left behind


def test_truncated_parquet_is_one_clear_error_and_no_output(source, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(source.root, src)
    victim = sorted((src / "data").glob("chunk-*/file-*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="corrupted"):
        export_gr00t(src, out)
    run = subprocess.run([sys.executable, "-m", "training.demos.export_gr00t", str(src), str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error:") and "Traceback" not in run.stderr and str(victim) in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_failure_midway_leaves_no_export(source, tmp_path):
    # A torn video passes check_dataset (which reads parquet footers) and fails while the export is being
    # written: the temp folder must go and the output path must never appear.
    src = tmp_path / "src"
    shutil.copytree(source.root, src)
    victim = sorted((src / "videos" / "observation.images.wrist").glob("chunk-*/file-*.mp4"))[-1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    with pytest.raises(DatasetError, match=victim.name):
        export_gr00t(src, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_stats_survive_n15s_per_modality_slicing(export):
    """gr00t/data/dataset.py _get_metadata: for every stat name of a state/action column, np.array(stat)[start:end]
    per modality key. A length-1 ``count`` there raised IndexError in the real loader."""
    view = Gr00tView(export)
    for modality, column in (("state", "observation.state"), ("action", "action")):
        for sub, meta in view.modality[modality].items():
            indices = np.arange(meta["start"], meta["end"])
            for stat_name, stat in view.stats[column].items():
                sliced = np.array(stat)[indices]  # raises IndexError on a too-short entry, as upstream does
                assert sliced.shape == (len(indices),), (column, sub, stat_name)


def _played_at(times: np.ndarray, t: float) -> int:
    """torchcodec get_frames_played_at / torchvision_av: the last frame whose start time is <= t."""
    return int(np.flatnonzero(times <= t)[-1])


def test_every_timestamp_selects_its_own_frame_under_each_loader_rule(export):
    """Isaac-GR00T N1.5 reads ``timestamp`` from the parquet (float32) and asks each decoder for the frame played
    at that time. Every row must get its own frame under exact arithmetic, PyAV's float times, torchcodec and
    decord's nearest-frame rule."""
    from fractions import Fraction

    import av
    from torchcodec.decoders import VideoDecoder  # needs Debian's ffmpeg libraries (.ci/run installs them)

    view = Gr00tView(export)
    for e, length in enumerate(LENGTHS):
        stamps = view.parquet(e)["timestamp"].to_numpy()
        assert stamps.dtype == np.float32
        for cam in ("front", "wrist"):
            path = view.video_path(e, f"video.{cam}")
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                pts = [frame.pts for frame in container.decode(stream)]
                base = stream.time_base
            starts_exact = [Fraction(p) * base for p in pts]
            starts = np.array([float(s) for s in starts_exact])
            for i, t in enumerate(stamps):
                assert max(k for k, s in enumerate(starts_exact) if s <= Fraction(float(t))) == i, (e, cam, i)
                assert _played_at(starts, float(t)) == i
                assert int(np.abs(starts - float(t)).argmin()) == i  # decord
            decoded = VideoDecoder(str(path)).get_frames_played_at(seconds=[float(t) for t in stamps])
            np.testing.assert_array_equal(np.asarray(decoded.pts_seconds), starts)
            levels = decoded.data.float().mean(dim=(1, 2, 3)).numpy()
            np.testing.assert_allclose(levels, [frame_level(e, i, cam) for i in range(length)], atol=LEVEL_TOLERANCE)


def test_float32_frame_times_are_a_hair_early_without_the_fix():
    """Why the export writes its own stamps: float32(i/30) falls below i/30 for a large share of rows."""
    from fractions import Fraction

    from training.demos.export_gr00t import played_at_timestamps

    naive = (np.arange(600) / 30).astype(np.float32)
    early = sum(Fraction(float(t)) < Fraction(i, 30) for i, t in enumerate(naive))
    assert 0.3 < early / 600 < 0.6
    fixed = played_at_timestamps(600, 30)
    assert all(Fraction(i, 30) < Fraction(float(t)) < Fraction(i, 30) + Fraction(1, 10**5) for i, t in enumerate(fixed))
