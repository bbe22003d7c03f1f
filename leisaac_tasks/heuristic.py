"""The seed robot's position heuristic, as data.

The seed policy ignored language: its behaviour was a function of the placements alone.
Agreement with this table measures how much a policy still acts like that heuristic.
"""

from __future__ import annotations

from leisaac_tasks.scenarios import Placement, Scenario

H, P, A = Placement.HOLDER, Placement.PLATE, Placement.ABSENT
_STOP = frozenset({"none"})

# Allowed behaviours per scenario; covers all nine placement pairs.
SEED_HEURISTIC: dict[Scenario, frozenset[str]] = {
    Scenario(H, H): frozenset({"picked_cheese", "picked_bread"}),  # either, at random
    Scenario(H, A): frozenset({"picked_cheese"}),
    Scenario(A, H): frozenset({"picked_bread"}),
    Scenario(P, H): _STOP,  # anything on the plate made it stop
    Scenario(H, P): _STOP,
    Scenario(P, P): _STOP,
    Scenario(P, A): _STOP,
    Scenario(A, P): _STOP,
    Scenario(A, A): _STOP,  # searched, moved nothing
}


def agrees(scenario: Scenario, behaviour: str) -> bool:
    return behaviour in SEED_HEURISTIC[scenario]
