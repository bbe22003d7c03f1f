"""What a GR00T protocol version must provide, and the so100_dualcam modality layout both versions share.

A protocol version (``n15.py``, ``n16.py``) turns one camera/state/instruction observation into a request and a
reply into an action chunk (the client's half), and a request back into model inputs and a chunk into a reply
(the server's half). Keys follow Isaac-GR00T's ``so100_dualcam`` data config (``gr00t/experiment/data_config.py``,
N1.5) and ``examples/SO100/so100_config.py`` (N1.6): cameras ``front`` and ``wrist``; state and action split into
``single_arm`` (5 joints, degrees) and ``gripper`` (0-100), LeRobot's units, because GR00T's so100 data is LeRobot
data; the instruction under ``annotation.human.task_description``.

Determinism. A flow-matching policy samples noise, so the same observation can give different chunks. The
client names the noise with ``{"seed": episode seed, "chunk": k}`` (k = 0, 1, ... within the episode) in the
slot each version leaves for options, and the server draws chunk k's noise as the (k+1)-th draw of a generator
seeded with the episode seed: exactly what ``VLAPolicy`` draws in process. The server keeps no per-client
state, so the reply depends only on the request: restarts, several clients and parallel workers change
nothing, and a remote episode replays the in-process one. A request without options means seed 0, chunk 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

CAMERAS: tuple[str, ...] = ("front", "wrist")
# (group name, slice of the 6-vector in so101 joint order): the modality.json split the GR00T export writes
JOINT_GROUPS: tuple[tuple[str, slice], ...] = (("single_arm", slice(0, 5)), ("gripper", slice(5, 6)))
LANGUAGE_KEY = "annotation.human.task_description"
ACTION_DIM = 6
# N1.6's ActionConfig per action group, as examples/SO100/so100_config.py declares them and as our VLA trains (arm
# actions relative to the state, the gripper absolute): (ActionRepresentation, ActionType, ActionFormat) by name.
ACTION_CONFIGS: dict[str, tuple[str, str, str]] = {"single_arm": ("RELATIVE", "NON_EEF", "DEFAULT"),
                                                   "gripper": ("ABSOLUTE", "NON_EEF", "DEFAULT")}


@dataclass(frozen=True)
class NoiseKey:
    seed: int = 0
    chunk: int = 0

    def to_options(self) -> dict[str, int]:
        return {"seed": self.seed, "chunk": self.chunk}

    @classmethod
    def from_options(cls, options: Any) -> "NoiseKey":
        if not options:
            return cls()
        if not isinstance(options, dict):
            raise ValueError(f"options must be a map like {{'seed': 0, 'chunk': 0}}, got {type(options).__name__}")
        try:
            return cls(int(options.get("seed", 0)), int(options.get("chunk", 0)))
        except (TypeError, ValueError):
            raise ValueError(f"options seed/chunk must be integers, got {options!r}") from None


@dataclass(frozen=True)
class ModelInputs:
    """What the server hands the model: a batch of B observations in LeRobot units."""

    frames: dict[str, np.ndarray]  # camera -> (B, H, W, 3) uint8
    state: np.ndarray  # (B, 6) float, LeRobot units
    instructions: list[str]  # B strings
    noise: NoiseKey
    batched: bool = True  # False: an N1.5 request without a batch dim, answered without one


class Gr00tProtocol(Protocol):
    name: str  # "n1.5" / "n1.6", as --protocol spells it
    modality_config_as_json_string: bool  # N1.5 sends ModalityConfig as a JSON string, N1.6 as a map
    modality_keys_prefixed: bool  # N1.5's modality keys name the modality ("video.front"), N1.6's do not

    # client side
    def encode_observation(self, frames: dict[str, np.ndarray], state: np.ndarray, instruction: str,
                           noise: NoiseKey) -> tuple[Any, dict[str, Any]]:
        """(H, W, 3) frames and a (6,) LeRobot state -> (request ``data``, extra top-level request keys)."""

    def decode_actions(self, reply: Any) -> np.ndarray:
        """A get_action reply -> (T, 6) absolute targets in LeRobot units; ValueError names what is wrong."""

    def reset_data(self, seed: int) -> Any | None:
        """``data`` for the ``reset`` endpoint at an episode start, or None where the version has none."""

    # server side
    def decode_request(self, request: dict[str, Any]) -> ModelInputs:
        """A get_action request -> model inputs; ValueError names the key and what it should hold."""

    def encode_actions(self, chunk: np.ndarray, batched: bool) -> Any:
        """(B, T, 6) float32 targets in LeRobot units -> the get_action reply (``batched`` from ModelInputs)."""


def split_groups(vector: np.ndarray) -> dict[str, np.ndarray]:
    """(..., 6) -> {"single_arm": (..., 5), "gripper": (..., 1)}."""
    return {name: vector[..., part] for name, part in JOINT_GROUPS}


def join_groups(groups: dict[str, np.ndarray], what: str) -> np.ndarray:
    """Inverse of split_groups over a trailing axis; a gripper may arrive squeezed to (...,) as N1.5 sends it."""
    parts = []
    for name, part in JOINT_GROUPS:
        width = part.stop - part.start
        if name not in groups:
            raise ValueError(f"{what} lacks {name!r} (has {sorted(groups)}); the server must run the so100_dualcam "
                             f"layout (single_arm + gripper)")
        value = np.asarray(groups[name])
        if width == 1 and (value.ndim == 0 or value.shape[-1] != 1):
            value = value[..., None]
        if value.shape[-1] != width:
            raise ValueError(f"{what} {name!r} has shape {value.shape}; expected {width} values per step")
        parts.append(value)
    try:
        return np.concatenate(parts, axis=-1)
    except ValueError:
        raise ValueError(f"{what} groups disagree in shape: "
                         f"{ {n: np.shape(groups[n]) for n, _ in JOINT_GROUPS} }") from None


def instruction_text(value: Any, what: str) -> str:
    """A language entry: a string, or a list/tuple holding exactly one (upstream sends ``[text]``)."""
    while isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if not isinstance(value, str):
        raise ValueError(f"{what} must hold one instruction string such as ['pick up the bread'], got {value!r}")
    return value


def frames_array(value: Any, what: str) -> np.ndarray:
    """(B, H, W, 3) uint8 from a (B, H, W, 3) array."""
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.ndim != 4 or value.shape[-1] != 3:
        raise ValueError(f"{what} must be a uint8 array of RGB frames, got "
                         f"{_describe(value)}")
    return value


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
