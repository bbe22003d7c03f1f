"""GR00T N1.5's get_action messages for so100_dualcam, and the client policy registered as ``gr00t``.

Upstream (NVIDIA/Isaac-GR00T, N1.5): ``getting_started/examples/eval_gr00t_so100.py`` builds the request,
``gr00t/model/policy.py`` (``Gr00tPolicy.get_action``) answers it, ``gr00t/eval/service.py`` carries it.

Request ``data``, flat keys, unbatched (upstream tells batched from unbatched by the state's rank)::

    "video.front", "video.wrist"          (1, H, W, 3) uint8      one frame (T = 1)
    "state.single_arm"                    (1, 5) float64          degrees
    "state.gripper"                       (1, 1) float64          0-100
    "annotation.human.task_description"   [instruction]

Reply: ``"action.single_arm"`` (16, 5) and ``"action.gripper"`` (16, 1) float32 absolute targets. Upstream's
``squeeze_dict_values`` removes only the batch axis (``np.squeeze(v, axis=0)``) since it was fixed; before, a bare
``np.squeeze`` also dropped the gripper's width-1 axis and sent (16,). The server answers as current upstream
does; the client takes either.

N1.5 has no options slot in ``data``, so the noise key rides as a top-level ``"options"`` key of the request,
which upstream servers ignore (they read only ``endpoint``, ``data`` and ``api_token``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.gr00t.client import RemoteGr00tPolicy
from policies.gr00t.protocol import (CAMERAS, JOINT_GROUPS, LANGUAGE_KEY, ModelInputs, NoiseKey, frames_array,
                                     instruction_text, join_groups, split_groups)


class N15Protocol:
    name = "n1.5"
    modality_config_as_json_string = True
    modality_keys_prefixed = True

    # --- client side ---------------------------------------------------------------------------------------
    def encode_observation(self, frames: dict[str, np.ndarray], state: np.ndarray, instruction: str,
                           noise: NoiseKey) -> tuple[dict[str, Any], dict[str, Any]]:
        data: dict[str, Any] = {f"video.{cam}": np.ascontiguousarray(frame, dtype=np.uint8)[None]
                                for cam, frame in frames.items()}
        for group, values in split_groups(np.asarray(state, dtype=np.float64)).items():
            data[f"state.{group}"] = np.ascontiguousarray(values)[None]
        data[LANGUAGE_KEY] = [instruction]
        return data, {"options": noise.to_options()}

    def decode_actions(self, reply: Any) -> np.ndarray:
        if not isinstance(reply, dict):
            raise ValueError(f"expected a map of action.* arrays, got {type(reply).__name__}")
        groups = {key.removeprefix("action."): value for key, value in reply.items() if key.startswith("action.")}
        chunk = join_groups(groups, "the reply")
        if chunk.ndim != 2:
            raise ValueError(f"action chunk has shape {chunk.shape}; expected (T, 6) for one unbatched observation")
        return chunk

    def reset_data(self, seed: int) -> None:
        return None  # N1.5's server has no reset endpoint; it keeps no episode state

    # --- server side ---------------------------------------------------------------------------------------
    def decode_request(self, request: dict[str, Any]) -> ModelInputs:
        data = request.get("data")
        if not isinstance(data, dict):
            raise ValueError("get_action needs 'data': a map of video.*, state.* and "
                             f"{LANGUAGE_KEY} (GR00T N1.5 layout)")
        if "observation" in data:
            raise ValueError("this server speaks GR00T N1.5 (flat keys such as video.front) but the request is "
                             "N1.6 (nested 'observation'); restart it with --protocol n1.6, or use the gr00t client")
        missing = [k for k in [*(f"video.{c}" for c in CAMERAS), *(f"state.{g}" for g, _ in JOINT_GROUPS),
                               LANGUAGE_KEY] if k not in data]
        if missing:
            raise ValueError(f"observation lacks {', '.join(missing)} (has {', '.join(sorted(map(str, data)))}); "
                             f"so100_dualcam needs video.front, video.wrist, state.single_arm, state.gripper and "
                             f"{LANGUAGE_KEY}")
        states = {g: np.asarray(data[f"state.{g}"], dtype=np.float64) for g, _ in JOINT_GROUPS}
        batched = any(s.ndim >= 3 for s in states.values())  # upstream's test: state (B, T, D) vs (T, D)
        state = join_groups({g: _newest(s, batched, f"state.{g}") for g, s in states.items()}, "state")
        frames = {cam: _newest_frames(data[f"video.{cam}"], batched, f"video.{cam}") for cam in CAMERAS}
        language = data[LANGUAGE_KEY]
        if batched:
            if not isinstance(language, (list, tuple)) or len(language) != len(state):
                raise ValueError(f"{LANGUAGE_KEY} must list one instruction per batch entry ({len(state)})")
            instructions = [instruction_text(t, LANGUAGE_KEY) for t in language]
        else:
            instructions = [instruction_text(language, LANGUAGE_KEY)]
        _check_batch(frames, state, instructions)
        return ModelInputs(frames, state, instructions, NoiseKey.from_options(request.get("options")), batched)

    def encode_actions(self, chunk: np.ndarray, batched: bool) -> dict[str, np.ndarray]:
        groups = split_groups(np.asarray(chunk, dtype=np.float32))
        # Unbatched: the batch axis alone goes, as upstream's squeeze_dict_values does; the gripper stays (T, 1).
        return {f"action.{g}": np.ascontiguousarray(v if batched else np.squeeze(v, axis=0)) for g, v in groups.items()}


def _newest(values: np.ndarray, batched: bool, key: str) -> np.ndarray:
    """(T, D) -> (1, D), or (B, T, D) -> (B, D): the newest step is the last along T (delta index 0)."""
    if values.ndim != (3 if batched else 2):
        raise ValueError(f"{key} must be (T, D) for one observation or (B, T, D) for a batch, got {values.shape}")
    return values[:, -1] if batched else values[-1:]


def _newest_frames(video: Any, batched: bool, key: str) -> np.ndarray:
    """(T, H, W, 3) -> (1, H, W, 3), or (B, T, H, W, 3) -> (B, H, W, 3): the newest frame is the last along T."""
    video = np.asarray(video)
    rank = 5 if batched else 4
    if video.ndim != rank:
        layout = "(B, T, H, W, 3)" if batched else "(T, H, W, 3)"
        raise ValueError(f"{key} must be {layout} uint8 frames to match the state's rank, got shape {video.shape}")
    return frames_array(video[:, -1] if batched else video[-1:], key)


def _check_batch(frames: dict[str, np.ndarray], state: np.ndarray, instructions: list[str]) -> None:
    sizes = {len(state), len(instructions), *(len(f) for f in frames.values())}
    if len(sizes) != 1:
        raise ValueError(f"batch sizes disagree: state {len(state)}, instructions {len(instructions)}, "
                         f"frames { {c: len(f) for c, f in frames.items()} }")


class Gr00tN15Policy(RemoteGr00tPolicy):
    """``gr00t:HOST:PORT``: a GR00T N1.5 inference server (Isaac-GR00T's, or ``python -m policies.gr00t.serve``)."""

    protocol = N15Protocol()
    spec_name = "gr00t"
