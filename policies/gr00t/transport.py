"""A ZMQ REQ connection to a GR00T inference server, with a timeout and a retry policy.

Upstream's clients (``gr00t/eval/service.py``, ``gr00t/policy/server_client.py``) block forever on a dead
server. Here every call waits at most ``timeout_s`` per attempt. A REQ socket that timed out is stuck: it
refuses to send again before it has received. So each retry closes it (linger 0, so nothing queued keeps the
process alive) and connects a fresh one. After ``retries`` further attempts the call raises ``PolicyError``
with one line that says what failed and what to do, so the runner records ``policy_error`` and the grid goes
on. An error reply is not retried: the server answered, and the same request would fail the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import zmq

from policies.base import PolicyError
from policies.gr00t import wire

# torch.save's zip archive, and the pickle protocol 2+ opcode of its legacy format
TORCH_SAVE_MAGIC = (b"PK\x03\x04", b"\x80\x02")

RETRY_PAUSE_S = 0.1  # between attempts, so a restarting server gets a moment to bind


@dataclass(frozen=True)
class Endpoint:
    host: str = "localhost"
    port: int = 5555
    timeout_s: float = 15.0  # per attempt; upstream PolicyClient's default (timeout_ms=15000)
    retries: int = 2  # further attempts after a timeout; the worst case is timeout_s * (retries + 1)
    api_token: str | None = None

    @property
    def address(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"GR00T server port {self.port} is out of range; use 1-65535 (upstream default 5555)")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")


class ServerErrorReply(PolicyError):
    """The server answered with ``{"error": ...}``."""


class Connection:
    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self._context = zmq.Context()
        self._socket: zmq.Socket | None = None

    def call(self, endpoint_name: str, data: Any = None, *, timeout_s: float | None = None,
             retries: int | None = None, **extra: Any) -> Any:
        """Send one request and return the decoded reply; PolicyError on no reply, garbage or an error reply.

        ``timeout_s``/``retries`` override the endpoint's for this call (a quick ping at construction).
        """
        payload = wire.pack(wire.request(endpoint_name, data, self.endpoint.api_token, **extra))
        timeout_s = self.endpoint.timeout_s if timeout_s is None else timeout_s
        attempts = (self.endpoint.retries if retries is None else retries) + 1
        for attempt in range(attempts):
            reply = self._exchange(payload, timeout_s)
            if reply is not None:
                return self._check(endpoint_name, reply)
            self._reset_socket()  # a REQ socket that timed out cannot send again
            if attempt + 1 < attempts:
                time.sleep(RETRY_PAUSE_S)
        raise PolicyError(
            f"no reply from the GR00T server at {self.endpoint.address} to {endpoint_name!r} within "
            f"{timeout_s:g} s ({attempts} attempt{'s' * (attempts > 1)}); start it "
            f"(python -m policies.gr00t.serve --checkpoint PATH --port {self.endpoint.port}, or Isaac-GR00T's "
            f"inference service), check host/port, or raise timeout_s for a slow model")

    def close(self) -> None:
        self._reset_socket()
        self._context.term()

    # --- internals -------------------------------------------------------------------------------------
    def _exchange(self, payload: bytes, timeout_s: float) -> bytes | None:
        sock = self._connected()
        timeout_ms = int(timeout_s * 1000)
        try:
            sock.send(payload)
        except zmq.Again:  # nothing to deliver to within SNDTIMEO
            return None
        if sock.poll(timeout_ms, zmq.POLLIN) == 0:
            return None
        return sock.recv()

    def _connected(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, int(self.endpoint.timeout_s * 1000))
            sock.connect(self.endpoint.address)
            self._socket = sock
        return self._socket

    def _reset_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _check(self, endpoint_name: str, raw: bytes) -> Any:
        where = self.endpoint.address
        if raw == b"ERROR":  # N1.6's PolicyClient treats this bare reply as a server-side failure too
            raise ServerErrorReply(f"the GR00T server at {where} answered {endpoint_name!r} with ERROR; check its log")
        if raw.startswith(TORCH_SAVE_MAGIC):
            # Isaac-GR00T N1.5 before msgpack (gr00t/eval/service.py's TorchSerializer): it torch.load()s our msgpack
            # request, fails, and answers with torch.save({"error": ...}). Our wire is msgpack only.
            raise PolicyError(f"the GR00T server at {where} speaks the old torch.save protocol (Isaac-GR00T N1.5's "
                              f"TorchSerializer, before msgpack); update that Isaac-GR00T checkout to a commit whose "
                              f"gr00t/eval/service.py uses MsgSerializer, or serve the model with chefmate-serve")
        try:
            reply = wire.unpack(raw)
        except wire.WireError as exc:
            raise PolicyError(f"the server at {where} is not a GR00T inference server ({exc}); check host/port")
        if isinstance(reply, dict) and "error" in reply:
            error = str(reply["error"])
            if error == wire.UNAUTHORIZED:
                raise ServerErrorReply(
                    f"the GR00T server at {where} rejected the API token ({error}); pass the server's token "
                    f"(env CHEFMATE_GR00T_TOKEN, or api_token=...)")
            raise ServerErrorReply(f"the GR00T server at {where} failed on {endpoint_name!r}: {error}; see its log")
        return reply
