"""Where each ingredient starts: the benchmark's scenario matrix."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

INGREDIENTS: tuple[str, ...] = ("cheese", "bread")


class Placement(str, Enum):
    HOLDER = "H"
    PLATE = "P"
    ABSENT = "-"


_PLACEMENT_ALIASES = {"h": Placement.HOLDER, "holder": Placement.HOLDER, "p": Placement.PLATE,
                      "plate": Placement.PLATE, "-": Placement.ABSENT, "–": Placement.ABSENT,
                      "a": Placement.ABSENT, "absent": Placement.ABSENT, "none": Placement.ABSENT}


@dataclass(frozen=True)
class Scenario:
    """Placement of the cheese and the bread, e.g. ``Scenario(HOLDER, ABSENT)`` is the seed's (H,–)."""

    cheese: Placement
    bread: Placement

    def placement(self, ingredient: str) -> Placement:
        return getattr(self, ingredient)

    def present(self, ingredient: str) -> bool:
        return ingredient in INGREDIENTS and self.placement(ingredient) != Placement.ABSENT

    @property
    def label(self) -> str:
        """The seed's notation with an en dash for absent, e.g. ``(H,–)``."""
        return "(" + ",".join("–" if p == Placement.ABSENT else p.value for p in (self.cheese, self.bread)) + ")"

    @property
    def key(self) -> str:
        """ASCII form for file names and command lines, e.g. ``H-``."""
        return self.cheese.value + self.bread.value

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, text: str) -> "Scenario":
        """Accepts ``(H,–)``, ``H,-``, ``H-``, ``holder,absent``."""
        body = text.strip().strip("()").replace(" ", "")
        parts = body.split(",") if "," in body else list(body)
        try:
            if len(parts) != 2:
                raise KeyError(text)
            return cls(*(_PLACEMENT_ALIASES[p.lower()] for p in parts))
        except KeyError:
            raise ValueError(
                f"unknown scenario {text!r}: write two placements (cheese, bread), each H (holder), "
                f"P (plate) or - (absent), e.g. 'H,-' or '(P,H)'"
            ) from None


H, P, A = Placement.HOLDER, Placement.PLATE, Placement.ABSENT

# The eight cells the seed user tried on the real arm, in the seed's order.
SEED_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(H, H), Scenario(H, A), Scenario(A, H), Scenario(P, H),
    Scenario(H, P), Scenario(P, P), Scenario(A, A), Scenario(P, A),
)
# The ninth cell, (–,P), which the seed never ran; opt-in behind a flag.
EXTRA_SCENARIOS: tuple[Scenario, ...] = (Scenario(A, P),)


def scenario_set(include_extra: bool = False) -> tuple[Scenario, ...]:
    return SEED_SCENARIOS + (EXTRA_SCENARIOS if include_extra else ())
