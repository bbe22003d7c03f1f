"""The one registry of policies, by name."""

from __future__ import annotations

import importlib
from typing import Any

from policies.base import Policy

# Import paths, so listing names never loads a model.
POLICIES: dict[str, str] = {
    "expert": "policies.scripted:ScriptedExpert",
    "blind": "policies.scripted:VisualHeuristic",
}


def register_policy(name: str, import_path: str) -> None:
    POLICIES[name] = import_path


def make_policy(name: str, **kwargs: Any) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(sorted(POLICIES))} "
                         f"(e.g. --policies expert,blind)")
    module, attr = POLICIES[name].split(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)
