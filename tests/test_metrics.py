"""Metrics on hand-made episode tables whose expected values are worked out in the comments."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from eval.heuristic import SEED_HEURISTIC, agrees
from eval.metrics import (MetricValue, heuristic_agreement, language_influence_index, modal_behaviour,
                          negation_compliance, outcome_table, success_rate, summarize)
from eval.oracle import expected, judge
from eval.plots import plot_metric_bars, plot_outcome_heatmap
from leisaac_tasks.intent import Intent
from leisaac_tasks.outcomes import EpisodeOutcome, Outcome
from leisaac_tasks.scenarios import Scenario, scenario_set

U, M, L, O, A = "untouched", "moved", "lifted", "on_plate", "absent"
I1, I2, I3 = "pick up the yellow cheese and put it into the white plate", "pick up the bread and put it into the white plate", "do not pick up the cheese"
INTENT = {I1: "place cheese", I2: "place bread", I3: "avoid cheese"}


def episode(scenario: str, instruction: str, seed: int, cheese: str, bread: str, policy: str = "p",
            intent: str | None = None) -> dict:
    """One row as the runner writes it; success and heuristic agreement come from the oracle and heuristic."""
    sc = Scenario.parse(scenario)
    intent = intent or INTENT[instruction]
    eo = EpisodeOutcome({"cheese": Outcome(cheese), "bread": Outcome(bread)})
    return dict(policy=policy, scenario=sc.label, instruction=instruction, intent=intent, seed=seed,
                cheese=cheese, bread=bread, behaviour=eo.behaviour, outcome_label=eo.label,
                success=int(judge(expected(sc, Intent.parse(intent)), eo)),
                heuristic_agreement=int(agrees(sc, eo.behaviour)))


def table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def blind_table(policy: str = "blind") -> pd.DataFrame:
    """The seed heuristic: outcome depends on scenario and seed only, never on the instruction."""
    rows = []
    for ins in (I1, I2, I3):
        for seed in range(6):
            # (H,H): a seed-driven coin picks cheese or bread.
            rows.append(episode("(H,H)", ins, seed, *((O, U) if seed % 2 else (U, O)), policy=policy))
            rows.append(episode("(H,–)", ins, seed, O, A, policy=policy))
            rows.append(episode("(P,H)", ins, seed, U, U, policy=policy))
    return table(rows)


def assert_contains(m: MetricValue, value: float) -> None:
    assert m.ci_low <= value <= m.ci_high, m


def test_lii_is_exactly_zero_for_a_language_blind_policy():
    m = language_influence_index(blind_table())
    assert m.value == 0.0
    # Seeds are shared across instructions, so the paired bootstrap is degenerate at 0 too.
    assert (m.ci_low, m.ci_high, m.n) == (0.0, 0.0, 54)


def following_table() -> pd.DataFrame:
    rows = []
    # (H,H): I1 -> cheese on plate (outcome A) for both seeds; I2 and I3 -> bread on plate (outcome B).
    # Pairwise TV: (I1,I2) = 1, (I1,I3) = 1, (I2,I3) = 0  => scenario mean 2/3.
    for seed in range(2):
        rows += [episode("(H,H)", I1, seed, O, U), episode("(H,H)", I2, seed, U, O), episode("(H,H)", I3, seed, U, O)]
    # (P,H): I1 gives A,A,B,B over seeds 0-3 (p = 1/2, 1/2); I2 gives A,A,A,A (p = 1, 0).
    # TV = 0.5 * (|1/2 - 1| + |1/2 - 0|) = 1/2.
    for seed, bread in enumerate([U, U, O, O]):
        rows += [episode("(P,H)", I1, seed, U, bread), episode("(P,H)", I2, seed, U, U)]
    # (H,–): a single instruction has no pair, so the scenario is skipped.
    rows.append(episode("(H,–)", I1, 0, O, A))
    return table(rows)


def test_lii_hand_computed_value():
    m = language_influence_index(following_table())
    # Mean over scenarios: (2/3 + 1/2) / 2 = 7/12, from 6 + 8 = 14 episodes.
    assert m.value == pytest.approx(7 / 12)
    assert m.n == 14
    assert_contains(m, 7 / 12)
    assert m.ci_low < m.ci_high  # (P,H) is stochastic, so the CI has width
    assert language_influence_index(following_table(), seed=3) == language_influence_index(following_table(), seed=3)


def test_lii_every_change_flips_is_one_and_needs_one_policy():
    df = table([episode("(H,H)", I1, 0, O, U), episode("(H,H)", I2, 0, U, O), episode("(H,H)", I3, 0, U, U)])
    assert language_influence_index(df).value == 1.0
    with pytest.raises(ValueError, match="one policy"):
        language_influence_index(pd.concat([blind_table("a"), blind_table("b")]))


def test_negation_compliance():
    df = table([
        # avoid cheese with cheese present: untouched, moved (still left alone), lifted, untouched -> 3 of 4.
        episode("(H,H)", I3, 0, U, O), episode("(H,H)", I3, 1, M, O),
        episode("(H,H)", I3, 2, L, U), episode("(P,H)", I3, 0, U, U),
        # avoid bread with bread present, but the bread ends on the plate -> 0 of 1.
        episode("(H,H)", "do not pick up the bread", 0, U, O, intent="avoid bread"),
        # Not counted: cheese absent, a non-ingredient target, and a place intent.
        episode("(–,H)", I3, 0, A, O),
        episode("(H,H)", "do not pick up the tomato", 0, O, U, intent="avoid tomato"),
        episode("(H,H)", I1, 0, L, U),
    ])
    m = negation_compliance(df)
    assert (m.value, m.n) == (pytest.approx(3 / 5), 5)
    assert_contains(m, 3 / 5)


def test_empty_selection_gives_nans():
    m = negation_compliance(table([episode("(H,H)", I1, 0, O, U)]))
    assert m.n == 0 and all(math.isnan(v) for v in (m.value, m.ci_low, m.ci_high))
    assert language_influence_index(table([episode("(H,H)", I1, 0, O, U)])).n == 0


def test_success_rate():
    # (H,H) place cheese: success when cheese on plate and bread left alone.
    outcomes = [(O, U), (O, M), (O, U), (U, O), (L, U), (O, U), (O, U), (O, O), (O, U), (O, U)]
    df = table([episode("(H,H)", I1, s, c, b) for s, (c, b) in enumerate(outcomes)])
    # Failures: seed 3 (wrong one), 4 (held, not placed), 7 (took both) -> 7/10.
    assert list(df.success) == [1, 1, 1, 0, 0, 1, 1, 0, 1, 1]
    m = success_rate(df)
    assert (m.value, m.n) == (pytest.approx(0.7), 10)
    assert_contains(m, 0.7)
    assert 0 <= m.ci_low < 0.7 < m.ci_high <= 1


def test_constant_data_gives_a_degenerate_ci():
    df = table([episode("(H,H)", I1, s, O, U) for s in range(20)])
    assert success_rate(df) == MetricValue(1.0, 1.0, 1.0, 20)
    assert heuristic_agreement(df) == MetricValue(1.0, 1.0, 1.0, 20)


def test_heuristic_table_and_agreement():
    assert set(SEED_HEURISTIC) == set(scenario_set(include_extra=True))
    df = table([
        episode("(H,H)", I1, 0, O, U),  # picked_cheese: allowed in (H,H)        -> 1
        episode("(H,H)", I1, 1, O, O),  # picked_both: never allowed             -> 0
        episode("(P,H)", I2, 0, U, U),  # none: the seed stopped here            -> 1
        episode("(–,H)", I1, 0, A, L),  # picked_bread: what the seed did        -> 1
        episode("(H,–)", I3, 0, U, A),  # none: the seed would have taken cheese -> 0
    ])
    assert list(df.heuristic_agreement) == [1, 0, 1, 1, 0]
    assert heuristic_agreement(df).value == pytest.approx(3 / 5)


def test_summarize_one_row_per_policy():
    df = pd.concat([blind_table("blind"), following_table().assign(policy="follower")], ignore_index=True)
    s = summarize(df, n_boot=200)
    assert list(s.policy) == ["blind", "follower"]
    assert list(s.episodes) == [54, 15]
    for key in ("success", "lii", "negation", "heuristic"):
        assert {key, f"{key}_lo", f"{key}_hi"} <= set(s.columns)
    assert s.set_index("policy").loc["follower", "lii"] == pytest.approx(7 / 12)
    assert s.set_index("policy").loc["blind", "lii"] == 0.0


def test_outcome_table_and_modal_behaviour():
    t = outcome_table(blind_table(), "blind")
    assert list(t.index) == ["(H,H)", "(H,–)", "(P,H)"]  # seed scenario order, not insertion order
    assert list(t["success"].columns) == [I1, I2, I3]
    # (H,H) coin flip: place cheese succeeds on the 3 odd seeds of 6; the avoid instruction on the 3 even ones.
    assert t["success"].loc["(H,H)"].tolist() == [0.5, 0.5, 0.5]
    assert t["behaviour"].loc["(H,H)", I1] == "picked_cheese/picked_bread"  # a tie is shown as such
    assert t["behaviour"].loc["(P,H)", I1] == "none"
    assert t["n"].to_numpy().sum() == 54
    assert modal_behaviour(pd.Series(["none", "picked_bread", "none"])) == "none"


def test_plots_write_pngs(tmp_path):
    df = pd.concat([blind_table("blind"), following_table().assign(policy="follower")], ignore_index=True)
    heat = plot_outcome_heatmap(df, "blind", tmp_path / "heat.png")
    bars = plot_metric_bars(summarize(df, n_boot=100), tmp_path / "sub" / "bars.png")
    for path in (heat, bars):
        assert path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
