"""The multi-policy HTML report from a real small grid: self-contained HTML, replayed clips, merged runs, bad input,
and a headless Chromium screenshot that shows the figures."""

import base64
import io
import shutil
import sys
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from eval.html_report import RunInput, load_runs
from eval.html_report import main as report_main
from eval.provenance import read_manifest, write_manifest
from eval.run_matrix import MatrixConfig, run
from eval.screenshot import ScreenshotError, find_chromium, screenshot
from leisaac_tasks.scenarios import Scenario
from policies.registry import make_policy

POLICIES = ("expert", "blind")
RUN_ARGV = ["eval/run_matrix.py", "--policies", "expert,blind", "--scenarios", "H,H;P,H", "--families", "none",
            "--seeds", "1", "--image-size", "64"]
# matplotlib's first two bar colours (tab:blue, tab:orange) and RdYlGn at 1.0: the figures' own pixels.
BAR_COLOURS = {"expert bars": (31, 119, 180), "blind bars": (255, 127, 14)}
HEATMAP_GREEN = (0, 104, 55)


class _Page(HTMLParser):
    """Collects what the checks need: image sources, metric-table rows, <pre> text, clip captions, any links."""

    def __init__(self):
        super().__init__()
        self.images, self.policy_rows, self.pre, self.captions, self.external = [], [], [], [], []
        self.policy_names = []
        self._in = None
        self._text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "br" and self._in:
            self._text.append(" ")
        if tag == "img":
            self.images.append(a["src"])
        if tag in ("link", "script", "iframe") or (tag in ("video", "source") and "src" in a):
            self.external.append(tag)
        if tag == "tr" and a.get("class") == "policy-row":
            self.policy_names.append(a["data-policy"])
        if tag == "tr" and a.get("class") == "policy-row" or tag in ("pre", "figcaption"):
            self._in, self._text = tag, []

    def handle_endtag(self, tag):
        if tag == self._in:
            text = " ".join("".join(self._text).split())
            {"tr": self.policy_rows, "pre": self.pre, "figcaption": self.captions}[tag].append(text)
            self._in = None

    def handle_data(self, data):
        if self._in:
            self._text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def _decoded_images(page: _Page) -> list[Image.Image]:
    images = []
    for src in page.images:
        assert src.startswith("data:image/") and ";base64," in src, src[:60]
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        image.load()
        images.append(image)
    return images


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grid") / "run"
    cfg = MatrixConfig(policies=POLICIES, scenarios=(Scenario.parse("H,H"), Scenario.parse("P,H")), families=(),
                       seeds=(0,), image_size=64, out=out)
    run(cfg, progress=False, argv=RUN_ARGV + ["--out", str(out)])  # run_matrix writes run.json itself
    return out


@pytest.fixture(scope="module")
def report(grid, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert report_main([str(grid), "--out", str(out), "--clips", "2", "--clip-size", "64"]) == 0
    return out / "report.html"


def test_manifest_records_command_versions_and_policy_specs(grid):
    manifest = read_manifest(grid)
    assert manifest["argv"][:2] == RUN_ARGV[:2]
    assert manifest["versions"]["mujoco"] == metadata.version("mujoco")
    assert manifest["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert manifest["policies"]["blind"] == {"language_blind": True, "privileged": True, "cameras": []}
    assert manifest["policies"]["expert"]["language_blind"] is False
    # A camera policy replays only on the images it was run with: the size comes from the recorded command.
    run = load_runs([grid])[0]
    assert run.image_size(unrecorded=200) == 64
    assert RunInput(run.csv, run.label, None).image_size(unrecorded=96) == 96


def test_report_is_self_contained_with_a_row_per_policy_clips_and_provenance(grid, report):
    page = _parse(report)
    assert page.external == []  # no <link>, <script>, remote media: one file carries everything
    images = _decoded_images(page)
    formats = [im.format for im in images]
    assert formats.count("PNG") == 1 + len(POLICIES)  # bars + a heatmap per policy
    assert formats.count("GIF") == 2 * len(POLICIES)
    assert all(im.width >= 64 and im.height >= 64 for im in images)
    assert all(getattr(im, "n_frames", 1) > 5 for im in images if im.format == "GIF")
    for name in ("metrics.png", "heatmap_expert.png", "heatmap_blind.png", "summary.csv"):
        assert (report.parent / name).stat().st_size > 0

    assert sorted(page.policy_names) == sorted(POLICIES)
    rows = dict(zip(page.policy_names, page.policy_rows))
    assert "language-blind control" in rows["blind"] and "language-conditioned" in rows["expert"]
    assert "should be 0" not in rows["blind"]  # the blind control's LII is exactly 0 on paired seeds

    commands = " ".join(page.pre)
    assert "eval/run_matrix.py --policies expert,blind" in commands
    assert f"python -m eval.html_report {grid} --out" in commands
    assert f"torch {metadata.version('torch')}" in report.read_text()

    # Scripted policies replay exactly; failures come first in each policy's sample.
    assert len(page.captions) == 2 * len(POLICIES)
    assert all("replayed: same outcome" in c for c in page.captions)
    episodes = pd.read_csv(grid / "episodes.csv", keep_default_na=False)
    blind_failures = int((episodes[episodes.policy == "blind"]["success"] == 0).sum())
    assert blind_failures > 0  # (H,H) under the bread instruction: the blind policy picks by seed
    blind_captions = page.captions[2:]
    assert [c.split(": ")[0].split()[-1] for c in blind_captions][:min(2, blind_failures)] == \
        ["failure"] * min(2, blind_failures)


def test_screenshot_is_not_blank_and_shows_the_figures(report, tmp_path):
    if find_chromium() is None:
        pytest.skip("no chromium on PATH (CI installs Debian's `chromium` with apt; the install failed or was "
                    "skipped), so the report cannot be rendered here")
    try:
        png = screenshot(report, tmp_path / "shot.png", width=1100, height=3000)
    except ScreenshotError as exc:
        pytest.fail(str(exc))
    shot = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 1000
    assert shot.std() > 20

    def near(colour):
        return np.abs(shot - np.array(colour)).max(axis=-1) <= 8

    for what, colour in BAR_COLOURS.items():
        assert near(colour).sum() > 2000, f"{what} not visible"
    assert near(HEATMAP_GREEN).sum() > 5000, "heatmap not visible"
    # The bar chart's band of rows is a drawn figure, not a flat placeholder.
    rows = np.nonzero(near(BAR_COLOURS["expert bars"]).any(axis=1))[0]
    band = shot[rows.min(): rows.max() + 1]
    assert band.std() > 40 and len(np.unique(band.reshape(-1, 3), axis=0)) > 100


def test_runs_with_the_same_policies_merge_and_unbuildable_policies_get_a_note(grid, tmp_path):
    a, b = tmp_path / "freeze_a", tmp_path / "freeze_b"
    shutil.copytree(grid, a)
    shutil.copytree(grid, b)
    episodes = pd.read_csv(b / "episodes.csv", keep_default_na=False, dtype={"instruction": str})
    episodes["policy"] = episodes["policy"].replace("expert", "vla:/nonexistent/checkpoint")
    # Misreport one blind failure: its replay must say it differs.
    first_failure = episodes.index[(episodes.policy == "blind") & (episodes.success == 0)][0]
    true_behaviour = episodes.at[first_failure, "behaviour"]
    episodes.at[first_failure, "behaviour"] = "picked_both"
    episodes.to_csv(b / "episodes.csv", index=False)

    # A remote policy's failed episode in run a: reported as text, never replayed.
    errored = pd.read_csv(a / "episodes.csv", keep_default_na=False, dtype={"instruction": str})
    errored.loc[0, ["behaviour", "success", "error"]] = ["policy_error", 0, "PolicyError: server at :5555 is down"]
    errored.to_csv(a / "episodes.csv", index=False)

    out = tmp_path / "report"
    assert report_main([str(a), str(b), "--out", str(out), "--clips", "1", "--clip-size", "48"]) == 0
    page = _parse(out / "report.html")
    assert set(page.policy_names) == {"expert", "blind [freeze_a]", "blind [freeze_b]", "vla:/nonexistent/checkpoint"}
    text = (out / "report.html").read_text()
    assert "no clips: vla:/nonexistent/checkpoint could not be rebuilt here" in text
    assert sum("replayed: differs" in c for c in page.captions) == 1
    assert f"behaviour picked_both→{true_behaviour}" in " ".join(page.captions)
    assert "1 episode(s) ended in policy_error (not replayed), e.g.: PolicyError: server at :5555 is down" in text
    assert len(page.captions) == 3  # expert (its error row skipped) and both blind runs; none for the vla
    _decoded_images(page)


def test_policies_option_runs_the_grid_first(tmp_path):
    out = tmp_path / "report"
    args = ["--policies", "blind", "--matrix-args", "--scenarios 'H,-' --families none --seeds 1 --image-size 64",
            "--out", str(out), "--clips", "0"]
    assert report_main(args) == 0
    assert len(pd.read_csv(out / "runs" / "episodes.csv")) == 3
    page = _parse(out / "report.html")
    assert page.policy_names == ["blind"]
    assert page.captions == []


def test_bad_inputs_are_one_clear_error(tmp_path, capsys):
    assert report_main([str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is neither an episodes CSV nor a run directory" in err
    foreign = tmp_path / "other.csv"
    foreign.write_text("policy,score\nx,1\n")
    assert report_main([str(foreign), "--out", str(tmp_path / "out")]) == 2
    assert "is not a ChefMate episodes file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_a_resume_keeps_the_first_command_and_adds_its_policies(tmp_path):
    write_manifest(tmp_path, ["eval/run_matrix.py", "--policies", "blind", "--image-size", "64"],
                   {"blind": make_policy("blind")})
    write_manifest(tmp_path, ["eval/run_matrix.py", "--policies", "expert", "--resume"],
                   {"expert": make_policy("expert")})
    manifest = read_manifest(tmp_path)
    assert manifest["argv"][-1] == "64"  # the rows so far were made by the first command
    assert set(manifest["policies"]) == {"blind", "expert"}
    assert [r["command"] for r in manifest["resumes"]] == ["eval/run_matrix.py --policies expert --resume"]


def test_an_all_error_run_scores_nothing_and_is_marked_incomplete(grid, tmp_path):
    """A server that was down for the whole run must not look compliant: every error counts against it (0 where a
    score is good, the worst value where it is bad), errors = rows, and the row says it is incomplete."""
    run_dir = tmp_path / "down"
    run_dir.mkdir()
    episodes = pd.read_csv(grid / "episodes.csv", keep_default_na=False, dtype={"instruction": str})
    episodes = episodes.assign(policy="gr00t:127.0.0.1:5999", behaviour="policy_error", success=0,
                               heuristic_agreement=0, error="PolicyError: no server at 127.0.0.1:5999")
    episodes.to_csv(run_dir / "episodes.csv", index=False)
    out = tmp_path / "report"
    assert report_main([str(run_dir), "--out", str(out), "--clips", "0"]) == 0
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert len(summary) == 1 and int(summary.loc[0, "errors"]) == len(episodes)
    for column in ("success", "success_act", "success_refrain", "language_sensitivity", "lii", "negation"):
        assert float(summary.loc[0, column]) == 0.0, column
    assert summary.loc[0, "wording_sensitivity"] == "n/a"  # this grid has no rewordings to compare
    assert summary.loc[0, "heuristic"] == "n/a"  # descriptive: no behaviour to describe
    assert f"gr00t:127.0.0.1:5999 (incomplete: {len(episodes)} errors)" in (out / "report.html").read_text()
