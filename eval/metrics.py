"""Benchmark metrics over a table of episodes, each with a 95% percentile bootstrap CI.

Expected columns: policy, scenario, instruction, intent, seed, cheese, bread, behaviour,
outcome_label, success (0/1), heuristic_agreement (0/1). ``cheese``/``bread`` hold Outcome
values as strings, ``intent`` is ``str(Intent)``, ``scenario`` a label ``Scenario.parse`` reads.
The metric functions score one policy's episodes; ``summarize`` splits by policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from leisaac_tasks.intent import Intent
from leisaac_tasks.outcomes import LEFT_ALONE, Outcome
from leisaac_tasks.scenarios import Scenario, scenario_set

N_BOOT = 1000
BEHAVIOURS = ("picked_cheese", "picked_bread", "picked_both", "disturbed", "none")


@dataclass(frozen=True)
class MetricValue:
    value: float
    ci_low: float
    ci_high: float
    n: int  # episodes the metric was computed over


_EMPTY = MetricValue(float("nan"), float("nan"), float("nan"), 0)


def _with_ci(point: float, replicates: np.ndarray, n: int) -> MetricValue:
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return MetricValue(float(point), float(lo), float(hi), n)


def _bootstrap_mean(values: Sequence[float], n_boot: int, seed: int) -> MetricValue:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return _EMPTY
    rng = np.random.default_rng(seed)
    # Chunked so a large table never materialises n_boot × n indices at once.
    step = max(1, 10_000_000 // x.size)
    reps = np.concatenate([x[rng.integers(0, x.size, (min(step, n_boot - s), x.size))].mean(axis=1)
                           for s in range(0, n_boot, step)])
    return _with_ci(x.mean(), reps, x.size)


def success_rate(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """Fraction of episodes the oracle judged a success."""
    return _bootstrap_mean(df["success"], n_boot, seed)


def heuristic_agreement(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """Fraction of episodes whose behaviour the seed's language-blind heuristic allows."""
    return _bootstrap_mean(df["heuristic_agreement"], n_boot, seed)


@lru_cache(maxsize=None)
def _avoided_present(intent: str, scenario: str) -> str | None:
    """The ingredient an ``avoid X`` intent protects, if X is in the scene."""
    parsed = Intent.parse(intent)
    ok = parsed.verb == "avoid" and Scenario.parse(scenario).present(parsed.target)
    return parsed.target if ok else None


def negation_compliance(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """Among ``avoid X`` episodes with X in the scene, the fraction where X was left alone."""
    targets = [_avoided_present(i, s) for i, s in zip(df["intent"], df["scenario"])]
    complied = [Outcome(df[t].iat[k]) in LEFT_ALONE for k, t in enumerate(targets) if t is not None]
    return _bootstrap_mean(complied, n_boot, seed)


def _distributions(samples: np.ndarray, n_labels: int) -> np.ndarray:
    """Rows of label codes (B, m) -> rows of label frequencies (B, n_labels), via one bincount."""
    b, m = samples.shape
    flat = (samples + n_labels * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n_labels).reshape(b, n_labels) / m


def _mean_pairwise_tv(probs: np.ndarray) -> np.ndarray:
    """(B, K instructions, L labels) -> (B,) mean total-variation distance over instruction pairs."""
    tv = 0.5 * np.abs(probs[:, :, None, :] - probs[:, None, :, :]).sum(axis=-1)
    upper = np.triu_indices(probs.shape[1], k=1)
    return tv[:, upper[0], upper[1]].mean(axis=1)


def _one_policy(df: pd.DataFrame) -> None:
    if "policy" in df and df["policy"].nunique() > 1:
        raise ValueError("language_influence_index compares instructions within one policy; "
                         "pass one policy's episodes, e.g. df[df.policy == name], or use summarize(df)")


def language_influence_index(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> MetricValue:
    """How much changing the instruction changes the outcome, in [0, 1].

    Per scenario, each instruction gives a distribution of ``outcome_label`` over seeds; the index
    is the total-variation distance between two instructions' distributions, averaged over all
    instruction pairs, then over scenarios (those with fewer than 2 instructions are skipped).
    0: language is ignored; 1: every instruction change flips the outcome.

    A language-blind policy whose randomness depends only on the seed, run on the same seeds for
    every instruction, gets exactly 0: every instruction then has the same distribution.

    Bootstrap: episodes are resampled within each (scenario, instruction) cell. When a scenario's
    cells share the same seeds, one draw of seeds is used for all of them, keeping the pairing;
    independent draws would make a blind policy look language-sensitive through noise alone.
    """
    _one_policy(df)
    if df.empty:
        return _EMPTY
    codes, uniques = pd.factorize(df["outcome_label"])
    n_labels = len(uniques)
    frame = pd.DataFrame({"scenario": df["scenario"].to_numpy(), "instruction": df["instruction"].to_numpy(),
                          "seed": df["seed"].to_numpy(), "code": codes})
    rng = np.random.default_rng(seed)
    points, reps, n = [], [], 0
    for _, sdf in frame.groupby("scenario", sort=False):
        cells = [g.sort_values("seed", kind="stable") for _, g in sdf.groupby("instruction", sort=False)]
        if len(cells) < 2:
            continue
        codes_per_cell = [c["code"].to_numpy() for c in cells]
        n += len(sdf)
        points.append(_mean_pairwise_tv(np.stack([_distributions(c[None], n_labels) for c in codes_per_cell],
                                                 axis=1))[0])
        seeds = cells[0]["seed"].to_numpy()
        paired = all(np.array_equal(c["seed"].to_numpy(), seeds) for c in cells)
        shared = rng.integers(0, len(seeds), (n_boot, len(seeds))) if paired else None
        draws = [c[shared] if paired else c[rng.integers(0, len(c), (n_boot, len(c)))] for c in codes_per_cell]
        reps.append(_mean_pairwise_tv(np.stack([_distributions(d, n_labels) for d in draws], axis=1)))
    if not points:
        return _EMPTY
    return _with_ci(np.mean(points), np.mean(reps, axis=0), n)


# Metric key -> (function, human label). Keys name the summary columns.
METRICS: dict[str, tuple[Callable[..., MetricValue], str]] = {
    "success": (success_rate, "success rate"),
    "lii": (language_influence_index, "language influence index"),
    "negation": (negation_compliance, "negation compliance"),
    "heuristic": (heuristic_agreement, "seed-heuristic agreement"),
}


def summarize(df: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """One row per policy: ``episodes`` and, per metric key, ``<key>``, ``<key>_lo``, ``<key>_hi``."""
    rows = []
    for policy, pdf in df.groupby("policy", sort=False):
        row: dict[str, object] = {"policy": policy, "episodes": len(pdf)}
        for key, (fn, _) in METRICS.items():
            m = fn(pdf, n_boot=n_boot, seed=seed)
            row.update({key: m.value, f"{key}_lo": m.ci_low, f"{key}_hi": m.ci_high})
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
