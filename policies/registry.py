"""The one registry of policies, by name."""

from __future__ import annotations

import importlib
from typing import Any

from policies.base import Abilities, Policy

# Import paths, so listing names never loads a model.
POLICIES: dict[str, str] = {
    "expert": "policies.scripted:ScriptedExpert",
    "blind": "policies.scripted:VisualHeuristic",
    "words": "policies.scripted:WordMatcher",  # follows the slice the text names, ignores "not": words, not meaning
    "idle": "policies.idle:IdlePolicy",  # holds its start pose: the do-nothing floor every table shows
    "vla": "policies.vla.policy:VLAPolicy",  # needs a checkpoint: --policies vla:runs/dis
    "gr00t": "policies.gr00t.n15:Gr00tN15Policy",  # a GR00T N1.5 server: gr00t, gr00t:PORT, gr00t:HOST:PORT
    "gr00t16": "policies.gr00t.n16:Gr00tN16Policy",  # a GR00T N1.6 server, same specs
    "lerobot": "policies.lerobot_policy:LeRobotPolicy",  # a LeRobot pretrained-policy folder: lerobot:PATH
}


def register_policy(name: str, import_path: str) -> None:
    POLICIES[name] = import_path


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """``spec`` is a registered name, optionally with one argument after the first colon: ``vla:runs/dis``; or the
    import path ``package.module:Class[:ARG]`` of a policy class that is not registered. Worker processes rebuild
    policies from their specs, so an import path works under ``--workers`` too.

    A class with a ``from_spec(arg, **kwargs)`` classmethod reads the argument itself (``gr00t:host:5555``);
    otherwise the argument is passed as ``checkpoint``.
    """
    name, _, arg = spec.partition(":")
    attr, _, class_arg = arg.partition(":")
    if name in POLICIES:
        module, attr = POLICIES[name].split(":")
        cls = getattr(importlib.import_module(module), attr)
    elif attr.isidentifier() and all(part.isidentifier() for part in name.split(".")):
        # an import path: module:Class[:ARG], for a policy class that is not registered
        try:
            cls = getattr(importlib.import_module(name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"policy {spec!r}: cannot import {name}:{attr} ({exc}); is its package installed?") \
                from None
        arg = class_arg
    else:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(sorted(POLICIES))} "
                         f"(e.g. --policies expert,blind), or give an import path such as mypkg.policies:MyPolicy")
    if hasattr(cls, "from_spec"):
        policy = cls.from_spec(arg, **kwargs)
    else:
        policy = cls(**({"checkpoint": arg, **kwargs} if arg else kwargs))
    if not isinstance(getattr(policy, "abilities", None), Abilities):
        raise ValueError(f"policy {spec!r}: {type(policy).__name__} declares no abilities; give it "
                         f"abilities = Abilities(...) (policies/base.py says what each one means)")
    return policy
