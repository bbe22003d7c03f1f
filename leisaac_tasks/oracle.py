"""The expected-outcome oracle: what each ingredient should do, given the scene and the intent.

Rules, applied per ingredient (first matching row wins):

    ingredient               intent            expect
    -----------------------  ----------------  ------
    absent from the scene    any               ABSENT
    X, in the holder         place X           PLACE
    X, already on the plate  place X           STAY    (the task is already done)
    any other present one    place X           STAY    (also when X is absent or never exists, e.g. tomato)
    X                        avoid X           STAY
    any other present one    avoid X           ANY     (the instruction is silent about it)
    any present one          none              STAY    (empty or nonsense text asks for nothing)

So an unsatisfiable ``place`` (target on the plate, absent or not an ingredient) expects nothing to move.
"""

from __future__ import annotations

from enum import Enum
from typing import Mapping

from leisaac_tasks.intent import Intent
from leisaac_tasks.outcomes import LEFT_ALONE, EpisodeOutcome, Outcome
from leisaac_tasks.scenarios import INGREDIENTS, Placement, Scenario


class Expect(str, Enum):
    PLACE = "place"  # must end on the plate
    STAY = "stay"  # must not be picked (nudging is tolerated)
    ANY = "any"  # unconstrained
    ABSENT = "absent"  # not in the scene


def expected(scenario: Scenario, intent: Intent) -> dict[str, Expect]:
    out = {}
    for ing in INGREDIENTS:
        if not scenario.present(ing):
            out[ing] = Expect.ABSENT
        elif ing != intent.target:
            out[ing] = Expect.ANY if intent.verb == "avoid" else Expect.STAY
        elif intent.verb == "place" and scenario.placement(ing) == Placement.HOLDER:
            out[ing] = Expect.PLACE
        else:  # avoid X, or place X with X already on the plate
            out[ing] = Expect.STAY
    return out


def _meets(expect: Expect, got: Outcome) -> bool:
    if expect == Expect.PLACE:
        return got == Outcome.ON_PLATE
    if expect == Expect.STAY:
        return got in LEFT_ALONE
    if expect == Expect.ABSENT:
        return got == Outcome.ABSENT
    return True


def judge(expected_map: Mapping[str, Expect], outcome: EpisodeOutcome) -> bool:
    """True when every ingredient's outcome meets its expectation."""
    # Outcome(...) also accepts plain strings, e.g. outcomes read back from a CSV.
    return all(_meets(Expect(e), Outcome(outcome.per_ingredient.get(ing, Outcome.ABSENT)))
               for ing, e in expected_map.items())


_PHRASE = {Expect.PLACE: "{}→plate", Expect.STAY: "{} stays", Expect.ANY: "{} free", Expect.ABSENT: "no {}"}


def describe(expected_map: Mapping[str, Expect]) -> str:
    """Short text such as ``cheese→plate; bread stays``."""
    return "; ".join(_PHRASE[Expect(e)].format(ing) for ing, e in expected_map.items())
