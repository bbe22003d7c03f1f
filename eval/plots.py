"""Report figures: a per-policy outcome heatmap and a metric comparison bar chart.

Figures are built with matplotlib's object API on an explicit Agg canvas, never pyplot: no
display is needed, the process-wide backend is left alone, and no global figure registry
holds figures open across a long report run.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eval.metrics import METRICS, outcome_table

_SHORT = {"picked_cheese": "cheese", "picked_bread": "bread", "picked_both": "both",
          "disturbed": "disturbed", "none": "none"}


def _short_behaviour(modal: str) -> str:
    return "/".join(_SHORT.get(b, b) for b in modal.split("/")) if modal else "–"


def _column_label(text: str, intent: str) -> str:
    body = textwrap.fill(textwrap.shorten(text, 60, placeholder=" …"), 18) if text else '"" (empty)'
    return f"{body}\n[{intent}]"


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    fig.clear()  # release artists now rather than at garbage collection
    return path


MAX_COLUMNS_PER_PANEL = 8  # wider grids wrap onto more panels, so labels stay readable with 19+ instructions


def _panels(columns: list[str], families: pd.Series) -> list[list[str]]:
    """Instructions grouped by family (first-seen order), then cut into panels of at most MAX_COLUMNS_PER_PANEL."""
    order = sorted(columns, key=lambda c: list(dict.fromkeys(families)).index(families[c]))
    return [order[i:i + MAX_COLUMNS_PER_PANEL] for i in range(0, len(order), MAX_COLUMNS_PER_PANEL)] or [[]]


def plot_outcome_heatmap(df: pd.DataFrame, policy: str, path: str | Path) -> Path:
    """Scenarios (rows) × instructions (columns), coloured by success, annotated with modal behaviour.

    Columns are grouped by perturbation family; more than MAX_COLUMNS_PER_PANEL of them wrap onto further panels."""
    table = outcome_table(df, policy)
    success, behaviour = table["success"], table["behaviour"]
    pdf = df[df["policy"] == policy]
    intents = pdf.groupby("instruction", sort=False)["intent"].first()
    families = (pdf.groupby("instruction", sort=False)["family"].first() if "family" in pdf
                else pd.Series("", index=intents.index))
    panels = _panels(list(success.columns), families)
    n_rows = success.shape[0]
    width = max(len(p) for p in panels)

    fig = Figure(figsize=(2.5 + 1.25 * width, len(panels) * (2.0 + 0.6 * n_rows)), layout="constrained")
    cmap = colormaps["RdYlGn"]
    image = None
    for k, columns in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, k + 1)
        rates = success[columns]
        image = ax.imshow(np.ma.masked_invalid(rates.to_numpy(dtype=float)), cmap=cmap, vmin=0, vmax=1,
                          aspect="auto")
        for r in range(n_rows):
            for c, column in enumerate(columns):
                rate = rates.iat[r, c]
                if np.isnan(rate):
                    continue
                # Dark text on the pale middle of the colour map, white on its saturated ends.
                red, green, blue, _ = cmap(rate)
                colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
                ax.text(c, r, f"{_short_behaviour(behaviour.loc[success.index[r], column])}\n{rate:.0%}",
                        ha="center", va="center", fontsize=8, color=colour)
        labels = [_column_label(t, intents[t]) + (f"\n({families[t]})" if families[t] else "") for t in columns]
        ax.set_xticks(range(len(columns)), labels, fontsize=7)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_yticks(range(n_rows), success.index)
        ax.set_ylabel("scenario (cheese, bread)")
        if k == 0:
            ax.set_title(f"{policy}: success rate and modal behaviour")
    fig.axes[-1].set_xlabel("instruction [intent] (family)")
    fig.colorbar(image, ax=fig.axes, label="success rate", shrink=0.8)
    return _save(fig, path)


def plot_metric_bars(summary_df: pd.DataFrame, path: str | Path) -> Path:
    """One group per metric, one bar per policy, with 95% bootstrap CI error bars (none where the CI is n/a).

    The legend sits outside the axes, so it never covers a bar."""
    keys = [k for k in METRICS if k in summary_df]
    policies = list(summary_df["policy"])
    width = 0.8 / max(len(policies), 1)
    x = np.arange(len(keys))

    fig = Figure(figsize=(3.5 + 1.3 * len(keys), 4.5), layout="constrained")
    ax = fig.add_subplot()
    for i, (_, row) in enumerate(summary_df.iterrows()):
        values = np.array([row[k] for k in keys], dtype=float)
        lo = np.array([row[f"{k}_lo"] for k in keys], dtype=float)
        hi = np.array([row[f"{k}_hi"] for k in keys], dtype=float)
        errors = np.nan_to_num(np.clip(np.vstack([values - lo, hi - values]), 0, None))
        ax.bar(x + (i - (len(policies) - 1) / 2) * width, values, width, yerr=errors,
               capsize=3, label=str(row["policy"]))
    ax.set_xticks(x, [textwrap.fill(METRICS[k][1], 12) for k in keys], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("value (95% bootstrap CI)")
    ax.set_title("ChefMate Bench metrics by policy (no bar: n/a)")
    ax.legend(title="policy", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)
