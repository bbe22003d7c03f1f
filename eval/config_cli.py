"""Command lines over config dataclasses: a default is written once, in the dataclass, and the CLI reads it.

    p.add_argument("--batch-size", type=int)          # no default= here
    defaults_from(p, FinetuneConfig)                   # --batch-size now defaults to FinetuneConfig.batch_size
    add_options(p, FinetuneConfig, "max_steps seed")   # or declare plain typed options straight from the fields
    cfg = from_args(FinetuneConfig, p.parse_args(), dataset_paths=...)   # fields named like options come from them

An option matches the field its destination names (``--batch-size`` -> ``batch_size``). Options that are not fields
keep their own defaults; an option that sets ``default=`` itself keeps it (the test suite checks that none of these
restate a field's default).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def field_defaults(*configs: type) -> dict[str, Any]:
    """Each field's default across these dataclasses (later ones win); fields without one are left out."""
    found: dict[str, Any] = {}
    for cfg in configs:
        for f in dataclasses.fields(cfg):
            if f.default is not dataclasses.MISSING:
                found[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                found[f.name] = f.default_factory()
    return found


def defaults_from(parser: argparse.ArgumentParser, *configs: type) -> None:
    """Give every option that has no default of its own the default of the field it names."""
    defaults = field_defaults(*configs)
    for action in parser._actions:  # argparse keeps no public list; this attribute is stable since Python 3.2
        if action.dest in defaults and action.default is None:
            action.default = defaults[action.dest]


def add_options(parser: argparse.ArgumentParser, config: type, names: str, **helps: str) -> None:
    """``--field-name`` options for the named fields (space-separated) of ``config``, each typed by its default's
    type and defaulting to it; ``helps`` maps a field name to its help text. Plain numbers and strings only: an
    option that needs more (choices, a bool flag, a path that may be None) is declared by hand."""
    defaults = field_defaults(config)
    for name in names.split():
        default = defaults[name]
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default, help=helps.get(name))


def from_args(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """``cls`` built from the parsed options named like its fields, plus ``given`` (which wins)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in vars(args).items() if k in names}, **given})
