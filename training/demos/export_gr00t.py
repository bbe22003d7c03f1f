"""Export a demo dataset (LeRobot v3.0) to the GR00T-flavoured LeRobot v2.1 layout that NVIDIA Isaac-GR00T reads.

Isaac-GR00T's (N1/N1.5) ``LeRobotSingleDataset`` (``gr00t/data/dataset.py``) and ``scripts/gr00t_finetune.py
--data-config so100_dualcam`` read LeRobot v2.x: one parquet and one mp4 per camera per episode, JSON-lines
metadata, plus GR00T's own ``meta/modality.json``. LeRobot v3.0 packs many episodes into each parquet/mp4, so this
module splits them back out::

    meta/info.json            v2.1 info: data_path/video_path patterns, chunks_size, fps, features, totals
    meta/episodes.jsonl       {"episode_index", "tasks", "length"} per episode
    meta/tasks.jsonl          {"task_index", "task"} per instruction
    meta/modality.json        so100_dualcam: state/action single_arm [0:5] + gripper [5:6], video front/wrist,
                              annotation.human.task_description -> the task_index column
    meta/stats.json           mean/std/min/max/q01/q99 of every parquet column (GR00T validates all six)
    meta/chefmate_attempts.jsonl   our demo journal, copied unchanged
    data/chunk-XXX/episode_XXXXXX.parquet
    videos/chunk-XXX/observation.images.<cam>/episode_XXXXXX.mp4   H.264 yuv420p, frame i at i/fps

The export is built in a hidden folder next to the output and renamed into place at the end, so an interrupted or
failed export never leaves a half-written dataset at the output path.

    chefmate-export-gr00t datasets/dis/disambiguating exports/dis_gr00t
    chefmate-export-gr00t datasets/seed/cheese exports/cheese_gr00t --overwrite   # redo an export
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from leisaac_tasks.console import quiet_libraries
from leisaac_tasks.dataset import CAMERAS, JOURNAL, DatasetError, check_dataset  # CAMERAS = so100_dualcam's
from leisaac_tasks.v3_files import (check_demo_features, episode_frames, read_parquet, source_episodes,
                                    source_tasks, width_height)

V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
# GR00T resolves the language key through modality.json's original_key (here: task_index). Some GR00T docs and
# forks read a dedicated annotation column instead, so the same index is also written under this name.
ANNOTATION_KEY = "annotation.human.task_description"


@dataclass(frozen=True)
class EncodeConfig:
    """H.264 settings for the per-episode videos. decord, torchcodec and PyAV all decode H.264 yuv420p."""

    crf: int = 18  # the source is already lossy; keep the second generation close to it
    gop: int = 2  # short GOP: GR00T samples single frames at random timestamps, so seeks must be cheap
    preset: str = "medium"
    # Remux each episode's H.264 packets when the source allows it (LeRobot's per-episode encoding does); the
    # settings above then apply only to episodes that must be re-encoded.
    stream_copy: bool = True


@dataclass(frozen=True)
class ExportResult:
    out: Path
    episodes: int
    frames: int


def modality_json(cameras: tuple[str, ...] = CAMERAS) -> dict[str, Any]:
    """GR00T's meta/modality.json for an SO-101: 5 arm joints then the gripper, in state and action alike."""
    split = {"single_arm": {"start": 0, "end": 5}, "gripper": {"start": 5, "end": 6}}
    return {
        "state": {k: dict(v) for k, v in split.items()},
        "action": {k: dict(v) for k, v in split.items()},
        "video": {cam: {"original_key": f"observation.images.{cam}"} for cam in cameras},
        "annotation": {ANNOTATION_KEY.removeprefix("annotation."): {"original_key": "task_index"}},
    }


def _check_features(root: Path, info: dict[str, Any]) -> None:
    check_demo_features(root, info, "the GR00T export (so100_dualcam)")
    feats = info["features"]
    for key, ft in feats.items():
        if ft["dtype"] == "video" and any(n % 2 for n in width_height(ft)):
            width, height = width_height(ft)
            raise DatasetError(f"{root}: {key} images are {width}x{height}; H.264 yuv420p needs even sizes")


# --- videos ------------------------------------------------------------------------------------------------------
def _encode(frames: Iterator[np.ndarray], path: Path, width: int, height: int, fps: int, cfg: EncodeConfig) -> int:
    """Write frames (yuv420p planes) as H.264 with frame i at time i/fps, which is what GR00T's timestamps assume."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps,
                                options={"crf": str(cfg.crf), "g": str(cfg.gop), "bf": "0", "preset": cfg.preset})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for planes in frames:
            if planes.shape != (height * 3 // 2, width):  # yuv420p: the Y plane, then U and V at half size
                raise DatasetError(f"{path}: the source video is not {width}x{height} as info.json says")
            # A fresh frame from the planes: no colour conversion, and no picture type carried over from the
            # source (libx264 would obey it and copy the source's keyframe pattern).
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, fps)
            out.mux(stream.encode(frame))
            n += 1
        out.mux(stream.encode())
    return n


def _copy_episode(video: Path, path: Path, from_ts: float, length: int, fps: int) -> bool:
    """Remux one episode's packets out of a v3 video file into its own mp4, without re-encoding: the pixels stay
    exactly the source's. Done only when the episode is self-contained, as LeRobot's per-episode encoding leaves
    it: it starts on a keyframe, holds exactly ``length`` packets, and packet k is shown at ``from_ts + k/fps``.
    After the shift, frame i plays at i/fps, as the re-encoded files do. Returns False (nothing written) otherwise,
    and for a file it can't read (the re-encode path then names the damage)."""
    import av

    try:
        return _remux(video, path, from_ts, length, fps)
    except av.FFmpegError:
        path.unlink(missing_ok=True)
        return False


def _remux(video: Path, path: Path, from_ts: float, length: int, fps: int) -> bool:
    import av

    with av.open(str(video)) as src:
        stream = src.streams.video[0]
        step = 1 / (fps * stream.time_base)  # ticks per frame
        first = round(from_ts / stream.time_base)
        if step != int(step):
            return False
        src.seek(first, stream=stream, backward=True)
        packets = [p for p in src.demux(stream) if p.pts is not None and first <= p.pts < first + length * step]
        shown = sorted(p.pts for p in packets)
        if (len(packets) != length or not packets[0].is_keyframe or packets[0].pts != first
                or shown != [first + k * int(step) for k in range(length)]):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as out:
            copy = out.add_stream_from_template(stream)
            for packet in packets:
                packet.pts -= first
                packet.dts -= first
                packet.stream = copy
                out.mux(packet)
    return True


# --- stats -------------------------------------------------------------------------------------------------------
def _stats(values: np.ndarray) -> dict[str, list[float]]:
    """The six statistics GR00T's DatasetStatisticalValues requires, per dimension, and nothing else: N1.5's
    loader slices *every* entry of a state/action column by each modality's start:end, so LeRobot's length-1
    ``count`` raised ``IndexError: index 1 is out of bounds for axis 0 with size 1``."""
    v = values.astype(np.float64).reshape(len(values), -1)
    return {"mean": v.mean(0).tolist(), "std": v.std(0).tolist(), "min": v.min(0).tolist(),
            "max": v.max(0).tolist(), "q01": np.quantile(v, 0.01, axis=0).tolist(),
            "q99": np.quantile(v, 0.99, axis=0).tolist()}


def played_at_timestamps(length: int, fps: int) -> np.ndarray:
    """float32 timestamps whose frame is i under every rule GR00T's decoders use.

    torchcodec's ``get_frames_played_at`` and the torchvision_av path return the last frame whose start
    ``pts * time_base`` is <= t. Frame i starts exactly at i/fps, but float32(i/fps) is often a hair *below* it
    (about 44% of rows), which picks frame i-1. So each stamp is the float32 just above i/fps: at most two float32
    steps late (< 2 µs in a 20 s episode), far inside LeRobot's 1e-4 s tolerance and decord's nearest-frame rule.
    """
    exact = np.arange(length, dtype=np.float64) / fps
    t = exact.astype(np.float32)
    t = np.where(t.astype(np.float64) <= exact, np.nextafter(t, np.float32(np.inf)), t)
    return t.astype(np.float32)


# --- the export --------------------------------------------------------------------------------------------------
def _write_export(src: Path, dst: Path, info: dict[str, Any], cfg: EncodeConfig,
                  progress: bool = False) -> tuple[int, int]:
    """Write the whole v2.1 dataset into ``dst``; return (episodes, frames)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from tqdm import tqdm

    fps = int(info["fps"])
    chunks_size = int(info.get("chunks_size", 1000))
    tasks = source_tasks(src)
    episodes = source_episodes(src)
    video_keys = [k for k, ft in info["features"].items() if ft["dtype"] == "video"]
    sizes = {k: width_height(info["features"][k]) for k in video_keys}

    columns = ["observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"]
    file_key, file_table = None, None
    collected: dict[str, list[np.ndarray]] = {}
    total = 0
    for ep in tqdm(episodes, desc="export", unit="episode", disable=not progress):  # re-encoding is the slow part
        e, length = int(ep["episode_index"]), int(ep["length"])
        key = (int(ep["data/chunk_index"]), int(ep["data/file_index"]))
        if key != file_key:  # episodes come in file order and share v3 files: read each file once
            file_key = key
            file_table = read_parquet(src / info["data_path"].format(chunk_index=key[0], file_index=key[1]), columns)
        table = file_table.filter(pc.equal(file_table["episode_index"], e))
        frame_index = table["frame_index"].to_numpy()
        if len(table) != length or not np.array_equal(frame_index, np.arange(length)):
            raise DatasetError(f"{src}: episode {e} has {len(table)} rows in its data file, its index says {length}; "
                               f"the dataset is damaged. Regenerate it")
        # GR00T picks video frames by timestamp, and the new mp4 has frame i at i/fps.
        if np.abs(table["timestamp"].to_numpy() - frame_index / fps).max() > 0.5 / fps:
            raise DatasetError(f"{src}: episode {e} timestamps are not frame_index/{fps}; can't align its videos")

        stamps = pa.array(played_at_timestamps(length, fps), type=table.schema.field("timestamp").type)
        table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", stamps)
        table = table.append_column(ANNOTATION_KEY, table["task_index"]).replace_schema_metadata(None)
        chunk = e // chunks_size
        out_parquet = dst / V21_DATA_PATH.format(episode_chunk=chunk, episode_index=e)
        out_parquet.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out_parquet)
        for name in table.column_names:
            col = table[name].combine_chunks()
            collected.setdefault(name, []).append(
                col.flatten().to_numpy().reshape(len(col), -1) if pa.types.is_fixed_size_list(col.type)
                else col.to_numpy().reshape(-1, 1))

        for vk in video_keys:
            video = src / info["video_path"].format(video_key=vk, chunk_index=ep[f"videos/{vk}/chunk_index"],
                                                    file_index=ep[f"videos/{vk}/file_index"])
            from_ts = float(ep[f"videos/{vk}/from_timestamp"])
            out_video = dst / V21_VIDEO_PATH.format(episode_chunk=chunk, video_key=vk, episode_index=e)
            if cfg.stream_copy and _copy_episode(video, out_video, from_ts, length, fps):
                continue  # the source's own packets: no second lossy generation
            frames = episode_frames(video, from_ts, length, fps)
            if _encode(frames, out_video, *sizes[vk], fps, cfg) != length:
                raise DatasetError(f"{out_video}: encoded frame count differs from the episode length {length}")
        total += length

    meta = dst / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    _write_jsonl(meta / "episodes.jsonl", [{"episode_index": int(ep["episode_index"]), "tasks": list(ep["tasks"]),
                                            "length": int(ep["length"])} for ep in episodes])
    _write_jsonl(meta / "tasks.jsonl", [{"task_index": i, "task": t} for i, t in sorted(tasks.items())])
    cameras = tuple(k.removeprefix("observation.images.") for k in video_keys)
    (meta / "modality.json").write_text(json.dumps(modality_json(cameras), indent=4))
    (meta / "stats.json").write_text(json.dumps({k: _stats(np.concatenate(v)) for k, v in collected.items()},
                                                indent=4))
    (meta / "info.json").write_text(json.dumps(_info_v21(info, len(episodes), total, len(tasks), video_keys,
                                                         chunks_size), indent=4))
    if (src / JOURNAL).exists():
        shutil.copy2(src / JOURNAL, dst / JOURNAL)
    return len(episodes), total


def _info_v21(src_info: dict[str, Any], episodes: int, frames: int, tasks: int, video_keys: list[str],
              chunks_size: int) -> dict[str, Any]:
    fps = int(src_info["fps"])
    features: dict[str, Any] = {}
    for key, ft in src_info["features"].items():
        ft = {**ft, "shape": list(ft["shape"])}
        if ft["dtype"] == "video":
            h, w, c = (ft["shape"][ft["names"].index(n)] for n in ("height", "width", "channels"))
            # GR00T reads channels and fps from here (info["video.channels"], info["video.fps"]).
            ft["info"] = {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                          "video.is_depth_map": False, "video.fps": fps, "video.channels": c, "has_audio": False}
        features[key] = ft
    features[ANNOTATION_KEY] = {"dtype": "int64", "shape": [1], "names": None}
    return {
        "codebase_version": "v2.1",
        "robot_type": src_info.get("robot_type"),
        "total_episodes": episodes,
        "total_frames": frames,
        "total_tasks": tasks,
        "total_videos": episodes * len(video_keys),
        "total_chunks": max(1, math.ceil(episodes / chunks_size)),
        "chunks_size": chunks_size,
        "fps": fps,
        "splits": {"train": f"0:{episodes}"},
        "data_path": V21_DATA_PATH,
        "video_path": V21_VIDEO_PATH,
        "features": features,
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _check_out(src: Path, out: Path, overwrite: bool) -> None:
    s, o = src.resolve(), out.resolve()
    if o == s or s in o.parents or o in s.parents:
        raise DatasetError(f"the output {out} overlaps the input {src}; choose a separate folder")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise DatasetError(f"{out} already exists; pass --overwrite to replace it, or choose another output")
        # --overwrite replaces an earlier export (or an empty folder), never an unrelated folder.
        if not out.is_dir() or (any(out.iterdir()) and not (out / "meta" / "modality.json").exists()):
            raise DatasetError(f"{out} is not a GR00T export (no meta/modality.json); refusing to replace it")


def export_gr00t(src: Path, out: Path, overwrite: bool = False, cfg: EncodeConfig = EncodeConfig(),
                 progress: bool = False) -> ExportResult:
    """Export the v3 dataset at ``src`` to a GR00T-readable v2.1 dataset at ``out``; all or nothing."""
    src, out = Path(src), Path(out)
    info = check_dataset(src)  # one clear DatasetError for a missing or torn dataset, before any output exists
    _check_features(src, info)
    _check_out(src, out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        episodes, frames = _write_export(src, tmp, info, cfg, progress)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the export should get the usual permissions
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            out.rename(old / "export")
            try:
                tmp.rename(out)
            except BaseException:
                (old / "export").rename(out)  # put the earlier export back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out, episodes, frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chefmate-export-gr00t", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="a LeRobot v3.0 demo dataset folder")
    parser.add_argument("out", type=Path, help="the folder to create (GR00T LeRobot v2.1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export at OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        with quiet_libraries():
            result = export_gr00t(args.src, args.out, overwrite=args.overwrite, progress=not args.quiet)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result.out}/: {result.episodes} episodes, {result.frames} frames "
          f"(Isaac-GR00T: --dataset-path {result.out} --data-config so100_dualcam)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
