"""Summary table and plots for an episodes CSV."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from eval.metrics import METRICS, MIN_SEEDS_FOR_CI, summarize
from eval.plots import plot_metric_bars, plot_outcome_heatmap


def load_episodes(csv_path: Path) -> pd.DataFrame:
    return pd.read_csv(csv_path, keep_default_na=False, dtype={"instruction": str})


def _nan(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def metric_text(row: pd.Series, key: str) -> tuple[str, str]:
    """(value, CI) as text: n/a where nothing could be scored, CI n/a where fewer than 2 seeds were run."""
    if _nan(row[key]):
        return "n/a", ""
    if _nan(row[f"{key}_lo"]):
        return f"{row[key]:.2f}", "CI n/a"
    return f"{row[key]:.2f}", f"[{row[key + '_lo']:.2f}, {row[key + '_hi']:.2f}]"


OVER_REACTION_MARGIN = 0.01  # the index above the oracle's by more than this: outcomes change where the task's don't

NOTES = ("Errors (policy_error, robot_error) count against the policy: a failure in every success metric, not "
         "complied in negation compliance, and the least favourable outcome in every instruction-pair distance; a "
         "row with errors is marked incomplete. Language sensitivity is the weakest of its kinds (object, "
         "negation, no task), each shown beside it. The language influence index is shown next to the oracle's "
         "own index on the same cells; above it, the policy's outcomes change where the task's do not "
         "(over-reaction), which is no better.")


def policy_label(row: pd.Series) -> str:
    """The policy's name, marked incomplete when some of its episodes ended in errors."""
    errors = int(row["errors"])
    return f"{row['policy']} (incomplete: {errors} error{'s' * (errors != 1)})" if errors else str(row["policy"])


def lii_note(row: pd.Series) -> str:
    """The oracle's own index beside the policy's, and whether the policy over-reacts."""
    if _nan(row.get("lii_oracle")) or _nan(row.get("lii")):
        return ""
    over = row["lii"] > row["lii_oracle"] + OVER_REACTION_MARGIN
    return f"(oracle {row['lii_oracle']:.2f}{', over-reacts' if over else ''})"


def markdown_summary(summary: pd.DataFrame) -> str:
    header = "| policy | episodes | errors | " + " | ".join(label for _, label in METRICS.values()) + " |"
    lines = [header, "|" + "---|" * (3 + len(METRICS))]
    for _, r in summary.iterrows():
        cells = []
        for k in METRICS:
            value, ci = metric_text(r, k)
            cells.append(" ".join(p for p in (value, lii_note(r) if k == "lii" else "", ci) if p))
        lines.append(f"| {policy_label(r)} | {int(r['episodes'])} | {int(r['errors'])} | " + " | ".join(cells) +
                     " |")
    notes = [NOTES]
    if any(not _nan(r.get("seeds")) and int(r["seeds"]) < MIN_SEEDS_FOR_CI for _, r in summary.iterrows()):
        notes.append(f"CI n/a: a bootstrap CI needs at least {MIN_SEEDS_FOR_CI} seeds per cell (run --seeds 2 "
                     f"or more).")
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def file_stem(policy: str) -> str:
    """A policy spec as a flat file name: ``vla:runs/dis`` -> ``vla_runs_dis``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", policy).strip("_")


def write_report(csv_path: Path, out_dir: Path) -> pd.DataFrame:
    df = load_episodes(csv_path)
    summary = summarize(df)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out_dir / "summary.csv", index=False, na_rep="n/a")
    (out_dir / "summary.md").write_text(markdown_summary(summary) + "\n")
    for policy in df["policy"].unique():
        plot_outcome_heatmap(df[df["policy"] == policy], policy, out_dir / f"heatmap_{file_stem(policy)}.png")
    plot_metric_bars(summary, out_dir / "metrics.png")
    return summary
