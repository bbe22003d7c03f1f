"""One self-contained HTML page comparing policies, from one or more runs: metrics with CIs, heatmaps, bars,
replayed front-camera clips (failures first) and the commands and versions behind every number.

    python -m eval.html_report reports/matrix --out reports/html
    python -m eval.html_report runs/freeze_llm runs/tune_llm/episodes.csv --out reports/compare --clips 2
    python -m eval.html_report --policies expert,blind --matrix-args "--families negation --seeds 2" --out reports/html

OUT gets report.html (images and clips inlined as data URIs: one file to mail or archive), the PNGs next to it
and summary.csv. A policy spec found in several runs is shown as ``spec [run]``. Clips replay each run at the camera
size its run.json records; for a run without one, pass its --image-size as --replay-image-size.
"""

from __future__ import annotations

import argparse
import base64
import html
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from eval.clips import REPLAY_FIELDS, Clip, ClipConfig, PolicyClips, record_clips, sample_rows
from eval.metrics import ERROR_BEHAVIOURS, METRICS, MIN_SEEDS_FOR_CI, summarize
from eval.plots import plot_metric_bars, plot_outcome_heatmap
from eval.provenance import REPO_ROOT, environment, read_manifest
from eval.report import NOTES, file_stem, lii_note, load_episodes, metric_text, policy_label
from eval.results import COLUMNS
from eval.run_matrix import MatrixConfig

EPISODES_CSV = "episodes.csv"


class ReportError(ValueError):
    pass


@dataclass
class RunInput:
    csv: Path
    label: str                       # short, unique among inputs: names a run when specs collide
    manifest: dict[str, Any] | None  # its run.json, when the run wrote one

    def image_size(self, unrecorded: int) -> int:
        """The camera size the run gave its policies (replays must match it): from the recorded command, else
        ``unrecorded``."""
        if self.manifest is None:
            return unrecorded
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--image-size", type=int, default=MatrixConfig.image_size)
        return parser.parse_known_args([str(a) for a in self.manifest.get("argv", [])])[0].image_size

    def language_blind(self, spec: str) -> bool | None:
        return (self.manifest or {}).get("policies", {}).get(spec, {}).get("language_blind")


@dataclass
class PolicyEntry:
    name: str   # as shown in the report; unique
    spec: str   # as in the CSV; what the policy is rebuilt from
    run: RunInput
    episodes: pd.DataFrame
    language_blind: bool | None
    clips: PolicyClips = field(default_factory=PolicyClips)
    replay_image_size: int = 0  # camera size the clips were replayed at


# --- inputs ---------------------------------------------------------------------------------------------------
def resolve_csv(path: Path) -> Path:
    csv = path / EPISODES_CSV if path.is_dir() else path
    if not csv.is_file():
        raise ReportError(f"{path} is neither an episodes CSV nor a run directory holding {EPISODES_CSV}; "
                          f"pass what eval/run_matrix.py --out wrote")
    return csv.resolve()


def _unique_labels(csvs: list[Path]) -> list[str]:
    """The shortest trailing folder path that tells the runs apart: ``freeze_llm``, or ``a/seed0`` vs ``b/seed0``."""
    for depth in range(1, max(len(c.parent.parts) for c in csvs) + 1):
        labels = ["/".join(c.parent.parts[-depth:]) + ("" if c.name == EPISODES_CSV else f"/{c.name}")
                  for c in csvs]
        if len(set(labels)) == len(labels):
            return labels
    return [str(c) for c in csvs]


def load_runs(paths: list[Path]) -> list[RunInput]:
    csvs = [resolve_csv(p) for p in paths]
    repeated = {str(c) for c in csvs if csvs.count(c) > 1}
    if repeated:
        raise ReportError(f"{', '.join(sorted(repeated))} was given more than once; pass each run once")
    return [RunInput(c, label, read_manifest(c.parent)) for c, label in zip(csvs, _unique_labels(csvs))]


def policy_entries(runs: list[RunInput]) -> list[PolicyEntry]:
    """One entry per (run, policy spec); a spec that appears in several runs is named ``spec [run label]``."""
    frames = [(run, load_episodes(run.csv)) for run in runs]
    for run, df in frames:
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise ReportError(f"{run.csv} is not a ChefMate episodes file (no {', '.join(missing)} column); "
                              f"pass the episodes.csv that eval/run_matrix.py wrote")
    seen: dict[str, int] = {}
    for _, df in frames:
        for spec in df["policy"].unique():
            seen[spec] = seen.get(spec, 0) + 1
    entries = []
    for run, df in frames:
        for spec, pdf in df.groupby("policy", sort=False):
            name = f"{spec} [{run.label}]" if seen[spec] > 1 else str(spec)
            entries.append(PolicyEntry(name, str(spec), run, pdf.assign(policy=name), run.language_blind(spec)))
    return entries


def run_matrix_into(out: Path, specs: str, matrix_args: str) -> Path:
    """Run the grid for ``specs`` in its own process, so its run.json records its own exact command."""
    runs = out / "runs"
    cmd = [sys.executable, str(REPO_ROOT / "eval" / "run_matrix.py"), "--policies", specs, "--out", str(runs),
           *shlex.split(matrix_args)]
    if (runs / EPISODES_CSV).exists():
        cmd.append("--resume")  # a second report call reuses the finished episodes
    print("running:", shlex.join(cmd), flush=True)
    code = subprocess.run(cmd).returncode
    if code:
        raise ReportError(f"eval/run_matrix.py exited with {code} (its message is above); fix the --policies or "
                          f"--matrix-args it names, then run the report again")
    return runs


# --- HTML ------------------------------------------------------------------------------------------------------
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; color: #1d2330;
       margin: 0; background: #f4f5f7; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 32px 0 10px; border-bottom: 2px solid #dde1e8;
padding-bottom: 4px; } h3 { font-size: 17px; margin: 0 0 8px; }
.sub { color: #5b6475; margin: 0 0 16px; } .note { color: #5b6475; font-size: 13px; }
.card { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 16px 18px; margin: 14px 0; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e6e9ef; vertical-align: top; }
th { background: #eef1f6; font-weight: 600; } td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; white-space: nowrap; }
.blind { background: #fff1d6; color: #8a5a00; } .lang { background: #e3f0ff; color: #0b4f9c; }
.unknown { background: #eceef2; color: #5b6475; } .warn { color: #b3261e; font-weight: 600; }
img.figure { max-width: 100%; height: auto; display: block; margin: 8px auto; }
img.heatmap { max-height: 540px; width: auto; } .table-wrap { overflow-x: auto; }
.clips { display: flex; flex-wrap: wrap; gap: 12px; }
.clips figure { margin: 0; width: 200px; }
.clips img { width: 200px; height: 200px; border-radius: 6px; border: 1px solid #dde1e8; }
figcaption { font-size: 12px; color: #39404d; margin-top: 4px; } .fail { color: #b3261e; } .ok { color: #1b7d3a; }
code, pre { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; } pre { white-space: pre-wrap;
word-break: break-all; background: #f6f7f9; border: 1px solid #e6e9ef; border-radius: 6px; padding: 8px;
margin: 4px 0; }
"""

BLIND_NOTE = ("Language-blind controls ignore the instruction by design (ACT, Diffusion, the blind heuristic), so "
              "their language influence index should be 0; any other value means the instructions of a scenario were "
              "not run on the same seeds.")


def _e(value: Any) -> str:
    return html.escape(str(value))


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png(path: Path, alt: str, anchor: str, kind: str = "") -> str:
    return (f'<img class="figure {kind}" id="{anchor}" alt="{_e(alt)}" '
            f'src="{data_uri(path.read_bytes(), "image/png")}">')


def _badge(blind: bool | None) -> str:
    if blind is None:
        return '<span class="badge unknown">not recorded</span>'
    return ('<span class="badge blind">language-blind control</span>' if blind
            else '<span class="badge lang">language-conditioned</span>')


def _ci(row: pd.Series, key: str) -> str:
    value, ci = metric_text(row, key)
    if key == "lii" and lii_note(row):
        value += f" <span class='note'>{_e(lii_note(row))}</span>"
    return f"<b>{value}</b>" + (f"<br><span class='note'>{ci}</span>" if ci else "")


def metrics_table(summary: pd.DataFrame, entries: dict[str, PolicyEntry]) -> str:
    head = "".join(f"<th>{_e(label)} <span class='note'>[95% CI]</span></th>" for _, label in METRICS.values())
    rows = []
    for _, r in summary.iterrows():
        entry = entries[r["policy"]]
        cells = "".join(f'<td class="num">{_ci(r, k)}</td>' for k in METRICS)
        flag = (' <span class="warn">(should be 0)</span>'
                if entry.language_blind and not pd.isna(r["lii"]) and r["lii"] > 0 else "")
        errors = int(r["errors"])
        rows.append(f'<tr class="policy-row" data-policy="{_e(r["policy"])}"><td><b>{_e(policy_label(r))}</b>{flag}</td>'
                    f'<td>{_badge(entry.language_blind)}</td><td>{_e(entry.run.label)}</td>'
                    f'<td class="num">{int(r["episodes"])}</td>'
                    f'<td class="num{" warn" if errors else ""}">{errors}</td>{cells}</tr>')
    sizes = sorted({int(n) for n in summary["episodes"]})
    mismatch = ("" if len(sizes) < 2 else
                f'<p class="warn">These rows come from grids of different sizes ({", ".join(map(str, sizes))} '
                f'episodes): compare them with care, or rerun them on one grid.</p>')
    notes = (f'<p class="note">{_e(NOTES)} A CI needs at least {MIN_SEEDS_FOR_CI} seeds; with fewer it reads '
             f'"CI n/a".</p>')
    return (f'<div class="table-wrap"><table id="metrics-table"><thead><tr><th>policy</th><th>kind</th><th>run</th>'
            f'<th>episodes (n)</th><th>errors</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
            f'{mismatch}{notes}')


def _clip_figure(clip: Clip) -> str:
    row = clip.row
    verdict = "success" if int(row["success"]) else "failure"
    replay = ('<span class="ok">replayed: same outcome</span>' if clip.same_outcome else
              '<span class="fail">replayed: differs (' + _e(", ".join(
                  f"{k} {row[k]}→{clip.replayed[k]}" for k in REPLAY_FIELDS
                  if str(row[k]) != str(clip.replayed[k]))) + ")</span>")
    instruction = f'"{row["instruction"]}"' if row["instruction"] else '"" (empty)'
    return (f'<figure><img alt="front camera clip" src="{data_uri(clip.gif, "image/gif")}"><figcaption>'
            f'<b>{_e(row["scenario"])}</b> · {_e(instruction)} · seed {_e(row["seed"])}<br>'
            f'<span class="{"ok" if verdict == "success" else "fail"}">{verdict}</span>: {_e(row["behaviour"])} '
            f'(expected {_e(row["expected"])})<br>{replay}</figcaption></figure>')


def policy_section(entry: PolicyEntry, heatmap: Path) -> str:
    errors = entry.episodes[entry.episodes["behaviour"].isin(ERROR_BEHAVIOURS)]
    error_note = ""
    if len(errors):
        error_note = (f'<p class="warn">{len(errors)} episode(s) ended in policy_error (not replayed), e.g.: '
                      f'{_e(errors["error"].iat[0])}</p>')
    clips = "".join(_clip_figure(c) for c in entry.clips.clips)
    notes = [entry.clips.note] if entry.clips.note else []
    if entry.clips.clips and entry.run.manifest is None:
        notes.append(f"{entry.run.label} has no run.json: replays assumed {entry.replay_image_size} px camera images "
                     f"(--replay-image-size)")
    clip_note = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    clip_block = (f'<h3>Front-camera clips <span class="note">(failures first; each replayed from its row)</span></h3>'
                  f'<div class="clips">{clips}</div>' if clips else "")
    return (f'<section class="card policy" id="policy-{file_stem(entry.name)}"><h3>{_e(entry.name)} '
            f'{_badge(entry.language_blind)}</h3>'
            f'{_png(heatmap, f"outcome heatmap of {entry.name}", f"heatmap-{file_stem(entry.name)}", "heatmap")}'
            f'{error_note}{clip_block}{clip_note}</section>')


def _provenance_block(title: str, manifest: dict[str, Any] | None) -> str:
    if not manifest:
        return f'<div class="card"><h3>{_e(title)}</h3><p class="note">no run.json next to this CSV</p></div>'
    versions = ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())
    policies = "".join(f"<li><code>{_e(spec)}</code>: language_blind={_e(p.get('language_blind'))}, "
                       f"privileged={_e(p.get('privileged'))}, cameras={_e(', '.join(p.get('cameras', [])) or '—')}"
                       f"</li>" for spec, p in manifest.get("policies", {}).items())
    return (f'<div class="card provenance"><h3>{_e(title)}</h3><pre class="command">{_e(manifest.get("command", ""))}'
            f'</pre><p class="note">{_e(versions)}<br>git {_e(manifest.get("git_commit") or "—")} · '
            f'{_e(manifest.get("timestamp", ""))} · cwd {_e(manifest.get("cwd", ""))}</p>'
            + (f"<ul class='note'>{policies}</ul>" if policies else "") + "</div>")


def render_html(entries: list[PolicyEntry], summary: pd.DataFrame, out: Path, report_env: dict[str, Any]) -> str:
    by_name = {e.name: e for e in entries}
    runs = list({id(e.run): e.run for e in entries}.values())
    sections = "".join(policy_section(e, out / f"heatmap_{file_stem(e.name)}.png") for e in entries)
    provenance = "".join(_provenance_block(f"run {run.label} ({run.csv})", run.manifest) for run in runs)
    provenance += _provenance_block("this report", report_env)
    blind_note = f'<p class="note">{_e(BLIND_NOTE)}</p>' if any(e.language_blind for e in entries) else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ChefMate Bench report</title>
<style>{STYLE}</style></head><body><main>
<h1>ChefMate Bench report</h1>
<p class="sub">{len(entries)} policies · {sum(len(e.episodes) for e in entries)} episodes · {len(runs)} run(s) ·
generated {_e(report_env["timestamp"])}</p>
<section class="card"><h2 style="margin-top:0">Metrics</h2>{metrics_table(summary, by_name)}{blind_note}
<p class="note">Success: the oracle's verdict. Language influence index: how much changing the instruction changes the
outcome within a scene (0 = never). Negation compliance: "do not pick up X" episodes with X left alone. Seed-heuristic
agreement: episodes matching the seed's position-only table. 95% percentile bootstrap CIs.</p></section>
<section class="card"><h2 style="margin-top:0">Side by side</h2>
{_png(out / "metrics.png", "metric bars", "fig-metrics")}</section>
<h2>Per policy: outcomes by scenario × instruction</h2>
{sections}
<h2>Provenance</h2>
{provenance}
</main></body></html>
"""


# --- the command -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportConfig:
    inputs: tuple[Path, ...]
    out: Path
    clips: ClipConfig = ClipConfig()
    policies: str = ""      # specs to run first, into OUT/runs
    matrix_args: str = ""   # extra eval/run_matrix.py options for those
    replay_image_size: int = MatrixConfig.image_size  # camera size for runs without a run.json


def build_report(cfg: ReportConfig, argv: list[str]) -> Path:
    inputs = list(cfg.inputs)
    if cfg.policies:
        inputs.append(run_matrix_into(cfg.out, cfg.policies, cfg.matrix_args))
    if not inputs:
        raise ReportError("nothing to report: pass run directories or episodes CSVs, or --policies SPEC,...")
    runs = load_runs(inputs)  # every input is checked before anything is written
    entries = policy_entries(runs)
    cfg.out.mkdir(parents=True, exist_ok=True)
    episodes = pd.concat([e.episodes for e in entries], ignore_index=True)
    summary = summarize(episodes)
    summary.to_csv(cfg.out / "summary.csv", index=False, na_rep="n/a")
    for entry in entries:
        plot_outcome_heatmap(entry.episodes, entry.name, cfg.out / f"heatmap_{file_stem(entry.name)}.png")
        if cfg.clips.count > 0:
            print(f"replaying {cfg.clips.count} episode(s) of {entry.name} for clips", flush=True)
            entry.replay_image_size = entry.run.image_size(unrecorded=cfg.replay_image_size)
            entry.clips = record_clips(entry.spec, sample_rows(entry.episodes, cfg.clips.count),
                                       entry.replay_image_size, cfg.clips)
            if entry.language_blind is None:  # no run.json: ask the policy rebuilt for the clips
                entry.language_blind = entry.clips.language_blind
    plot_metric_bars(summary, cfg.out / "metrics.png")
    path = cfg.out / "report.html"
    path.write_text(render_html(entries, summary, cfg.out, environment(argv)))
    return path


def parse_args(argv: list[str] | None = None) -> ReportConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", type=Path, help="run directories (holding episodes.csv) or episodes CSVs")
    p.add_argument("--out", type=Path, required=True, help="folder for report.html, the PNGs and summary.csv")
    p.add_argument("--policies", default="", help="policy specs to run first with eval/run_matrix.py, into OUT/runs")
    p.add_argument("--matrix-args", default="", help='options for that run, e.g. "--families negation --seeds 2"')
    p.add_argument("--clips", type=int, default=ClipConfig.count, help="replayed clips per policy (0: none)")
    p.add_argument("--clip-size", type=int, default=ClipConfig.size, help="clip frame side in pixels")
    p.add_argument("--clip-every", type=int, default=ClipConfig.every, help="keep every Nth control step")
    p.add_argument("--replay-image-size", type=int, default=MatrixConfig.image_size,
                   help="camera size to replay runs that have no run.json at (their --image-size); "
                        "runs with one use the recorded value")
    a = p.parse_args(argv)
    if a.clips < 0 or a.clip_size < 16 or a.clip_every < 1 or a.replay_image_size < 16:
        p.error("--clips must be >= 0, --clip-size and --replay-image-size >= 16, and --clip-every >= 1")
    return ReportConfig(tuple(a.inputs), a.out, ClipConfig(a.clips, a.clip_size, a.clip_every), a.policies,
                        a.matrix_args, a.replay_image_size)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cfg = parse_args(argv)
    try:
        path = build_report(cfg, ["python", "-m", "eval.html_report", *argv])
    except ValueError as exc:  # a missing input, a foreign CSV, a failed grid: one line, nothing overwritten
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
