"""How well did simulation predict the real arm? Compare episodes CSVs from both.

    python -m eval.sim_vs_real --sim reports/matrix/episodes.csv --real real/episodes.csv --out reports/sim_vs_real

Inputs are episodes CSVs as eval/results.py writes them (the real-arm runner writes the same columns, with its own
backend name). Episodes are matched by cell: (policy, scenario, instruction); only cells present on both sides are
compared, and rows with an ``error`` (policy or robot errors) are left out.

- Per cell: agreement of the outcome distributions, 1 - total variation distance over ``outcome_label``
  (1: sim and real end in the same joint outcomes equally often), with the episode counts behind it.
- Per policy: success rate over the shared cells, each cell weighted equally (real runs usually have fewer
  trials per cell than sim runs, so a plain episode mean would weigh cells differently on the two sides).
- Across policies (or checkpoints): Pearson r and the Mean Maximum Rank Violation (MMRV) between sim and real
  success rates, as SimplerEnv defines them; the same two over every (policy, cell) pair as a finer check.

Writes cells.csv, policies.csv, sim_vs_real.md (the tables) and scatter.png to --out.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from leisaac_tasks.scenarios import INGREDIENTS, Scenario

CELL = ("policy", "scenario", "instruction")
REQUIRED = (*CELL, "outcome_label", "success", "error")


class SimVsRealError(ValueError):
    """Inputs that cannot be compared; the message names the problem and the fix."""


# --- the two cross-policy metrics ---------------------------------------------------------------------------
def pearson_r(sim: Sequence[float], real: Sequence[float]) -> float:
    """Pearson correlation of sim and real scores: sum(ds * dr) / sqrt(sum(ds^2) * sum(dr^2)), d = x - mean(x).

    As in SimplerEnv (Li et al., "Evaluating Real-World Robot Manipulation Policies in Simulation", CoRL 2024,
    arXiv:2405.05941; simpler_env/utils/metrics.py ``pearson_correlation``). Where SimplerEnv adds 1e-8 to the
    denominator, this returns NaN when either side has no spread: r is undefined then, not 0.
    """
    s, r = np.asarray(sim, float), np.asarray(real, float)
    if s.shape != r.shape or s.size < 2:
        raise SimVsRealError(f"Pearson r needs two equal-length score lists of 2+ items, got {s.size} and {r.size}")
    ds, dr = s - s.mean(), r - r.mean()
    denominator = math.sqrt(float(np.sum(ds**2) * np.sum(dr**2)))
    return float(np.sum(ds * dr) / denominator) if denominator > 0 else float("nan")


def mmrv(sim: Sequence[float], real: Sequence[float]) -> float:
    """Mean Maximum Rank Violation, SimplerEnv's measure of how badly sim misorders policies (0 is perfect).

    For policies i, j, a rank violation is a pair the two sides order differently, costing the real-world gap
    between them: RankViolation(i, j) = |R_i - R_j| * 1[(S_i > S_j) != (R_i > R_j)]. Each policy takes its worst
    violation and MMRV is the mean over policies: MMRV = 1/N * sum_i max_j RankViolation(i, j).
    Definition from Li et al., arXiv:2405.05941 (Sec. "Evaluation metrics"), implemented as in SimplerEnv's
    simpler_env/utils/metrics.py ``mean_maximum_rank_violation`` (strict ``>``, so ties count as the code counts
    them: a sim tie with a real difference is a violation for the policy that is better in the real world).
    """
    s, r = np.asarray(sim, float), np.asarray(real, float)
    if s.shape != r.shape or s.size < 2:
        raise SimVsRealError(f"MMRV needs two equal-length score lists of 2+ items, got {s.size} and {r.size}")
    worst = [max((abs(r[i] - r[j]) for j in range(s.size) if (s[i] > s[j]) != (r[i] > r[j])), default=0.0)
             for i in range(s.size)]
    return float(np.mean(worst))


def outcome_agreement(sim_labels: Sequence[str], real_labels: Sequence[str]) -> float:
    """1 - total variation distance between the two empirical distributions of outcome labels."""
    p = pd.Series(list(sim_labels)).value_counts(normalize=True)
    q = pd.Series(list(real_labels)).value_counts(normalize=True)
    p, q = p.align(q, fill_value=0.0)
    return float(1.0 - 0.5 * np.abs(p - q).sum())


# --- loading ----------------------------------------------------------------------------------------------------
def load_side(paths: Sequence[str | Path], side: str) -> tuple[pd.DataFrame, int]:
    """All episodes of one side, errors dropped; returns the frame and how many error rows were left out."""
    frames = []
    for path in map(Path, paths):
        if not path.is_file():
            raise SimVsRealError(f"--{side} {path}: no such file; pass the episodes.csv that a run wrote")
        df = pd.read_csv(path, keep_default_na=False, dtype={"instruction": str, "error": str})
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise SimVsRealError(f"--{side} {path} lacks column(s) {', '.join(missing)}: it is not an episodes CSV "
                                 f"from eval/run_matrix.py or the real-arm runner")
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    try:
        df["scenario"] = [Scenario.parse(s).label for s in df["scenario"]]
    except ValueError as exc:
        raise SimVsRealError(f"--{side}: {exc}") from None
    errors = df["error"].astype(str).str.strip() != ""
    df = df[~errors].copy()
    df["success"] = pd.to_numeric(df["success"], errors="raise").astype(float)
    return df, int(errors.sum())


# --- comparison -------------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    cells: pd.DataFrame  # one row per shared cell
    policies: pd.DataFrame  # one row per shared policy
    pearson: float  # across policies
    mmrv: float
    cell_pearson: float  # across (policy, cell) pairs
    cell_mmrv: float
    unmatched: dict[str, int]  # cells on one side only
    dropped: dict[str, int]  # error rows left out


def _short(label: str) -> str:
    """``cheese=on_plate,bread=untouched`` -> ``on_plate/untouched`` (cheese first, as in INGREDIENTS)."""
    parts = dict(p.split("=", 1) for p in label.split(",") if "=" in p)
    return "/".join(parts.get(i, "?") for i in INGREDIENTS) if parts else label


def _counts(labels: pd.Series) -> str:
    return ", ".join(f"{_short(k)}×{v}" for k, v in labels.value_counts().items())


MIN_CORRELATION_POINTS = 4  # fewer points than this: r and MMRV are flagged as anecdotal


def _safe(metric, sim: Sequence[float], real: Sequence[float]) -> float:
    return metric(sim, real) if len(sim) >= 2 else float("nan")


def compare(sim: pd.DataFrame, real: pd.DataFrame, dropped: dict[str, int] | None = None) -> Comparison:
    sim_cells = sim.groupby(list(CELL), sort=False)
    real_cells = real.groupby(list(CELL), sort=False)
    shared = [key for key in sim_cells.groups if key in real_cells.groups]
    if not shared:
        sim_p, real_p = sorted(sim["policy"].unique()), sorted(real["policy"].unique())
        common = sorted(set(sim_p) & set(real_p))
        detail = (f"policies {', '.join(common)} are on both sides but share no (scenario, instruction)" if common
                  else f"sim has policies {', '.join(sim_p) or 'none'}; real has {', '.join(real_p) or 'none'}")
        raise SimVsRealError(f"no (policy, scenario, instruction) cell is in both the sim and the real episodes "
                             f"({detail}): run the same policies, named alike, on the same scenarios and instructions "
                             f"on both sides")
    rows = []
    for key in shared:
        s, r = sim_cells.get_group(key), real_cells.get_group(key)
        rows.append({**dict(zip(CELL, key)), "n_sim": len(s), "n_real": len(r),
                     "sim_success": s["success"].mean(), "real_success": r["success"].mean(),
                     "agreement": outcome_agreement(s["outcome_label"], r["outcome_label"]),
                     "sim_outcomes": _counts(s["outcome_label"]), "real_outcomes": _counts(r["outcome_label"])})
    cells = pd.DataFrame(rows)
    policies = (cells.groupby("policy", sort=False)
                .agg(cells=("agreement", "size"), n_sim=("n_sim", "sum"), n_real=("n_real", "sum"),
                     sim_success=("sim_success", "mean"), real_success=("real_success", "mean"),
                     agreement=("agreement", "mean"))
                .reset_index())
    unmatched = {"sim only": len(sim_cells.groups) - len(shared),
                 "real only": len(real_cells.groups) - len(shared)}
    return Comparison(cells, policies,
                      _safe(pearson_r, policies["sim_success"], policies["real_success"]),
                      _safe(mmrv, policies["sim_success"], policies["real_success"]),
                      _safe(pearson_r, cells["sim_success"], cells["real_success"]),
                      _safe(mmrv, cells["sim_success"], cells["real_success"]),
                      unmatched, dropped or {"sim": 0, "real": 0})


# --- outputs ----------------------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.3f}"


def markdown(c: Comparison) -> str:
    n = len(c.policies)
    lines = ["## Sim vs real", "",
             f"{len(c.cells)} shared cells over {n} polic{'y' if n == 1 else 'ies'} "
             f"({c.unmatched['sim only']} sim-only and {c.unmatched['real only']} real-only cells left out; "
             f"{c.dropped.get('sim', 0)} sim and {c.dropped.get('real', 0)} real episodes with errors left out). "
             f"Mean outcome agreement over cells: {c.cells['agreement'].mean():.2f}.", "",
             "| across | Pearson r | MMRV |", "|---|---|---|",
             f"| policies ({n}) | {_fmt(c.pearson)} | {_fmt(c.mmrv)} |",
             f"| (policy, cell) pairs ({len(c.cells)}) | {_fmt(c.cell_pearson)} | {_fmt(c.cell_mmrv)} |", ""]
    if n < 2:
        lines += ["Pearson r and MMRV across policies need at least two policies on both sides.", ""]
    elif n < MIN_CORRELATION_POINTS:
        lines += [f"**Caution:** the correlation across policies rests on {n} points. Below "
                  f"{MIN_CORRELATION_POINTS} it says little (any two points give r = ±1); compare more policies "
                  f"or checkpoints before reading it.", ""]
    lines += ["| policy | cells | episodes sim / real | success sim | success real | outcome agreement |",
              "|---|---|---|---|---|---|"]
    for _, p in c.policies.iterrows():
        lines.append(f"| {p['policy']} | {p['cells']} | {p['n_sim']} / {p['n_real']} | {p['sim_success']:.2f} | "
                     f"{p['real_success']:.2f} | {p['agreement']:.2f} |")
    lines += ["", "Outcomes are cheese/bread; agreement = 1 - total variation distance between the outcome "
                  "distributions.", "",
              "| policy | scenario | instruction | n sim / real | success sim / real | agreement | sim outcomes | "
              "real outcomes |", "|---|---|---|---|---|---|---|---|"]
    for _, r in c.cells.iterrows():
        text = r["instruction"] if r["instruction"] else '"" (empty)'
        lines.append(f"| {r['policy']} | {r['scenario']} | {text} | {r['n_sim']} / {r['n_real']} | "
                     f"{r['sim_success']:.2f} / {r['real_success']:.2f} | {r['agreement']:.2f} | {r['sim_outcomes']} | "
                     f"{r['real_outcomes']} |")
    return "\n".join(lines) + "\n"


def plot_scatter(c: Comparison, path: str | Path) -> Path:
    """Sim (x) vs real (y) success: one labelled point per policy, faint points per (policy, cell)."""
    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="sim = real")
    ax.scatter(c.cells["sim_success"], c.cells["real_success"], s=14, color="0.5", alpha=0.35,
               label="(policy, cell)")
    ax.scatter(c.policies["sim_success"], c.policies["real_success"], s=50, color="tab:blue", zorder=3,
               label="policy")
    for _, p in c.policies.iterrows():
        ax.annotate(str(p["policy"]), (p["sim_success"], p["real_success"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_aspect("equal")
    ax.set_xlabel("success in simulation")
    ax.set_ylabel("success on the real arm")
    ax.set_title(f"Sim vs real: Pearson r {_fmt(c.pearson)}, MMRV {_fmt(c.mmrv)}")
    ax.legend(fontsize=8, loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    fig.clear()
    return path


def write(c: Comparison, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c.cells.to_csv(out / "cells.csv", index=False)
    c.policies.to_csv(out / "policies.csv", index=False)
    (out / "sim_vs_real.md").write_text(markdown(c))
    plot_scatter(c, out / "scatter.png")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.sim_vs_real", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # keeps the example
    parser.add_argument("--sim", nargs="+", required=True, help="episodes CSV(s) from simulation")
    parser.add_argument("--real", nargs="+", required=True, help="episodes CSV(s) from the real arm")
    parser.add_argument("--out", required=True, help="directory for cells.csv, policies.csv, sim_vs_real.md, "
                                                     "scatter.png")
    args = parser.parse_args(argv)
    try:
        sim, sim_dropped = load_side(args.sim, "sim")
        real, real_dropped = load_side(args.real, "real")
        comparison = compare(sim, real, {"sim": sim_dropped, "real": real_dropped})
    except SimVsRealError as exc:
        parser.exit(2, f"error: {exc}\n")
    out = write(comparison, args.out)
    print(markdown(comparison).split("\n\n| policy | scenario")[0])
    print(f"\nwrote {out}/sim_vs_real.md, cells.csv, policies.csv, scatter.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
