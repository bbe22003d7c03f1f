"""The one registry of policies, by name."""

from __future__ import annotations

import importlib
from typing import Any

from policies.base import Policy

# Import paths, so listing names never loads a model.
POLICIES: dict[str, str] = {
    "expert": "policies.scripted:ScriptedExpert",
    "blind": "policies.scripted:VisualHeuristic",
    "idle": "policies.idle:IdlePolicy",  # holds its start pose: the do-nothing floor every table shows
    "vla": "policies.vla.policy:VLAPolicy",  # needs a checkpoint: --policies vla:runs/dis
    "gr00t": "policies.gr00t.n15:Gr00tN15Policy",  # a GR00T N1.5 server: gr00t, gr00t:PORT, gr00t:HOST:PORT
    "gr00t16": "policies.gr00t.n16:Gr00tN16Policy",  # a GR00T N1.6 server, same specs
    "lerobot": "policies.lerobot_policy:LeRobotPolicy",  # a LeRobot pretrained-policy folder: lerobot:PATH
}


def register_policy(name: str, import_path: str) -> None:
    POLICIES[name] = import_path


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """``spec`` is a registered name, optionally with one argument after the first colon: ``vla:runs/dis``.

    A class with a ``from_spec(arg, **kwargs)`` classmethod reads the argument itself (``gr00t:host:5555``);
    otherwise the argument is passed as ``checkpoint``.
    """
    name, _, arg = spec.partition(":")
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(sorted(POLICIES))} "
                         f"(e.g. --policies expert,blind)")
    module, attr = POLICIES[name].split(":")
    cls = getattr(importlib.import_module(module), attr)
    if hasattr(cls, "from_spec"):
        return cls.from_spec(arg, **kwargs)
    if arg:
        kwargs = {"checkpoint": arg, **kwargs}
    return cls(**kwargs)
