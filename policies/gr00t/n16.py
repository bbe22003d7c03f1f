"""GR00T N1.6's get_action messages for so100_dualcam, and the client policy registered as ``gr00t16``.

Upstream (NVIDIA/Isaac-GR00T, N1.6): ``gr00t/policy/server_client.py`` (``PolicyServer`` calls
``policy.get_action(**data)``, ``PolicyClient`` sends ``{"observation": ..., "options": ...}``),
``gr00t/policy/gr00t_policy.py`` (``Gr00tPolicy.check_observation`` / ``check_action``), ``getting_started/policy.md``
and ``examples/SO100/so100_config.py`` (the keys).

Request ``data``, nested and always batched (B, T)::

    {"observation": {"video":    {"front": (B, 1, H, W, 3) uint8, "wrist": ...},
                     "state":    {"single_arm": (B, 1, 5) float32, "gripper": (B, 1, 1) float32},
                     "language": {"annotation.human.task_description": [[instruction]] * B}},
     "options": {...}}

Reply: the pair ``(action, info)``, a two-element msgpack array: ``action = {"single_arm": (B, 16, 5),
"gripper": (B, 16, 1)}`` float32 absolute targets, ``info`` a map (upstream's is empty). The noise key travels
in ``options``, upstream's own slot for per-call parameters. There is also a ``reset`` endpoint, called with
``{"options": ...}`` at each episode start; stateless servers ignore it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.gr00t.client import RemoteGr00tPolicy
from policies.gr00t.protocol import (CAMERAS, JOINT_GROUPS, LANGUAGE_KEY, ModelInputs, NoiseKey, frames_array,
                                     instruction_text, join_groups, split_groups)


class N16Protocol:
    name = "n1.6"
    modality_config_as_json_string = False
    modality_keys_prefixed = False

    # --- client side ---------------------------------------------------------------------------------------
    def encode_observation(self, frames: dict[str, np.ndarray], state: np.ndarray, instruction: str,
                           noise: NoiseKey) -> tuple[dict[str, Any], dict[str, Any]]:
        observation = {
            "video": {cam: np.ascontiguousarray(frame, dtype=np.uint8)[None, None] for cam, frame in frames.items()},
            "state": {group: np.ascontiguousarray(values, dtype=np.float32)[None, None]
                      for group, values in split_groups(np.asarray(state)).items()},
            "language": {LANGUAGE_KEY: [[instruction]]},
        }
        return {"observation": observation, "options": noise.to_options()}, {}

    def decode_actions(self, reply: Any) -> np.ndarray:
        if not (isinstance(reply, (list, tuple)) and len(reply) == 2 and isinstance(reply[0], dict)):
            raise ValueError(f"expected the N1.6 pair [action map, info map], got {_shape_of(reply)}; is the server "
                             f"N1.5? then use the gr00t policy")
        chunk = join_groups(reply[0], "the reply's action map")
        if chunk.ndim != 3 or chunk.shape[0] != 1:
            raise ValueError(f"action chunk has shape {chunk.shape}; expected (1, T, 6) for one observation")
        return chunk[0]

    def reset_data(self, seed: int) -> dict[str, Any]:
        return {"options": {"seed": seed}}

    # --- server side ---------------------------------------------------------------------------------------
    def decode_request(self, request: dict[str, Any]) -> ModelInputs:
        data = request.get("data")
        if not isinstance(data, dict) or "observation" not in data:
            if isinstance(data, dict) and any(str(k).startswith("video.") for k in data):
                raise ValueError("this server speaks GR00T N1.6 (nested 'observation') but the request is N1.5 "
                                 "(flat keys such as video.front); restart it with --protocol n1.5, or use the "
                                 "gr00t16 client")
            raise ValueError("get_action needs data = {'observation': {'video': ..., 'state': ..., 'language': ...}, "
                             "'options': ...} (GR00T N1.6 layout)")
        observation = data["observation"]
        for modality in ("video", "state", "language"):
            if not isinstance(observation.get(modality) if isinstance(observation, dict) else None, dict):
                raise ValueError(f"observation[{modality!r}] must be a map (GR00T N1.6 layout: video, state, language)")
        video, states, language = observation["video"], observation["state"], observation["language"]
        missing = [f"video.{c}" for c in CAMERAS if c not in video] + \
                  [f"state.{g}" for g, _ in JOINT_GROUPS if g not in states]
        if missing:
            raise ValueError(f"observation lacks {', '.join(missing)}; so100_dualcam needs video front/wrist and "
                             f"state single_arm/gripper")
        frames = {}
        for cam in CAMERAS:
            clip = np.asarray(video[cam])
            if clip.ndim != 5:
                raise ValueError(f"video[{cam!r}] must be (B, T, H, W, 3) uint8, got shape {clip.shape}")
            frames[cam] = frames_array(clip[:, -1], f"video[{cam!r}]")  # newest frame: last along T
        groups = {}
        for group, _ in JOINT_GROUPS:
            values = np.asarray(states[group], dtype=np.float64)
            if values.ndim != 3:
                raise ValueError(f"state[{group!r}] must be (B, T, D) float32, got shape {values.shape}")
            groups[group] = values[:, -1]
        state = join_groups(groups, "state")
        texts = _language_entries(language)
        instructions = [instruction_text(t, f"language[{LANGUAGE_KEY!r}] entry") for t in texts]
        sizes = {len(state), len(instructions), *(len(f) for f in frames.values())}
        if len(sizes) != 1:
            raise ValueError(f"batch sizes disagree across video, state and language: {sorted(sizes)}")
        return ModelInputs(frames, state, instructions, NoiseKey.from_options(data.get("options")), True)

    def encode_actions(self, chunk: np.ndarray, batched: bool) -> list[dict[str, np.ndarray]]:
        groups = split_groups(np.asarray(chunk, dtype=np.float32))
        return [{g: np.ascontiguousarray(v) for g, v in groups.items()}, {}]


def _language_entries(language: dict[str, Any]) -> list[Any]:
    """The (B, 1) instruction lists; upstream configs name the key differently, so a lone key is accepted."""
    if LANGUAGE_KEY in language:
        entries = language[LANGUAGE_KEY]
    elif len(language) == 1:
        entries = next(iter(language.values()))
    else:
        raise ValueError(f"language must hold {LANGUAGE_KEY!r} (or exactly one key), got {sorted(language)}")
    if not isinstance(entries, (list, tuple)):
        raise ValueError(f"language entries must be a (B, 1) list of lists of strings, got {type(entries).__name__}")
    return list(entries)


def _shape_of(value: Any) -> str:
    if isinstance(value, dict):
        return f"a map with keys {sorted(map(str, value))[:6]}"
    return type(value).__name__


class Gr00tN16Policy(RemoteGr00tPolicy):
    """``gr00t16:HOST:PORT``: a GR00T N1.6 policy server (Isaac-GR00T's run_gr00t_server.py, or ours)."""

    protocol = N16Protocol()
    spec_name = "gr00t16"
