"""The expected-outcome oracle, checked against the full table written out by hand."""

from __future__ import annotations

import pytest

from leisaac_tasks.intent import Intent
from leisaac_tasks.oracle import Expect, describe, expected, judge
from leisaac_tasks.outcomes import EpisodeOutcome, Outcome
from leisaac_tasks.scenarios import SEED_SCENARIOS, Scenario

PL, ST, AN, AB = Expect.PLACE, Expect.STAY, Expect.ANY, Expect.ABSENT
INTENTS = ["place cheese", "place bread", "avoid cheese", "none", "place tomato"]

# (cheese, bread) expectations; columns follow INTENTS.
TABLE = {
    #          place cheese  place bread  avoid cheese  none (empty)  place tomato
    "(H,H)": [(PL, ST),     (ST, PL),    (ST, AN),     (ST, ST),     (ST, ST)],
    "(H,–)": [(PL, AB),     (ST, AB),    (ST, AB),     (ST, AB),     (ST, AB)],
    "(–,H)": [(AB, ST),     (AB, PL),    (AB, AN),     (AB, ST),     (AB, ST)],
    "(P,H)": [(ST, ST),     (ST, PL),    (ST, AN),     (ST, ST),     (ST, ST)],
    "(H,P)": [(PL, ST),     (ST, ST),    (ST, AN),     (ST, ST),     (ST, ST)],
    "(P,P)": [(ST, ST),     (ST, ST),    (ST, AN),     (ST, ST),     (ST, ST)],
    "(–,–)": [(AB, AB),     (AB, AB),    (AB, AB),     (AB, AB),     (AB, AB)],
    "(P,–)": [(ST, AB),     (ST, AB),    (ST, AB),     (ST, AB),     (ST, AB)],
}


def test_table_covers_the_seed_scenarios():
    assert [Scenario.parse(s) for s in TABLE] == list(SEED_SCENARIOS)


@pytest.mark.parametrize("scenario", TABLE)
@pytest.mark.parametrize("column", range(len(INTENTS)), ids=INTENTS)
def test_oracle_table(scenario, column):
    cheese, bread = TABLE[scenario][column]
    assert expected(Scenario.parse(scenario), Intent.parse(INTENTS[column])) == {"cheese": cheese, "bread": bread}


def outcome(cheese: Outcome, bread: Outcome) -> EpisodeOutcome:
    return EpisodeOutcome({"cheese": cheese, "bread": bread})


U, M, L, O, D, A = (Outcome.UNTOUCHED, Outcome.MOVED, Outcome.LIFTED, Outcome.ON_PLATE,
                    Outcome.DROPPED, Outcome.ABSENT)


@pytest.mark.parametrize("scenario, intent, cheese, bread, ok", [
    ("(H,H)", "place cheese", O, U, True),
    ("(H,H)", "place cheese", O, M, True),  # nudging the other one is tolerated
    ("(H,H)", "place cheese", L, U, False),  # held, never placed
    ("(H,H)", "place cheese", D, U, False),
    ("(H,H)", "place cheese", O, O, False),  # took both
    ("(H,H)", "place cheese", U, O, False),  # took the wrong one
    ("(H,H)", "avoid cheese", U, O, True),  # the bread is unconstrained
    ("(H,H)", "avoid cheese", U, D, True),
    ("(H,H)", "avoid cheese", L, U, False),
    ("(P,H)", "place cheese", U, U, True),  # already done: nothing should move
    ("(P,H)", "place cheese", O, U, False),  # lifted and put back is still a pick
    ("(–,H)", "place cheese", A, U, True),
    ("(–,H)", "place cheese", A, O, False),  # substituting the bread is wrong
    ("(H,–)", "none", U, A, True),
    ("(H,–)", "none", O, A, False),
    ("(H,H)", "place tomato", M, U, True),
])
def test_judge(scenario, intent, cheese, bread, ok):
    assert judge(expected(Scenario.parse(scenario), Intent.parse(intent)), outcome(cheese, bread)) is ok


def test_judge_accepts_string_outcomes_and_missing_ingredients():
    exp = expected(Scenario.parse("(H,–)"), Intent.parse("place cheese"))
    assert judge(exp, EpisodeOutcome({"cheese": "on_plate", "bread": "absent"}))
    assert judge(exp, EpisodeOutcome({"cheese": "on_plate"}))  # missing reads as absent
    assert not judge(exp, EpisodeOutcome({"cheese": "untouched"}))


def test_describe():
    assert describe(expected(Scenario.parse("(H,H)"), Intent.parse("place cheese"))) == "cheese→plate; bread stays"
    assert describe(expected(Scenario.parse("(H,–)"), Intent.parse("avoid cheese"))) == "cheese stays; no bread"
    assert describe(expected(Scenario.parse("(P,H)"), Intent.parse("avoid cheese"))) == "cheese stays; bread free"
