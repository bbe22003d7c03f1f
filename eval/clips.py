"""Front-camera clips of sampled episodes, made by replaying each CSV row from (policy spec, scenario, instruction,
seed) through the same episode loop as the grid, so every clip also checks that its row replays exactly."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from PIL import Image

from eval.runner import Episode, run_episode
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.instructions import Instruction
from leisaac_tasks.intent import Intent
from leisaac_tasks.scenarios import Scenario
from policies.registry import make_policy

CLIP_CAMERA = "front"
# Row fields a replay must reproduce for "same outcome".
REPLAY_FIELDS = ("cheese", "bread", "behaviour", "success")


@dataclass(frozen=True)
class ClipConfig:
    count: int = 4   # clips per policy; 0 disables
    size: int = 128  # square frame side, pixels
    every: int = 2   # keep every Nth control step


@dataclass
class Clip:
    row: dict[str, Any]        # the CSV row that was replayed
    replayed: dict[str, Any]   # the row the replay produced
    gif: bytes

    @property
    def same_outcome(self) -> bool:
        return all(str(self.row[k]) == str(self.replayed[k]) for k in REPLAY_FIELDS)


@dataclass
class PolicyClips:
    clips: list[Clip] = field(default_factory=list)
    note: str = ""  # why clips are missing, when they are
    language_blind: bool | None = None  # from the rebuilt policy; None when it could not be rebuilt


def sample_rows(episodes: pd.DataFrame, count: int) -> pd.DataFrame:
    """Up to ``count`` rows of one policy: failures first, then successes, each taking turns over scenarios
    and, within a scenario, over instructions, before any repeats. ``policy_error`` rows cannot be replayed."""
    runnable = episodes[episodes["behaviour"] != "policy_error"]

    def take_turns(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        turn = rows.groupby(by, sort=False).cumcount()
        return rows.assign(_turn=turn).sort_values("_turn", kind="stable").drop(columns="_turn")

    def spread(rows: pd.DataFrame) -> pd.DataFrame:
        return take_turns(take_turns(rows, ["scenario", "instruction"]), ["scenario"])

    ordered = pd.concat([spread(runnable[runnable["success"].astype(int) == 0]),
                         spread(runnable[runnable["success"].astype(int) == 1])])
    return ordered.head(count)


class FrameRecorder:
    """A ``run_episode`` step callback that keeps every Nth front-camera frame at the clip size."""

    def __init__(self, env: SandwichEnv, cfg: ClipConfig):
        self.env, self.cfg = env, cfg
        self.frames: list[Image.Image] = []

    def __call__(self, step: int, observation: dict[str, Any]) -> None:
        if step % self.cfg.every:
            return
        # A camera policy already rendered the front view; otherwise render it just for the clip.
        pixels = observation.get(CLIP_CAMERA)
        frame = Image.fromarray(pixels if pixels is not None else self.env.sim.render(CLIP_CAMERA))
        if frame.size != (self.cfg.size, self.cfg.size):
            frame = frame.resize((self.cfg.size, self.cfg.size), Image.Resampling.BILINEAR)
        self.frames.append(frame)


def encode_gif(frames: list[Image.Image], fps: float) -> bytes:
    """A looping GIF on one shared palette, so static pixels keep their index and only changes are stored."""
    palette = frames[0].quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    indexed = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buffer = io.BytesIO()
    indexed[0].save(buffer, format="GIF", save_all=True, append_images=indexed[1:],
                    duration=round(1000 / fps), loop=0, optimize=False)
    return buffer.getvalue()


def _episode(row: dict[str, Any], spec: str) -> Episode:
    instruction = Instruction(str(row["instruction"]), Intent.parse(str(row["intent"])), str(row["family"]))
    return Episode(spec, Scenario.parse(str(row["scenario"])), instruction, int(row["seed"]))


def record_clips(spec: str, rows: pd.DataFrame, image_size: int, cfg: ClipConfig) -> PolicyClips:
    """Replay ``rows`` (one policy, spec as in the CSV) and record a clip of each.

    ``image_size`` is the camera size the run gave the policy: a camera policy must see the same images to
    replay exactly. A policy that cannot be rebuilt here gets a note instead of clips.
    """
    if rows.empty:
        return PolicyClips(note="no episodes to replay")
    try:
        policy = make_policy(spec)
        env = SandwichEnv(backend=str(rows["backend"].iat[0]), cameras=policy.abilities.cameras,
                          image_size=image_size if policy.abilities.cameras else cfg.size)
    except Exception as exc:  # missing checkpoint, server down, unknown name: the report goes on without clips
        return PolicyClips(note=f"no clips: {spec} could not be rebuilt here "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    result = PolicyClips(language_blind=policy.abilities.language_blind)
    try:
        for row in rows.to_dict("records"):
            recorder = FrameRecorder(env, cfg)
            # The row's own step count: a policy that never ends stops where the grid stopped it.
            replayed = run_episode(env, policy, _episode(row, spec), int(row["steps"]), on_step=recorder)
            if replayed["error"]:
                result.note = f"replay stopped: {replayed['error']}"
                break
            fps = env.metadata["render_fps"] / cfg.every
            result.clips.append(Clip(row, replayed, encode_gif(recorder.frames, fps)))
    finally:
        env.close()
    return result
