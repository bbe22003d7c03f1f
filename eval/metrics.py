"""Benchmark metrics over a table of episodes, each with a 95% percentile bootstrap CI.

Expected columns: policy, scenario, instruction, intent, seed, cheese, bread, behaviour,
outcome_label, success (0/1), heuristic_agreement (0/1). ``cheese``/``bread`` hold Outcome
values as strings, ``intent`` is ``str(Intent)``, ``scenario`` a label ``Scenario.parse`` reads.
The metric functions score one policy's episodes; ``summarize`` splits by policy.

Honesty rules, which every metric follows:
- Errors count against the policy. A ``policy_error``/``robot_error`` row (``errors``) has no outcome: the success
  metrics score it as a failure, negation compliance as not complied, and the instruction-pair distances as the
  outcome least favourable to the policy (``_pair_distance``). So turning failures into errors never pays, and an
  all-error table scores 0 where a score is good and the worst value where it is bad. Only the descriptive
  ``heuristic_agreement`` leaves error rows out (n/a when nothing else is left).
- Doing nothing must not look good: ``success_act`` scores only episodes where the oracle expects a slice to be
  placed (an idle policy gets 0 there), and ``language_sensitivity`` only instruction pairs whose accepted outcomes
  cannot coincide (an idle or language-blind policy gets 0 there).
- Matching words must not look like meaning: ``language_sensitivity`` is the *weakest* kind of contrast (object,
  negation, task vs no task; ``pair_kind``), each also reported, so a policy that follows object words but ignores
  "not" scores 0 on it.
- A CI is a statement about seeds: with fewer than 2 seeds it is n/a, not a zero-width interval. The bootstrap
  sees the rows in a canonical order, so the CI depends on the table's content, not on the order rows were written.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from leisaac_tasks.instructions import SEED_FAMILY
from leisaac_tasks.intent import Intent
from leisaac_tasks.oracle import Expect, expected
from leisaac_tasks.outcomes import LEFT_ALONE, Outcome
from leisaac_tasks.perturbations import REWORDING_FAMILIES
from leisaac_tasks.scenarios import INGREDIENTS, Scenario, scenario_set

N_BOOT = 1000
BEHAVIOURS = ("picked_cheese", "picked_bread", "picked_both", "disturbed", "none")
ERROR_BEHAVIOURS = ("policy_error", "robot_error")  # the episode never ran to an outcome
MIN_SEEDS_FOR_CI = 2
# The canonical row order the bootstrap sees: the episode key, then its outcome to break ties between repeats.
_ORDER = ("policy", "scenario", "instruction", "seed", "outcome_label", "behaviour", "success")


@dataclass(frozen=True)
class MetricValue:
    value: float
    ci_low: float
    ci_high: float
    n: int  # episodes the metric was computed over
    # The bootstrap replicates behind the CI (None without one): a study resamples training seeds over them.
    replicates: np.ndarray | None = field(default=None, compare=False, repr=False)


_EMPTY = MetricValue(float("nan"), float("nan"), float("nan"), 0)


def error_rows(df: pd.DataFrame) -> pd.Series:
    """True for episodes that ended in a policy or robot error: they have no outcome to score. A table without a
    ``behaviour`` column (older CSVs, hand-made tables) records no errors."""
    if "behaviour" not in df:
        return pd.Series(False, index=df.index)
    return df["behaviour"].isin(ERROR_BEHAVIOURS)


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in _ORDER if c in df]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys and len(df) else df


def scored(df: pd.DataFrame) -> pd.DataFrame:
    """The episodes that ran to an outcome, error rows left out, in the canonical order (so CIs ignore row
    order). Only descriptive metrics use it: a score must count errors (``attempted``)."""
    return _canonical(df[~error_rows(df)])


def attempted(df: pd.DataFrame) -> pd.DataFrame:
    """Every episode, in the canonical order, an error row's success set to 0: it did not do what was asked."""
    errors = error_rows(df)
    if errors.any():
        df = df.assign(success=np.where(errors, 0, df["success"]))
    return _canonical(df)


def _ci_allowed(df: pd.DataFrame) -> bool:
    return "seed" not in df or df["seed"].nunique() >= MIN_SEEDS_FOR_CI


def _with_ci(point: float, replicates: np.ndarray | None, n: int) -> MetricValue:
    if replicates is None:
        return MetricValue(float(point), float("nan"), float("nan"), n)
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return MetricValue(float(point), float(lo), float(hi), n, replicates)


def bootstrap_replicates(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``x``, drawn as rng.integers(0, n, (n_boot, n))."""
    rng = np.random.default_rng(seed)
    # Chunked so a large table never materialises n_boot × n indices at once.
    step = max(1, 10_000_000 // x.size)
    return np.concatenate([x[rng.integers(0, x.size, (min(step, n_boot - s), x.size))].mean(axis=1)
                           for s in range(0, n_boot, step)])


def _bootstrap_mean(values: Sequence[float], n_boot: int, seed: int, with_ci: bool = True) -> MetricValue:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return _EMPTY
    return _with_ci(x.mean(), bootstrap_replicates(x, n_boot, seed) if with_ci else None, x.size)


def _mean_of(df: pd.DataFrame, column: str, n_boot: int, seed: int) -> MetricValue:
    """``column``'s mean over ``df`` as given (the caller chose ``attempted`` or ``scored`` rows)."""
    return _bootstrap_mean(df[column], n_boot, seed, _ci_allowed(df))


def error_count(df: pd.DataFrame) -> int:
    return int(error_rows(df).sum())


def success_rate(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """Fraction of episodes the oracle judged a success; an error is a failure."""
    return _mean_of(attempted(df), "success", n_boot, seed)


@lru_cache(maxsize=None)
def _expectation(scenario: str, intent: str) -> tuple[Expect, ...]:
    exp = expected(Scenario.parse(scenario), Intent.parse(intent))
    return tuple(exp[ing] for ing in INGREDIENTS)


def asks_to_act(scenario: str, intent: str) -> bool:
    return Expect.PLACE in _expectation(scenario, intent)


def _by_task_kind(df: pd.DataFrame, act: bool) -> pd.DataFrame:
    if df.empty:
        return df
    mask = [asks_to_act(s, i) == act for s, i in zip(df["scenario"], df["intent"])]
    return df[np.asarray(mask, dtype=bool)]


def success_act(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """Success where the oracle expects a slice to be placed. A policy that does nothing gets 0."""
    return _mean_of(_by_task_kind(attempted(df), act=True), "success", n_boot, seed)


def success_refrain(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """Success where the oracle expects nothing to be placed (nothing moves, or the avoided slice stays)."""
    return _mean_of(_by_task_kind(attempted(df), act=False), "success", n_boot, seed)


def heuristic_agreement(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """Fraction of episodes whose behaviour the seed's language-blind heuristic allows (descriptive: episodes that
    ended in an error have no behaviour and are left out)."""
    return _mean_of(scored(df), "heuristic_agreement", n_boot, seed)


@lru_cache(maxsize=None)
def _avoided_present(intent: str, scenario: str) -> str | None:
    """The ingredient an ``avoid X`` intent protects, if X is in the scene."""
    parsed = Intent.parse(intent)
    ok = parsed.verb == "avoid" and Scenario.parse(scenario).present(parsed.target)
    return parsed.target if ok else None


def negation_compliance(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """Among ``avoid X`` episodes with X in the scene, the fraction where X was left alone (an error: not)."""
    df = attempted(df)
    failed = error_rows(df).to_numpy()
    targets = [_avoided_present(i, s) for i, s in zip(df["intent"], df["scenario"])]
    complied = [not failed[k] and Outcome(df[t].iat[k]) in LEFT_ALONE for k, t in enumerate(targets)
                if t is not None]
    return _bootstrap_mean(complied, n_boot, seed, _ci_allowed(df))


# --- how much the instruction changes the outcome -------------------------------------------------------------
_ACCEPTED = {Expect.PLACE: frozenset({Outcome.ON_PLATE}), Expect.STAY: LEFT_ALONE,
             Expect.ABSENT: frozenset({Outcome.ABSENT}),
             Expect.ANY: frozenset(Outcome) - {Outcome.ABSENT}}


def accepted_outcomes(scenario: str, intent: str) -> tuple[frozenset[Outcome], ...]:
    """Per ingredient, the outcomes the oracle accepts: the episode succeeds iff every one is met."""
    return tuple(_ACCEPTED[e] for e in _expectation(scenario, intent))


def pair_relation(scenario: str, intent_a: str, intent_b: str) -> str:
    """``disjoint`` (no outcome satisfies both), ``same`` (the same outcomes satisfy both) or ``overlap``."""
    a, b = accepted_outcomes(scenario, intent_a), accepted_outcomes(scenario, intent_b)
    if a == b:
        return "same"
    if any(not (x & y) for x, y in zip(a, b)):
        return "disjoint"
    return "overlap"


PAIR_KINDS = ("object", "negation", "no_task")  # the kinds of meaning change, in the order summaries show them


def pair_kind(intent_a: str, intent_b: str) -> str:
    """What a pair of instructions contrasts: ``object`` (place X / place Y), ``negation`` (place X / avoid X),
    ``no_task`` (place X / an instruction that asks nothing), else ``other``. A policy that matches object words
    and ignores "not" follows the first kind and fails the second."""
    a, b = sorted((Intent.parse(intent_a), Intent.parse(intent_b)), key=str)
    if a.verb == b.verb == "place" and a.target != b.target:
        return "object"
    if {a.verb, b.verb} == {"place", "avoid"} and a.target == b.target:
        return "negation"
    if {a.verb, b.verb} == {"place", "none"}:
        return "no_task"
    return "other"


def _distributions(samples: np.ndarray, n_labels: int) -> np.ndarray:
    """Rows of label codes (B, m) -> rows of label frequencies (B, n_labels), via one bincount."""
    b, m = samples.shape
    flat = (samples + n_labels * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n_labels).reshape(b, n_labels) / m


def _pair_distance(probs: np.ndarray, pairs: Sequence[tuple[int, int]], bound: str) -> np.ndarray:
    """(B, K instructions, L outcome labels + 1 error column) -> (B, P) total-variation distance per pair.

    An error row's outcome is unknown, so it is given the outcome least favourable to the policy: ``low`` for a
    distance that should be high (meaning changed: the errors fill the gap, so only the outcomes that differ beyond
    the other side's error mass count), ``high`` for one that should be low (wording changed: errors differ from
    everything). With no errors both are the plain distance."""
    i, j = np.asarray(pairs).T
    a, b = probs[:, i, :-1], probs[:, j, :-1]
    if bound == "high":
        return 1.0 - np.minimum(a, b).sum(axis=-1)
    return np.maximum(0.0, np.clip(a - b, 0.0, None).sum(axis=-1) - probs[:, j, -1])


def _one_policy(df: pd.DataFrame) -> None:
    if "policy" in df and df["policy"].nunique() > 1:
        raise ValueError("language metrics compare instructions within one policy; "
                         "pass one policy's episodes, e.g. df[df.policy == name], or use summarize(df)")


class Cell(NamedTuple):
    """One instruction of a scenario, as a pair filter sees it."""

    intent: str
    family: str


PairGroup = Callable[[str, Cell, Cell], "str | None"]  # (scenario, a, b) -> the pair's group, or None: left out


def same_wording_style(a: Cell, b: Cell) -> bool:
    """Two instructions whose meanings may be compared without a change of wording style riding along: one family,
    or the seed's wording and minimal edits of it (any family outside ``REWORDING_FAMILIES``). Across styles ("pick
    up the cheese" against "do not pick up the yellow slice") a policy that only reacts to surface words would look
    sensitive to meaning."""
    return a.family == b.family or not {a.family, b.family} & REWORDING_FAMILIES


def _instruction_tv(df: pd.DataFrame, group_of: PairGroup, n_boot: int, seed: int,
                    bound: str = "low") -> dict[str, MetricValue]:
    """Per group of instruction pairs (``group_of``; None leaves a pair out): per scenario, the mean total-variation
    distance between the pairs' ``outcome_label`` distributions, then the mean over the scenarios that have such a
    pair. Error rows are one more label, scored by ``_pair_distance``'s ``bound``.

    Bootstrap: episodes are resampled within each (scenario, instruction) cell. When a scenario's cells share
    the same seeds, one draw of seeds is used for all of them, keeping the pairing; independent draws would make
    a blind policy look language-sensitive through noise alone. Every group sees the same draws.
    """
    _one_policy(df)
    df = attempted(df)
    if df.empty:
        return {}
    labels = df["outcome_label"].where(~error_rows(df), None)
    codes, uniques = pd.factorize(labels)  # errors: -1, then the last column
    n_labels = len(uniques) + 1
    codes = np.where(codes < 0, n_labels - 1, codes)
    family = df["family"].to_numpy() if "family" in df else np.full(len(df), SEED_FAMILY)
    frame = pd.DataFrame({"scenario": df["scenario"].to_numpy(), "instruction": df["instruction"].to_numpy(),
                          "intent": df["intent"].to_numpy(), "family": family, "seed": df["seed"].to_numpy(),
                          "code": codes})
    with_ci = _ci_allowed(df)
    rng = np.random.default_rng(seed)
    points: dict[str, list[float]] = {}
    reps: dict[str, list[np.ndarray]] = {}
    counts: dict[str, int] = {}
    for scenario, sdf in frame.groupby("scenario", sort=True):
        cells = [g for _, g in sdf.groupby("instruction", sort=True)]
        info = [Cell(c["intent"].iat[0], c["family"].iat[0]) for c in cells]
        groups: dict[str, list[tuple[int, int]]] = {}
        for a, b in itertools.combinations(range(len(cells)), 2):
            group = group_of(scenario, info[a], info[b])
            if group is not None:
                groups.setdefault(group, []).append((a, b))
        if not groups:
            continue
        codes_per_cell = [c["code"].to_numpy() for c in cells]
        all_pairs = [p for pairs in groups.values() for p in pairs]  # group by group: sliced apart below
        point = _pair_distance(np.stack([_distributions(c[None], n_labels) for c in codes_per_cell], axis=1),
                               all_pairs, bound)[0]
        if with_ci:
            seeds = cells[0]["seed"].to_numpy()
            paired = all(np.array_equal(c["seed"].to_numpy(), seeds) for c in cells)
            shared = rng.integers(0, len(seeds), (n_boot, len(seeds))) if paired else None
            draws = [c[shared] if paired else c[rng.integers(0, len(c), (n_boot, len(c)))] for c in codes_per_cell]
            probs = np.stack([_distributions(d, n_labels) for d in draws], axis=1)
            boot = _pair_distance(probs, all_pairs, bound)
        start = 0
        for group, pairs in groups.items():
            span = slice(start, start + len(pairs))
            start += len(pairs)
            points.setdefault(group, []).append(float(point[span].mean()))
            if with_ci:
                reps.setdefault(group, []).append(boot[:, span].mean(axis=1))
            counts[group] = counts.get(group, 0) + sum(len(codes_per_cell[k]) for k in {k for p in pairs for k in p})
    return {g: _with_ci(np.mean(points[g]), np.mean(reps[g], axis=0) if with_ci else None, counts[g])
            for g in points}


def _kind_of_meaning_change(scenario: str, a: Cell, b: Cell) -> str | None:
    if not same_wording_style(a, b) or pair_relation(scenario, a.intent, b.intent) != "disjoint":
        return None
    return pair_kind(a.intent, b.intent)


def sensitivity_by_kind(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, MetricValue]:
    """``language_sensitivity`` for each kind of meaning change (``pair_kind``) the table holds."""
    return _instruction_tv(df, _kind_of_meaning_change, n_boot, seed)


def _kind_metric(kind: str) -> Callable[..., MetricValue]:
    def metric(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
        return sensitivity_by_kind(df, n_boot, seed).get(kind, _EMPTY)

    metric.__name__ = f"sensitivity_{kind}"
    metric.__doc__ = f"``language_sensitivity`` over the {kind!r} pairs alone (``pair_kind``)."
    return metric


def language_influence_index(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """How much changing the instruction changes the outcome, in [0, 1], over *every* instruction pair.

    0: language is ignored; 1: every instruction change changes the outcome. A language-blind policy whose
    randomness depends only on the seed, run on the same seeds for every instruction, gets exactly 0. Read it
    next to ``oracle_influence_index``, the index of the oracle's own outcomes on the same cells: above it, the
    policy's outcomes change where the task's do not (it over-reacts to wording).
    """
    return _instruction_tv(df, lambda s, a, b: "all", n_boot, seed).get("all", _EMPTY)


def language_sensitivity(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """The same distance over pairs whose accepted outcomes are disjoint (a change of meaning the robot must act
    on) and whose wording style is the same (``same_wording_style``), for the *weakest* kind of such change the
    table holds: the minimum over ``pair_kind``s, its bootstrap replicates the minimum of theirs. Ideal 1; idle,
    language-blind and word-matching policies get 0. A distance, not a direction: a policy that swaps the slices
    moves it too, and success where it must act shows which way."""
    kinds = [m for k, m in sensitivity_by_kind(df, n_boot, seed).items() if k != "other"]
    if not kinds:
        return _EMPTY
    weakest = min(kinds, key=lambda m: m.value)
    reps = [m.replicates for m in kinds]
    return _with_ci(weakest.value, np.min(reps, axis=0) if all(r is not None for r in reps) else None,
                    sum(m.n for m in kinds))


def wording_sensitivity(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """The same distance over pairs whose accepted outcomes are identical (paraphrases, for instance): a
    change of wording only. Ideal 0; a policy that reacts to words rather than meaning scores above it."""
    same = lambda s, a, b: "same" if pair_relation(s, a.intent, b.intent) == "same" else None  # noqa: E731
    return _instruction_tv(df, same, n_boot, seed, bound="high").get("same", _EMPTY)


def _oracle_label(scenario: str, intent: str) -> str:
    """The outcome a minimal correct policy produces: place what it must, leave everything else alone."""
    canon = {Expect.PLACE: Outcome.ON_PLATE, Expect.ABSENT: Outcome.ABSENT}
    return "/".join(canon.get(e, Outcome.UNTOUCHED).value for e in _expectation(scenario, intent))


def oracle_influence_index(df: pd.DataFrame) -> float:
    """The language influence index of the oracle's own outcomes on the same (scenario, instruction) cells: what a
    policy that does exactly what is asked gets; above it, a policy over-reacts."""
    if df.empty:
        return float("nan")
    cells = df[["scenario", "instruction", "intent"]].drop_duplicates()
    oracle = cells.assign(outcome_label=[_oracle_label(s, i) for s, i in zip(cells["scenario"], cells["intent"])],
                          seed=0, behaviour="oracle")
    return language_influence_index(oracle, n_boot=1).value


# Metric key -> (function, human label). Keys name the summary columns.
METRICS: dict[str, tuple[Callable[..., MetricValue], str]] = {
    "success": (success_rate, "success rate"),
    "success_act": (success_act, "success, must act"),
    "success_refrain": (success_refrain, "success, must refrain"),
    "language_sensitivity": (language_sensitivity, "language sensitivity (weakest kind)"),
    **{f"sensitivity_{k}": (_kind_metric(k), f"sensitivity: {k.replace('_', ' ')}") for k in PAIR_KINDS},
    "wording_sensitivity": (wording_sensitivity, "wording sensitivity"),
    "lii": (language_influence_index, "language influence index"),
    "negation": (negation_compliance, "negation compliance"),
    "heuristic": (heuristic_agreement, "seed-heuristic agreement"),
}


def summarize(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """One row per policy: ``episodes``, ``errors``, ``seeds``, per metric key ``<key>``, ``<key>_lo``,
    ``<key>_hi``, and ``lii_oracle``. Error rows count in ``errors`` and against the policy in every score
    (``attempted``); a row with errors is incomplete, and reports say so."""
    rows = []
    for policy, pdf in df.groupby("policy", sort=False):
        row: dict[str, object] = {"policy": policy, "episodes": len(pdf), "errors": error_count(pdf),
                                  "seeds": int(pdf["seed"].nunique()) if "seed" in pdf else 0}
        for key, (fn, _) in METRICS.items():
            m = fn(pdf, n_boot=n_boot, seed=seed)
            row.update({key: m.value, f"{key}_lo": m.ci_low, f"{key}_hi": m.ci_high})
        row["lii_oracle"] = oracle_influence_index(pdf)
        rows.append(row)
    return pd.DataFrame(rows)


def modal_behaviour(behaviours: pd.Series) -> str:
    """Most frequent behaviour; ties are joined with '/' in a fixed order, e.g. a random pick."""
    counts = behaviours.value_counts()
    top = counts[counts == counts.max()].index
    rank = {b: i for i, b in enumerate(BEHAVIOURS)}
    return "/".join(sorted(top, key=lambda b: (rank.get(b, len(rank)), b)))


def _scenario_rank(label: str) -> int:
    order = scenario_set(include_extra=True)
    return order.index(Scenario.parse(label))


def outcome_table(df: pd.DataFrame, policy: str) -> pd.DataFrame:
    """Scenario × instruction table for one policy.

    Columns are a two-level index: ``success`` (mean success), ``behaviour`` (modal behaviour) and
    ``n`` (episodes), each over instructions in first-seen order. Rows follow the seed's scenario
    order, then (–,P); only scenarios present in ``df`` appear.
    """
    pdf = df[df["policy"] == policy]
    if pdf.empty:
        raise ValueError(f"no episodes for policy {policy!r}; the table has {sorted(df['policy'].unique())}")
    rows = sorted(pdf["scenario"].unique(), key=_scenario_rank)
    cols = list(dict.fromkeys(pdf["instruction"]))
    g = pdf.groupby(["scenario", "instruction"], sort=False)

    def grid(s: pd.Series) -> pd.DataFrame:
        return s.unstack().reindex(index=rows, columns=cols)

    return pd.concat({"success": grid(g["success"].mean()),
                      "behaviour": grid(g["behaviour"].agg(modal_behaviour)).fillna(""),
                      "n": grid(g.size()).fillna(0).astype(int)}, axis=1)
