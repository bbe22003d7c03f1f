"""Metrics on hand-made episode tables whose expected values are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np

import pandas as pd
import pytest

from eval.metrics import (METRICS, MetricValue, heuristic_agreement, language_influence_index,
                          language_sensitivity, modal_behaviour, negation_compliance, oracle_influence_index,
                          outcome_table, pair_relation, success_act, success_rate, success_refrain, summarize,
                          wording_sensitivity)
from eval.plots import plot_metric_bars, plot_outcome_heatmap
from leisaac_tasks.heuristic import SEED_HEURISTIC, agrees
from leisaac_tasks.intent import Intent
from leisaac_tasks.oracle import expected, judge
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
    for key in ("success", "success_act", "success_refrain", "language_sensitivity", "wording_sensitivity", "lii",
                "negation", "heuristic"):
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


# --- honest metrics: errors, inaction, meaning vs wording ---------------------------------------------------------
P1 = "put the cheese slice on the plate"  # a paraphrase of I1: the same accepted outcomes
EMPTY = ""


def errored(row: dict, failure: str = "policy_error") -> dict:
    """As the runner writes an error row: the behaviour names the failure and nothing scores."""
    return {**row, "behaviour": failure, "success": 0, "heuristic_agreement": 0}


def test_pair_relation_reads_the_oracle():
    assert pair_relation("(H,H)", "place cheese", "place bread") == "disjoint"
    assert pair_relation("(H,H)", "place cheese", "avoid cheese") == "disjoint"
    assert pair_relation("(H,H)", "place bread", "avoid cheese") == "overlap"  # bread on the plate satisfies both
    assert pair_relation("(H,H)", "none", "place cheese") == "disjoint"
    assert pair_relation("(P,H)", "place cheese", "none") == "same"  # cheese already placed: nothing to do
    assert pair_relation("(H,–)", "place bread", "none") == "same"  # bread absent: nothing to do
    assert pair_relation("(H,H)", "place cheese", "place cheese") == "same"


def test_an_all_error_table_scores_nothing():
    rows = [errored(episode("(H,H)", I3, s, U, U)) for s in range(3)]
    rows += [errored(episode("(H,–)", I1, s, U, A), "robot_error") for s in range(2)]
    s = summarize(table(rows), n_boot=50)
    assert int(s.loc[0, "errors"]) == 5 and int(s.loc[0, "episodes"]) == 5
    # Errors are failures: 0 where a score is good, never 1.00 ("untouched" error rows comply with nothing).
    for key in ("success", "success_act", "success_refrain", "negation"):
        assert s.loc[0, key] == 0.0, key
    assert math.isnan(s.loc[0, "heuristic"])  # descriptive: no behaviour to describe
    # Instruction pairs of error rows: as far apart as is worst for the policy.
    pairs = table([errored(episode("(H,H)", ins, s, U, U, intent=INTENT.get(ins, "place cheese")))
                   for ins in (I1, I2, P1) for s in range(3)])
    assert language_sensitivity(pairs).value == 0.0  # I1 vs I2: the errors could have been the same outcome
    assert wording_sensitivity(pairs).value == 1.0  # I1 vs P1: ... or different ones


def test_errors_count_as_failures():
    good = [episode("(H,H)", I1, s, O, U) for s in range(4)]
    bad = [errored(episode("(H,H)", I1, s, U, U)) for s in range(4, 8)]
    m = success_rate(table(good + bad))
    assert (m.value, m.n) == (0.5, 8)
    assert success_act(table(good + bad)).value == 0.5
    # An error row in an avoid cell would otherwise count as compliant (its slices are "untouched").
    neg = [episode("(H,H)", I3, 0, U, U), errored(episode("(H,H)", I3, 1, U, U))]
    assert negation_compliance(table(neg)).value == 0.5


def test_turning_failures_into_errors_never_pays():
    """The blind heuristic, but raising whenever its pick would go against the instruction: before, error rows
    were dropped and it scored 1.00 on success and language sensitivity. No score may beat the honest blind's."""
    honest = blind_table()
    hiding = table([errored(r) if not r["success"] else r for r in honest.to_dict("records")])
    assert error_rows_of(hiding) > 0
    fair, gamed = summarize(honest, n_boot=200), summarize(hiding, n_boot=200)
    for key in ("success", "success_act", "success_refrain", "language_sensitivity", "lii", "negation",
                "sensitivity_object", "sensitivity_negation"):
        assert not gamed.loc[0, key] > fair.loc[0, key], key
    assert not gamed.loc[0, "wording_sensitivity"] < fair.loc[0, "wording_sensitivity"]


def error_rows_of(df: pd.DataFrame) -> int:
    return int(df["behaviour"].isin(["policy_error", "robot_error"]).sum())


def idle_table(policy: str = "idle") -> pd.DataFrame:
    """Nothing ever moves."""
    rows = []
    for sc in ("(H,H)", "(H,–)", "(–,H)", "(P,H)"):
        cheese = A if sc == "(–,H)" else U  # a slice that starts on the plate and stays there is "untouched"
        bread = A if sc == "(H,–)" else U
        for ins in (I1, I2, I3, P1, EMPTY):
            intent = {P1: "place cheese", EMPTY: "none"}.get(ins)
            rows += [episode(sc, ins, seed, cheese, bread, policy=policy, intent=intent) for seed in range(3)]
    return table(rows)


def expert_table(policy: str = "expert") -> pd.DataFrame:
    """Does exactly what the oracle asks, and nothing more."""
    rows = []
    for sc in ("(H,H)", "(H,–)", "(–,H)", "(P,H)"):
        start = {"cheese": A if sc == "(–,H)" else U, "bread": A if sc == "(H,–)" else U}
        for ins in (I1, I2, I3, P1, EMPTY):
            intent = Intent.parse({P1: "place cheese", EMPTY: "none"}.get(ins) or INTENT[ins])
            want = expected(Scenario.parse(sc), intent)
            end = {ing: O if want[ing].value == "place" else start[ing] for ing in start}
            rows += [episode(sc, ins, seed, end["cheese"], end["bread"], policy=policy, intent=str(intent))
                     for seed in range(3)]
    return table(rows)


def test_idle_scores_zero_where_it_must_act_and_zero_sensitivity():
    df = idle_table()
    # Cells that ask to place: (H,H) I1, I2, P1; (H,–) I1, P1; (–,H) I2; (P,H) I2 -> 7 cells x 3 seeds, all failed.
    act = success_act(df)
    assert (act.value, act.n) == (0.0, 21)
    refrain = success_refrain(df)
    assert (refrain.value, refrain.n) == (1.0, 60 - 21)
    assert success_rate(df).value == pytest.approx(39 / 60)  # the "floor" an old success rate could hide behind
    assert language_sensitivity(df).value == 0.0
    assert wording_sensitivity(df).value == 0.0
    assert language_influence_index(df).value == 0.0


def test_expert_is_fully_sensitive_to_meaning_and_deaf_to_wording():
    df = expert_table()
    assert success_act(df).value == 1.0 and success_refrain(df).value == 1.0
    assert language_sensitivity(df).value == 1.0
    assert wording_sensitivity(df).value == 0.0
    # Its influence index equals the oracle's own, the ceiling that index is read against.
    assert language_influence_index(df).value == pytest.approx(oracle_influence_index(df))


def test_oracle_influence_index_hand_computed():
    # (H,H) with I1, I2, I3: canonical outcomes cheese->plate, bread->plate, nothing -> all 3 pairs differ = 1.
    # (P,H) with I1, I2: nothing (cheese already there) vs bread->plate -> 1.
    # (H,–) with I1, P1: the same outcome -> 0. Mean over scenarios: 2/3.
    rows = [episode("(H,H)", i, 0, U, U) for i in (I1, I2, I3)] + [episode("(P,H)", i, 0, U, U) for i in (I1, I2)]
    rows += [episode("(H,–)", I1, 0, U, A), episode("(H,–)", P1, 0, U, A, intent="place cheese")]
    assert oracle_influence_index(table(rows)) == pytest.approx(2 / 3)


def test_blind_policy_has_zero_language_sensitivity():
    assert language_sensitivity(blind_table()).value == 0.0


def test_sensitivity_hand_computed_with_a_wording_follower():
    # (H,H): I1 -> cheese placed; the paraphrase P1 -> bread placed (it keys on words, not meaning); I2 -> bread.
    # disjoint pairs: (I1,I2) TV 1, (P1,I2) TV 0 -> language 1/2; same pair (I1,P1) TV 1 -> wording 1.
    rows = []
    for seed in range(2):
        rows += [episode("(H,H)", I1, seed, O, U), episode("(H,H)", I2, seed, U, O),
                 episode("(H,H)", P1, seed, U, O, intent="place cheese")]
    df = table(rows)
    assert language_sensitivity(df).value == pytest.approx(0.5)
    assert wording_sensitivity(df).value == pytest.approx(1.0)


def test_ci_needs_two_seeds():
    one_seed = table([episode("(H,H)", I1, 0, O, U), episode("(H,H)", I2, 0, O, U), episode("(P,H)", I1, 0, U, U)])
    for fn in (success_rate, success_act, language_sensitivity, language_influence_index):
        m = fn(one_seed)
        assert not math.isnan(m.value) and math.isnan(m.ci_low) and math.isnan(m.ci_high), fn.__name__
    s = summarize(one_seed, n_boot=20)
    from eval.report import markdown_summary
    text = markdown_summary(s)
    assert "CI n/a" in text and "needs at least 2 seeds" in text


def test_ci_depends_on_content_not_row_order():
    df = pd.concat([following_table(), blind_table().assign(policy="p")], ignore_index=True)
    shuffled = df.sample(frac=1.0, random_state=7).reset_index(drop=True)
    for fn in (success_rate, success_act, success_refrain, language_influence_index, language_sensitivity,
               negation_compliance, heuristic_agreement):
        assert fn(df) == fn(shuffled), fn.__name__


def _reference_percentile_bootstrap(x: list[float], n_boot: int, seed: int) -> tuple[float, float]:
    """Written from the textbook definition, one replicate at a time; the draws are the same generator calls."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(x), (n_boot, len(x)))
    means = sorted(sum(x[k] for k in row) / len(x) for row in draws)

    def quantile(q: float) -> float:  # linear interpolation between closest ranks (numpy's default)
        pos = q * (len(means) - 1)
        lo = int(pos)
        return means[lo] + (pos - lo) * (means[min(lo + 1, len(means) - 1)] - means[lo])

    return quantile(0.025), quantile(0.975)


def test_bootstrap_ci_matches_an_independent_reference():
    outcomes = [(O, U), (O, M), (O, U), (U, O), (L, U), (O, U), (O, U), (O, O), (O, U), (O, U), (U, U), (O, U)]
    df = table([episode("(H,H)", I1, s, c, b) for s, (c, b) in enumerate(outcomes)])
    m = success_rate(df, n_boot=400, seed=11)
    lo, hi = _reference_percentile_bootstrap([float(v) for v in df.sort_values("seed").success], 400, 11)
    assert (m.ci_low, m.ci_high) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert m.ci_low < m.value < m.ci_high and (m.ci_low, m.ci_high) != (0.0, 1.0)
