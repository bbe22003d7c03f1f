"""Summary table and plots for an episodes CSV."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from eval.metrics import METRICS, summarize
from eval.plots import plot_metric_bars, plot_outcome_heatmap


def load_episodes(csv_path: Path) -> pd.DataFrame:
    return pd.read_csv(csv_path, keep_default_na=False, dtype={"instruction": str})


def markdown_summary(summary: pd.DataFrame) -> str:
    header = "| policy | episodes | " + " | ".join(label for _, label in METRICS.values()) + " |"
    lines = [header, "|" + "---|" * (2 + len(METRICS))]
    for _, r in summary.iterrows():
        cells = [f"{r[k]:.2f} [{r[k + '_lo']:.2f}, {r[k + '_hi']:.2f}]" for k in METRICS]
        lines.append(f"| {r['policy']} | {int(r['episodes'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def file_stem(policy: str) -> str:
    """A policy spec as a flat file name: ``vla:runs/dis`` -> ``vla_runs_dis``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", policy).strip("_")


def write_report(csv_path: Path, out_dir: Path) -> pd.DataFrame:
    df = load_episodes(csv_path)
    summary = summarize(df)
    summary.to_csv(out_dir / "summary.csv", index=False)
    (out_dir / "summary.md").write_text(markdown_summary(summary) + "\n")
    for policy in df["policy"].unique():
        plot_outcome_heatmap(df[df["policy"] == policy], policy, out_dir / f"heatmap_{file_stem(policy)}.png")
    plot_metric_bars(summary, out_dir / "metrics.png")
    return summary
