"""The study's answer: per (data, tuning) metrics with CIs bootstrapped over training seeds and episodes, the
competence gate, the effects of data and of tuning on language sensitivity, figures and one HTML page.

Hierarchical bootstrap: each training seed's episode table gives its own bootstrap replicates (episodes resampled,
paired across instructions as ``eval.metrics`` does). One study replicate draws training seeds with replacement and
averages their replicates of the same index. The point value is the mean over seeds.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval.metrics import METRICS, N_BOOT, MetricValue, error_count, success_act
from eval.report import load_episodes
from training.study.layout import done_info, eval_seeds, is_done, run_name
from training.study.spec import BASE_DATA

# summary.csv column -> eval.metrics key
SUMMARY_METRICS = {"success": "success", "success_act": "success_act", "success_refrain": "success_refrain",
                   "language_sensitivity": "language_sensitivity", "sensitivity_object": "sensitivity_object",
                   "sensitivity_negation": "sensitivity_negation", "wording_sensitivity": "wording_sensitivity",
                   "negation_compliance": "negation", "heuristic_agreement": "heuristic"}


def study_replicates(values: list[MetricValue], rng: np.random.Generator, n_boot: int = N_BOOT) -> np.ndarray | None:
    """(n_boot,) study-level replicates: training seeds drawn with replacement, their episode-level replicates of
    the same index averaged. None when some seed has no replicates (fewer than 2 layout seeds)."""
    if not values or any(v.replicates is None for v in values):
        return None
    reps = np.stack([v.replicates[:n_boot] for v in values])  # (seeds, n_boot)
    draw = rng.integers(0, len(values), (reps.shape[1], len(values)))
    return reps[draw, np.arange(reps.shape[1])[:, None]].mean(axis=1)


def hierarchical(values: list[MetricValue], n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """(point, lo, hi) over training seeds: seeds resampled, each seed's episode-level replicates averaged."""
    points = np.array([v.value for v in values], dtype=float)
    if len(points) == 0 or np.isnan(points).all():
        return float("nan"), float("nan"), float("nan")
    study = study_replicates(values, np.random.default_rng(seed), n_boot)
    if study is None:
        return float(np.nanmean(points)), float("nan"), float("nan")
    lo, hi = np.percentile(study, [2.5, 97.5])
    return float(points.mean()), float(lo), float(hi)


def covered_pairs(recipe: str) -> set[tuple[str, str]]:
    """The (scenario label, instruction) pairs a recipe's demos show."""
    from training.demos.recipes import get_recipe

    return {(c.scenario.label, c.instruction.text) for plan in get_recipe(recipe).datasets for c in plan.cells}


def load_runs(spec, layout) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Every finished run's episodes (tagged with data, tuning, seed) and its diagnosis numbers."""
    frames, diagnoses = [], {}
    for data, tuning, seed in spec.run_ids():
        name = run_name(data, tuning, seed)
        if is_done(layout.grid(name)):
            df = load_episodes(layout.episodes(name))
            frames.append(df.assign(policy=name, data=data, tuning=tuning, train_seed=seed))
        if is_done(layout.diagnosis(name)):
            diagnoses[name] = json.loads((layout.diagnosis(name) / "diagnosis.json").read_text())
    episodes = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return episodes, diagnoses


def _diag(d: dict | None, section: str, key: str) -> float:
    try:
        return float(d[section][key])
    except (TypeError, KeyError):
        return float("nan")


def competence(spec, episodes: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per data condition: each tuning's success_act on the (cell, instruction) pairs its own data covers."""
    out = {}
    for d in spec.data:
        pairs = covered_pairs(d.recipe)
        per_tuning = {}
        for t in spec.tunings:
            rows = episodes[(episodes["data"] == d.name) & (episodes["tuning"] == t.name)] if len(episodes) else episodes
            mask = [(s, i) in pairs for s, i in zip(rows.get("scenario", []), rows.get("instruction", []))]
            sub = rows[np.asarray(mask, dtype=bool)] if len(rows) else rows
            per_tuning[t.name] = success_act(sub).value if len(sub) else float("nan")
        best = max(per_tuning.items(), key=lambda kv: -1 if np.isnan(kv[1]) else kv[1])
        out[d.name] = {"success_act_on_own_pairs": per_tuning, "best_tuning": best[0],
                       "passed": bool(best[1] >= spec.competence_gate)}
    return out


def summarize_study(spec, episodes: pd.DataFrame, diagnoses: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                                       dict]:
    rows, run_rows, reps = [], [], {}
    for d in spec.data:
        for t in spec.tunings:
            per_seed: dict[str, list[MetricValue]] = {k: [] for k in SUMMARY_METRICS}
            names = [run_name(d.name, t.name, s) for s in spec.seeds]
            seeds_run = 0
            for s, name in zip(spec.seeds, names):
                df = episodes[episodes["policy"] == name] if len(episodes) else episodes
                if not len(df):
                    continue
                seeds_run += 1
                run_row = {"data": d.name, "tuning": t.name, "seed": s, "episodes": len(df),
                           "errors": error_count(df)}
                for column, key in SUMMARY_METRICS.items():
                    v = METRICS[key][0](df, seed=s)
                    per_seed[column].append(v)
                    run_row[column] = v.value
                run_row["action_sensitivity_differ"] = _diag(diagnoses.get(name), "behaviour",
                                                             "action_sensitivity_differ")
                run_row["text_probe_accuracy"] = _diag(diagnoses.get(name), "representation", "text_probe_accuracy")
                run_rows.append(run_row)
            row: dict[str, Any] = {"data": d.name, "tuning": t.name, "n_seeds": seeds_run}
            for column in SUMMARY_METRICS:
                point, lo, hi = hierarchical(per_seed[column])
                row.update({column: point, f"{column}_lo": lo, f"{column}_hi": hi})
                reps[(d.name, t.name, column)] = per_seed[column]
            mine = [r for r in run_rows if r["data"] == d.name and r["tuning"] == t.name]
            for key in ("action_sensitivity_differ", "text_probe_accuracy"):
                row[key] = float(np.nanmean([r[key] for r in mine])) if mine and not all(
                    np.isnan(r[key]) for r in mine) else float("nan")
            rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(run_rows), reps


def effect(reps: dict, spec, a: tuple[str, str], b: tuple[str, str], column: str = "language_sensitivity",
           n_boot: int = N_BOOT) -> dict[str, float]:
    """Mean difference (a - b) of ``column`` between two (data, tuning) conditions, with a hierarchical CI."""
    va, vb = reps.get((*a, column), []), reps.get((*b, column), [])
    mean = lambda vs: float(np.nanmean([v.value for v in vs])) if vs else float("nan")  # noqa: E731
    out = {"value": mean(va) - mean(vb), "lo": float("nan"), "hi": float("nan")}
    rng = np.random.default_rng(3)
    da, db = study_replicates(va, rng, n_boot), study_replicates(vb, rng, n_boot)
    if da is not None and db is not None:
        n = min(len(da), len(db))
        out["lo"], out["hi"] = (float(x) for x in np.percentile(da[:n] - db[:n], [2.5, 97.5]))
    return out


def answer(spec, summary: pd.DataFrame, reps: dict, gate: dict) -> dict[str, Any]:
    """The effects of data and of tuning on language sensitivity, and a plain-words answer."""
    if not all(g["passed"] for g in gate.values()):
        lacking = [d for d, g in gate.items() if not g["passed"]]
        return {"verdict": f"inconclusive: not competent. No tuning reached success_act >= {spec.competence_gate} on "
                           f"the pairs its own data covers for: {', '.join(lacking)}; no conclusion about language "
                           f"is drawn.", "effects": {}}
    effects: dict[str, Any] = {}
    names = [d.name for d in spec.data]
    if len(names) >= 2:
        for t in spec.tunings:
            effects[f"data {names[1]} - {names[0]} | {t.name}"] = effect(reps, spec, (names[1], t.name),
                                                                         (names[0], t.name))
    base = spec.baseline_tuning
    for d in spec.data:
        for t in spec.tunings:
            if t.name != base:
                effects[f"tuning {t.name} - {base} | {d.name}"] = effect(reps, spec, (d.name, t.name), (d.name, base))
    clear = {k: v for k, v in effects.items() if not np.isnan(v["lo"]) and (v["lo"] > 0 or v["hi"] < 0)}
    words = ("; ".join(f"{k}: {v['value']:+.2f} [{v['lo']:+.2f}, {v['hi']:+.2f}]" for k, v in clear.items())
             or "no effect on language sensitivity is distinguishable from zero at 95%")
    return {"verdict": words, "effects": effects}


# --- figures and html ---------------------------------------------------------------------------------------------
def plot_heatmap(summary: pd.DataFrame, path: Path, column: str = "language_sensitivity") -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = summary.pivot(index="data", columns="tuning", values=column)
    fig = Figure(figsize=(2 + 1.4 * grid.shape[1], 1.5 + 0.8 * grid.shape[0]), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            v = grid.iat[r, c]
            ax.text(c, r, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center",
                    color="white" if not np.isnan(v) and v < 0.6 else "black")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=20)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_title(f"{column} (mean over training seeds)")
    fig.colorbar(image, ax=ax)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def plot_bars(summary: pd.DataFrame, path: Path, columns=("success_act", "language_sensitivity",
                                                            "wording_sensitivity")) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [f"{r.data}\n{r.tuning}" for r in summary.itertuples()]
    x = np.arange(len(labels))
    width = 0.8 / len(columns)
    fig = Figure(figsize=(3 + 1.1 * len(labels), 4), layout="constrained")
    ax = fig.add_subplot()
    for i, col in enumerate(columns):
        v = summary[col].to_numpy(dtype=float)
        err = np.nan_to_num(np.clip(np.vstack([v - summary[f"{col}_lo"], summary[f"{col}_hi"] - v]), 0, None))
        ax.bar(x + (i - (len(columns) - 1) / 2) * width, v, width, yerr=err, capsize=3, label=col)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("95% CI over training seeds and episodes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)
    return path


def _img(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def starting_point(spec) -> str:
    b = spec.base
    if not b.episodes:
        return "the pretrained backbone, with the action head at random initial weights"
    return (f"a base model: the pretrained backbone plus an action head pretrained for {b.steps} steps on "
            f"{b.episodes} '{b.recipe}' demos per dataset (GR00T's default tuning)")


def render_html(summary: pd.DataFrame, study: dict, out: Path) -> str:
    table = summary.to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="n/a", classes="summary")
    failures = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in study["failures"].items())
    gate = "passed" if study["competence_gate_passed"] else "NOT passed"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(study['name'])}</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
            "font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}</style></head><body>"
            f"<h1>Study {html.escape(study['name'])}</h1><p><b>Answer:</b> {html.escape(study['answer']['verdict'])}"
            f"</p><p>Fine-tunes start from {html.escape(study['fine_tunes_start_from'])}.</p>"
            f"<p>Competence gate ({study['competence_gate']}): {gate}. Trained on {html.escape(study['machine'])}, "
            f"evaluated on {html.escape(study['evaluated_on'])}. "
            f"Evaluation layout seeds {study['evaluation_layout_seeds']}, demo layout seeds "
            f"{study['demo_layout_seeds']}.</p>{table}{_img(out / 'language_sensitivity.png')}"
            f"{_img(out / 'metrics_bars.png')}" + (f"<h2>Failures</h2><ul>{failures}</ul>" if failures else "")
            + "</body></html>")


def trained_on(spec, layout, here: str) -> str:
    """Where the fine-tunes ran, as their markers say; a report rewritten elsewhere (on a CPU, from results carried
    back from a GPU box) keeps the machine the earlier report named, and only a new study names this one."""
    seen = {done_info(layout.model(run_name(*run))).get("machine") for run in spec.run_ids()} - {None}
    return ", ".join(sorted(seen)) if seen else _earlier(layout, "machine", here)


def evaluated_on(spec, layout) -> str:
    """Where the evaluations ran, as their markers say (a lease may train only, and the CPU box evaluate). A marker
    from before they named it ran where its fine-tune did: the whole study ran on the GPU box then."""
    seen = {done_info(layout.grid(name)).get("machine") or done_info(layout.model(name)).get("machine")
            for name in (run_name(*run) for run in spec.run_ids()) if is_done(layout.grid(name))} - {None}
    return ", ".join(sorted(seen)) if seen else "no run evaluated yet"


def _earlier(layout, key: str, default: Any) -> Any:
    """What the study's earlier report said, for what only the machine that ran the study could tell."""
    earlier = layout.out / "study.json"
    return json.loads(earlier.read_text()).get(key, default) if earlier.exists() else default


def write_report(spec, layout, failed: dict[str, str], timings: dict[str, float], machine: str,
                 fractional_gpus: float) -> dict:
    """``machine``: where this runs; study.json names where the fine-tunes ran (``trained_on``)."""
    machine = trained_on(spec, layout, machine)
    if not machine.startswith("CPU"):  # the runs shared a GPU as the spec says, wherever this report is written
        fractional_gpus = spec.resources.finetune_gpus
    episodes, diagnoses = load_runs(spec, layout)
    summary, runs, reps = summarize_study(spec, episodes, diagnoses)
    gate = competence(spec, episodes)
    study = {
        "name": spec.name, "machine": machine, "evaluated_on": evaluated_on(spec, layout), "wall_seconds": timings,
        "wall_minutes_total": round(sum(timings.values()) / 60, 2),
        "competence_gate": spec.competence_gate, "competence": gate,
        "competence_gate_passed": all(g["passed"] for g in gate.values()),
        "answer": answer(spec, summary, reps, gate),
        # The demos stay on the machine that made them; without their markers the earlier report's numbers stand.
        "demo_layout_seeds": {name: done_info(layout.data(name)).get("layout_seeds")
                              for name in [d.name for d in spec.data] + [BASE_DATA] if is_done(layout.data(name))}
                             or _earlier(layout, "demo_layout_seeds", {}),
        "fine_tunes_start_from": starting_point(spec),
        "evaluation_layout_seeds": [eval_seeds(spec)[0], eval_seeds(spec)[-1]],
        "runs_finished": int(len(runs)), "runs_planned": len(spec.run_ids()),
        "ray": {"fractional_gpus_per_finetune": fractional_gpus,
                "finetunes_sharing_a_gpu": int(1 // fractional_gpus) if fractional_gpus else 0},
        "failures": failed,
    }
    out = layout.out
    summary.to_csv(out / "summary.csv", index=False, na_rep="n/a")
    runs.to_csv(out / "runs.csv", index=False, na_rep="n/a")
    (out / "study.json").write_text(json.dumps(study, indent=2, default=float))
    if len(summary):
        plot_heatmap(summary, out / "language_sensitivity.png")
        plot_bars(summary, out / "metrics_bars.png")
        (out / "report.html").write_text(render_html(summary, study, out))
    return study
