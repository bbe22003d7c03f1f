"""A remote GR00T inference server behind the benchmark's Policy protocol.

Each chunk request sends the two camera frames, the joint state in LeRobot units and the instruction; the
reply's absolute targets (LeRobot units) are executed ``n_action_steps`` at a time, converted to sim radians.
The protocol version (what the messages look like) is a plug-in: ``n15.py`` and ``n16.py`` subclass this.

Specs: ``gr00t`` (localhost:5555), ``gr00t:PORT``, ``gr00t:HOST``, ``gr00t:HOST:PORT``, and any config field as
a query, e.g. ``gr00t:gpu-box:5555?n_action_steps=16&timeout_s=30``. The API token comes from
``CHEFMATE_GR00T_TOKEN`` (so it stays out of command lines and result files) or ``api_token=``.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from leisaac_tasks.units import lerobot_to_sim, sim_to_lerobot
from policies.base import Abilities, PolicyError
from policies.gr00t.protocol import CAMERAS, Gr00tProtocol, NoiseKey
from policies.gr00t.transport import Connection, Endpoint

TOKEN_ENV = "CHEFMATE_GR00T_TOKEN"


@dataclass(frozen=True)
class Gr00tClientConfig:
    host: str = "localhost"
    port: int = 5555
    timeout_s: float = 15.0  # per attempt, for each chunk request
    retries: int = 2  # further attempts after a timeout, each on a fresh socket
    api_token: str | None = None  # default: $CHEFMATE_GR00T_TOKEN
    n_action_steps: int = 8  # actions executed per chunk before asking again (GR00T predicts 16)
    connect_timeout_s: float = 5.0  # the ping at construction: a wrong address fails fast

    def __post_init__(self) -> None:
        if self.n_action_steps < 1:
            raise ValueError(f"n_action_steps must be at least 1, got {self.n_action_steps}")
        if self.connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be positive, got {self.connect_timeout_s}")

    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port, self.timeout_s, self.retries,
                        self.api_token or os.environ.get(TOKEN_ENV) or None)


class ServerUnavailable(PolicyError, ValueError):
    """No usable server at construction. Also a ValueError: a wrong host, port or token is a bad configuration,
    which ``run_matrix`` reports in one line before any results file is touched."""


class RemoteGr00tPolicy:
    protocol: ClassVar[Gr00tProtocol]
    spec_name: ClassVar[str]  # the registry name: gr00t / gr00t16
    abilities = Abilities(cameras=CAMERAS, remote=True)

    def __init__(self, config: Gr00tClientConfig | None = None, **overrides: Any):
        self.config = replace(config or Gr00tClientConfig(), **overrides)
        self.connection = Connection(self.config.endpoint())
        self.name = f"{self.spec_name}:{self.config.host}:{self.config.port}"
        self.instruction = ""
        self.seed = 0
        self._chunk_index = 0
        self._queue: deque[np.ndarray] = deque()
        try:  # a wrong address or token should stop the run now, not cost every episode a timeout
            self.connection.call("ping", timeout_s=self.config.connect_timeout_s, retries=0)
        except PolicyError as exc:
            self.connection.close()
            raise ServerUnavailable(f"{self.spec_name} policy: {exc}") from None

    @classmethod
    def from_spec(cls, arg: str, **kwargs: Any) -> "RemoteGr00tPolicy":
        return cls(parse_spec(arg, cls.spec_name), **kwargs)

    def reset(self, instruction: str, seed: int) -> None:
        self.instruction = instruction
        self.seed = int(seed)
        self._chunk_index = 0
        self._queue.clear()
        data = self.protocol.reset_data(self.seed)
        if data is not None:
            self.connection.call("reset", data)

    @property
    def done(self) -> bool:
        return False  # a learned policy never declares itself finished; the episode runs to max_steps

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        if not self._queue:
            chunk = self.request_chunk(observation)
            self._queue.extend(lerobot_to_sim(chunk[: self.config.n_action_steps]))
        return self._queue.popleft()

    def request_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """One get_action round trip: (T, 6) absolute targets in LeRobot units."""
        missing = [cam for cam in self.abilities.cameras if cam not in observation]
        if missing:
            raise PolicyError(f"the observation lacks camera(s) {missing}; render {', '.join(self.abilities.cameras)} "
                              f"for the {self.spec_name} policy")
        frames = {cam: observation[cam] for cam in self.abilities.cameras}
        state = sim_to_lerobot(observation["state"])
        noise = NoiseKey(self.seed, self._chunk_index)
        data, extra = self.protocol.encode_observation(frames, state, self.instruction, noise)
        reply = self.connection.call("get_action", data, **extra)
        try:
            chunk = self.protocol.decode_actions(reply)
        except ValueError as exc:
            raise PolicyError(f"unusable get_action reply from {self.connection.endpoint.address}: {exc}") from None
        self._chunk_index += 1
        return chunk

    def close(self) -> None:
        self.connection.close()


def parse_spec(arg: str, name: str) -> Gr00tClientConfig:
    """``[HOST][:PORT][?key=value&...]`` -> config; ValueError names the bad part and shows the form."""
    form = f"write {name}, {name}:PORT, {name}:HOST:PORT or {name}:HOST:PORT?n_action_steps=16&timeout_s=30"
    address, _, query = (arg or "").partition("?")
    values: dict[str, Any] = {}
    if address:
        host, sep, port = address.rpartition(":")
        if not sep:
            host, port = (("", address) if address.isdigit() else (address, ""))
        if host:
            values["host"] = host
        if port:
            if not port.isdigit():
                raise ValueError(f"{name} spec {arg!r}: port {port!r} is not a number; {form}")
            values["port"] = int(port)
    types = {f.name: f.type for f in fields(Gr00tClientConfig)}
    for item in filter(None, query.split("&")):
        key, sep, text = item.partition("=")
        if not sep or key not in types:
            raise ValueError(f"{name} spec {arg!r}: unknown option {item!r}; options are {', '.join(types)}")
        kind = types[key]
        try:
            values[key] = int(text) if kind in ("int", int) else float(text) if kind in ("float", float) else text
        except ValueError:
            raise ValueError(f"{name} spec {arg!r}: {key}={text!r} is not a {kind}") from None
    return Gr00tClientConfig(**values)
