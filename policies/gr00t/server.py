"""A GR00T inference server loop: ZMQ REP, upstream's endpoints, token check and error replies.

Mirrors ``BaseInferenceServer`` (``gr00t/eval/service.py``, N1.5) and ``PolicyServer``
(``gr00t/policy/server_client.py``, N1.6): a request without ``endpoint`` means ``get_action``; a wrong or missing
token gets ``{"error": "Unauthorized: Invalid API token"}``; any failure gets ``{"error": MESSAGE}``. Unlike
upstream, bytes that are not msgpack, or a request that is not a map, also get an error reply: a REP socket must
answer every request, or the client hangs. The server never crashes on a request.

What answers ``get_action`` is a plain callable, ``predict(ModelInputs) -> (B, T, 6) float32``; ``serve.py``
plugs our VLA in.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import zmq

from policies.gr00t import wire
from policies.gr00t.protocol import (ACTION_CONFIGS, ACTION_DIM, CAMERAS, JOINT_GROUPS, LANGUAGE_KEY, Gr00tProtocol,
                                     ModelInputs)

Predict = Callable[[ModelInputs], Any]
POLL_MS = 100  # how often the loop looks up from recv to notice SIGTERM or a kill request


class InferenceServer:
    def __init__(self, predict: Predict, protocol: Gr00tProtocol, action_horizon: int, host: str = "127.0.0.1",
                 port: int = 5555, api_token: str | None = None, record_dir: Path | None = None):
        self.predict = predict
        self.protocol = protocol
        self.action_horizon = action_horizon
        self.api_token = api_token or None
        self.record_dir = record_dir
        self._received = 0
        self.running = True
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        try:
            self.socket.bind(f"tcp://{host}:{'*' if port == 0 else port}")
        except zmq.ZMQError as exc:
            self.close()
            raise ValueError(f"cannot listen on {host}:{port} ({exc}); pick another --port or --host") from None
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        # endpoint name -> handler(whole request) -> reply; the set upstream registers for each version
        self.endpoints: dict[str, Callable[[dict[str, Any]], Any]] = {
            "ping": lambda request: dict(wire.PING_REPLY),
            "kill": self._kill,
            "get_action": self._get_action,
            "get_modality_config": self._modality_config,
        }
        if protocol.reset_data(0) is not None:  # N1.6 has reset; N1.5's RobotInferenceServer does not
            self.endpoints["reset"] = lambda request: {}
        if record_dir is not None:
            record_dir.mkdir(parents=True, exist_ok=True)

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
        local = self.address.startswith(("tcp://127.", "tcp://localhost", "tcp://[::1]"))
        print(f"Server is ready and listening on {self.address} (GR00T {self.protocol.name} protocol"
              f"{', API token required' if self.api_token else ''})"
              + ("; this machine only (upstream N1.5 listens on every interface: pass --host 0.0.0.0 for that)"
                 if local else ""), flush=True)
        try:
            while self.running:
                if not self.socket.poll(POLL_MS, zmq.POLLIN):
                    continue
                raw = self.socket.recv()
                self.socket.send(self._encode(self.handle(raw)))
        finally:
            self.close()

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()

    def handle(self, raw: bytes) -> Any:
        """One request's reply; every failure becomes ``{"error": ...}``."""
        self._record(raw)
        endpoint = "?"
        try:
            request = wire.unpack(raw)
            if not isinstance(request, dict):
                raise ValueError(f"a request must be a map {{'endpoint': ..., 'data': ..., 'api_token': ...}}, "
                                 f"got {type(request).__name__}")
            if self.api_token is not None and request.get("api_token") != self.api_token:
                _log("rejected a request with a wrong or missing API token")
                return wire.error_reply(wire.UNAUTHORIZED)
            endpoint = request.get("endpoint", wire.DEFAULT_ENDPOINT)
            if endpoint not in self.endpoints:
                raise ValueError(f"Unknown endpoint: {endpoint} (this server has {', '.join(self.endpoints)})")
            return self.endpoints[endpoint](request)
        except Exception as exc:  # the server outlives any request
            _log(f"error on {endpoint!r}: {type(exc).__name__}: {exc}")
            return wire.error_reply(str(exc))

    # --- endpoints -------------------------------------------------------------------------------------------
    def _get_action(self, request: dict[str, Any]) -> Any:
        inputs = self.protocol.decode_request(request)
        chunk = self.predict(inputs)
        if chunk.ndim != 3 or chunk.shape[0] != len(inputs.state) or chunk.shape[2] != ACTION_DIM:
            raise RuntimeError(f"the model returned a chunk of shape {chunk.shape}; expected "
                               f"({len(inputs.state)}, T, {ACTION_DIM})")
        return self.protocol.encode_actions(chunk, inputs.batched)

    def _modality_config(self, request: dict[str, Any]) -> dict[str, Any]:
        """so100_dualcam's layout: N1.5 (data_config.py) names keys "video.front", "state.single_arm", ...; N1.6
        (so100_config.py) names them "front", "single_arm", ...; the language key is the same in both."""
        groups = [name for name, _ in JOINT_GROUPS]
        as_string = self.protocol.modality_config_as_json_string

        def keys(modality: str, names: list[str]) -> list[str]:
            return [f"{modality}.{n}" for n in names] if self.protocol.modality_keys_prefixed else list(names)

        return {"video": wire.modality_config([0], keys("video", list(CAMERAS)), as_string),
                "state": wire.modality_config([0], keys("state", groups), as_string),
                "action": wire.modality_config(list(range(self.action_horizon)), keys("action", groups), as_string,
                                               None if as_string else [ACTION_CONFIGS[g] for g in groups]),
                "language": wire.modality_config([0], [LANGUAGE_KEY], as_string)}

    def _kill(self, request: dict[str, Any]) -> None:
        self.stop()
        return None  # upstream's kill handler returns None, which travels as msgpack nil

    # --- internals -------------------------------------------------------------------------------------------
    def _record(self, raw: bytes) -> None:
        """With --record-dir, every request as received, byte for byte: what did my client really send?"""
        if self.record_dir is not None:  # time first: names sort in arrival order across restarts
            (self.record_dir / f"{time.time_ns():020d}-{self._received:06d}.msgpack").write_bytes(raw)
        self._received += 1

    def _encode(self, reply: Any) -> bytes:
        try:
            return wire.pack(reply)
        except Exception as exc:
            _log(f"could not encode the reply: {exc}")
            return wire.pack(wire.error_reply(f"the server could not encode its reply: {exc}"))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
