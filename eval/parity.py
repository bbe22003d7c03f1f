"""Backend parity: compare two episodes.csv files episode by episode and list every disagreement.

    python -m eval.parity reports/runs/mujoco/episodes.csv reports/runs/isaaclab/episodes.csv --out parity.md

Episodes are matched on (policy, scenario, instruction, seed). They agree when both backends give the same
outcome category to each ingredient (``outcome_label``); ``behaviour`` and ``success`` follow from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from eval.report import load_episodes
from eval.results import KEY_COLUMNS


def compare(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Joined rows (suffixes _a, _b) with an ``agree`` column, and counts of what could not be matched."""
    for df in (a, b):
        df["seed"] = df["seed"].astype(str)
    joined = a.merge(b, on=list(KEY_COLUMNS), suffixes=("_a", "_b"), how="outer", indicator=True)
    both = joined[joined["_merge"] == "both"].copy()
    both["agree"] = both["outcome_label_a"] == both["outcome_label_b"]
    return both, {"only_a": int((joined["_merge"] == "left_only").sum()),
                  "only_b": int((joined["_merge"] == "right_only").sum())}


def markdown(both: pd.DataFrame, unmatched: dict, name_a: str, name_b: str) -> str:
    lines = [f"# Backend parity: {name_a} vs {name_b}", "",
             f"{len(both)} episodes matched; {int(both['agree'].sum())} agree on every ingredient's outcome "
             f"({both['agree'].mean():.1%}). Unmatched: {unmatched['only_a']} only in {name_a}, "
             f"{unmatched['only_b']} only in {name_b}.", "",
             "| policy | scenario | episodes | agree | success " + name_a + " | success " + name_b + " |",
             "|---|---|---|---|---|---|"]
    for (policy, scenario), g in both.groupby(["policy", "scenario"], sort=False):
        lines.append(f"| {policy} | {scenario} | {len(g)} | {int(g['agree'].sum())} | "
                     f"{g['success_a'].astype(int).mean():.2f} | {g['success_b'].astype(int).mean():.2f} |")
    bad = both[~both["agree"]]
    lines += ["", f"## Disagreements ({len(bad)})", ""]
    if len(bad):
        lines += ["| policy | scenario | instruction | seed | " + name_a + " | " + name_b + " | error " + name_b + " |",
                  "|---|---|---|---|---|---|---|"]
        for _, r in bad.iterrows():
            lines.append(f"| {r['policy']} | {r['scenario']} | {r['instruction']} | {r['seed']} | "
                         f"{r['outcome_label_a']} | {r['outcome_label_b']} | {r['error_b'] or ''} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, help="episodes.csv of the reference backend (e.g. mujoco)")
    p.add_argument("b", type=Path, help="episodes.csv of the other backend (e.g. isaaclab)")
    p.add_argument("--out", type=Path, help="write the markdown report here (and a CSV of disagreements beside it)")
    a = p.parse_args(argv)
    for path in (a.a, a.b):
        if not path.exists():
            p.error(f"{path} does not exist; run eval/run_matrix.py (or `python -m training.isaaclab_gpu grid`) first")
    da, db = load_episodes(a.a), load_episodes(a.b)
    name_a, name_b = (str(df["backend"].iloc[0]) if len(df) else path.stem for df, path in ((da, a.a), (db, a.b)))
    both, unmatched = compare(da, db)
    text = markdown(both, unmatched, name_a, name_b)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
        both[~both["agree"]].to_csv(a.out.with_suffix(".csv"), index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
