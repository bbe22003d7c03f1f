"""What an instruction asks for, independent of its wording.

Policies see only text; the benchmark keeps the meaning next to the text so the
oracle never has to parse language itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verb = Literal["place", "avoid", "none"]
VERBS: tuple[Verb, ...] = ("place", "avoid", "none")


@dataclass(frozen=True)
class Intent:
    """``place X`` (put X on the plate), ``avoid X`` (leave X alone) or ``none`` (no task)."""

    verb: Verb
    target: str | None = None

    def __post_init__(self) -> None:
        if self.verb not in VERBS:
            raise ValueError(f"unknown intent verb {self.verb!r}; use one of {', '.join(VERBS)}")
        if (self.verb == "none") != (self.target is None):
            raise ValueError(f"intent {self.verb!r} {'takes no' if self.verb == 'none' else 'needs a'} target")

    def __str__(self) -> str:
        return self.verb if self.target is None else f"{self.verb} {self.target}"

    @classmethod
    def parse(cls, text: str) -> "Intent":
        """Inverse of ``str``: ``"place cheese"``, ``"avoid bread"``, ``"none"``."""
        parts = text.split()
        if parts == ["none"]:
            return cls("none")
        if len(parts) == 2 and parts[0] in ("place", "avoid"):
            return cls(parts[0], parts[1])  # type: ignore[arg-type]
        raise ValueError(f"cannot read intent {text!r}; write 'place <ingredient>', 'avoid <ingredient>' or 'none'")
