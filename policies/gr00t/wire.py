"""Isaac-GR00T's wire format: msgpack messages whose numpy arrays travel as ``.npy`` bytes.

Checked against NVIDIA/Isaac-GR00T:
- ``gr00t/eval/service.py`` (N1.5: ``MsgSerializer``, ``BaseInferenceServer``, ``BaseInferenceClient``,
  ``ExternalRobotInferenceClient``) and ``gr00t/eval/robot.py`` (``RobotInferenceServer``);
- ``gr00t/policy/server_client.py`` (N1.6: ``MsgSerializer``, ``PolicyServer``, ``PolicyClient``).

Both versions share everything here:
- an array is the msgpack map ``{"__ndarray_class__": True, "as_npy": <np.save(arr, allow_pickle=False) bytes>}``,
  so dtype, shape and byte order survive exactly;
- a request is ``{"endpoint": NAME, "data": ..., "api_token": TOKEN}``; ``data`` is left out for endpoints that
  take no input (``ping``, ``kill``, ``get_modality_config``) and ``api_token`` when no token is set. A server
  reads a missing endpoint as ``get_action``;
- any failure is answered with ``{"error": MESSAGE}``; a bad token gets exactly ``UNAUTHORIZED``;
- ``ping`` answers ``{"status": "ok", "message": "Server is running"}``.

A ``ModalityConfig`` travels as ``{"__ModalityConfig_class__": True, "as_json": ...}``: a JSON string in N1.5,
a plain map in N1.6. It decodes here to a plain dict, since this side has no GR00T classes.
"""

from __future__ import annotations

import io
import json
from typing import Any

import msgpack
import numpy as np

NDARRAY_TAG = "__ndarray_class__"
MODALITY_CONFIG_TAG = "__ModalityConfig_class__"
UNAUTHORIZED = "Unauthorized: Invalid API token"
PING_REPLY = {"status": "ok", "message": "Server is running"}
DEFAULT_ENDPOINT = "get_action"


class WireError(ValueError):
    """Bytes that are not a GR00T message (not msgpack, or a tagged array that np.load refuses)."""


def _encode_custom(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        buffer = io.BytesIO()
        np.save(buffer, obj, allow_pickle=False)  # never pickle: a message must not be able to run code
        return {NDARRAY_TAG: True, "as_npy": buffer.getvalue()}
    if isinstance(obj, np.generic):  # numpy scalars (np.float32(1.0)) are not msgpack types
        return obj.item()
    raise TypeError(f"cannot send a {type(obj).__name__} over the GR00T wire; use numpy arrays, numbers, "
                    f"strings, lists and dicts")


def _decode_custom(obj: dict[Any, Any]) -> Any:
    if NDARRAY_TAG in obj:
        return np.load(io.BytesIO(obj["as_npy"]), allow_pickle=False)
    if MODALITY_CONFIG_TAG in obj:
        body = obj["as_json"]
        return json.loads(body) if isinstance(body, (str, bytes)) else body
    return obj


def pack(message: Any) -> bytes:
    return msgpack.packb(message, default=_encode_custom)


def unpack(payload: bytes) -> Any:
    try:
        return msgpack.unpackb(payload, object_hook=_decode_custom)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise WireError(f"not a GR00T msgpack message ({type(exc).__name__}: {exc})") from None


def request(endpoint: str, data: Any = None, api_token: str | None = None, **extra: Any) -> dict[str, Any]:
    """The request map; ``data=None`` leaves the key out, as upstream does for input-less endpoints.

    ``extra`` adds top-level keys. Upstream servers read only ``endpoint``, ``data`` and ``api_token``, so extra
    keys reach servers that understand them and are ignored by the rest.
    """
    message: dict[str, Any] = {"endpoint": endpoint}
    if data is not None:
        message["data"] = data
    if api_token:
        message["api_token"] = api_token
    message.update(extra)
    return message


def error_reply(message: str) -> dict[str, str]:
    return {"error": message}


def modality_config(delta_indices: list[int], modality_keys: list[str], json_string: bool,
                    action_configs: list[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    """One tagged ModalityConfig. ``json_string``: the N1.5 form (pydantic's model_dump_json of its two fields).
    Otherwise N1.6's: ``to_json_serializable`` of its dataclass, every field, enums by *name*, which its client
    rebuilds with ``ModalityConfig(**as_json)`` (one ActionConfig per action key, looked up as
    ``ActionRepresentation[name]``)."""
    body: dict[str, Any] = {"delta_indices": list(delta_indices), "modality_keys": list(modality_keys)}
    if json_string:
        return {MODALITY_CONFIG_TAG: True, "as_json": json.dumps(body)}
    body.update(sin_cos_embedding_keys=None, mean_std_embedding_keys=None,
                action_configs=None if action_configs is None else
                [{"rep": rep, "type": kind, "format": fmt, "state_key": None} for rep, kind, fmt in action_configs])
    return {MODALITY_CONFIG_TAG: True, "as_json": body}
