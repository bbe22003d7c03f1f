"""The grid end to end: CSV rows as episodes finish, resume, bad inputs, and the seed's phenomenon."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from eval import metrics
from eval.results import COLUMNS, ResultStore, ResultsFileError
from eval.run_matrix import MatrixConfig, parse_args, run
from leisaac_tasks.scenarios import SEED_SCENARIOS, Scenario
from policies.registry import make_policy

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp_path, **kw):
    base = dict(policies=("expert", "blind"), scenarios=(Scenario.parse("H,H"), Scenario.parse("P,H")),
                families=(), seeds=(0,), out=tmp_path / "run")
    return MatrixConfig(**{**base, **kw})


def test_small_grid_writes_rows_summary_and_plots(tmp_path):
    csv_path = run(_cfg(tmp_path), progress=False)
    df = pd.read_csv(csv_path, keep_default_na=False)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 2 * 2 * 3  # policies x scenarios x seed instructions
    assert set(df["error"]) == {""}
    for name in ("summary.csv", "summary.md", "heatmap_expert.png", "heatmap_blind.png", "metrics.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0


def test_resume_skips_finished_episodes_and_refuses_to_overwrite(tmp_path, capsys):
    cfg = _cfg(tmp_path, policies=("blind",))
    csv_path = run(cfg, progress=False)
    first = csv_path.read_text()
    # Simulate a kill mid-write: half a row at the end.
    csv_path.write_text(first + "blind,mujoco,(H")
    with pytest.raises(ResultsFileError, match="pass --resume"):
        run(cfg, progress=False)
    run(MatrixConfig(**{**cfg.__dict__, "resume": True}), progress=False)
    assert csv_path.read_text() == first  # partial row dropped, nothing rerun, nothing lost
    assert f"nothing left to run: 6 episodes already in {csv_path}" in capsys.readouterr().out

    more = MatrixConfig(**{**cfg.__dict__, "resume": True, "seeds": (0, 1)})
    run(more, progress=False)
    df = pd.read_csv(csv_path, keep_default_na=False)
    assert len(df) == 2 * 3 * 2 and not df.duplicated(["policy", "scenario", "instruction", "seed"]).any()


def test_foreign_csv_is_rejected(tmp_path):
    path = tmp_path / "episodes.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsFileError, match="not a ChefMate episodes file"):
        ResultStore(path, resume=True)


def test_unknown_policy_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown policy .nope.; choose from .*blind, expert"):
        make_policy("nope")


@pytest.mark.parametrize("args,message", [
    (["--policies", "nope", "--families", "none", "--scenarios", "H,H"], "unknown policy 'nope'"),
    (["--scenarios", "H,Q"], "unknown scenario 'H,Q'"),
    (["--families", "paraphrase,rhyme"], "unknown perturbation family 'rhyme'"),
])
def test_cli_bad_inputs_exit_2_with_one_message(tmp_path, args, message):
    proc = subprocess.run([sys.executable, str(ROOT / "eval" / "run_matrix.py"), "--out", str(tmp_path / "o"), *args],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "episodes.csv").exists()  # nothing written for a rejected config


def test_cli_bad_instruction_file(tmp_path):
    bad = tmp_path / "extra.yaml"
    bad.write_text("instructions:\n  - text: hi\n    family: rhyme\n    intent: none\n")
    with pytest.raises(SystemExit) as exc:
        parse_args(["--instructions-file", str(bad)])
    assert exc.value.code == 2


@pytest.fixture(scope="module")
def seed_grid(tmp_path_factory):
    """The issue's bar: 8 scenarios x the seed's 3 instructions x 5 seeds, both baselines (~30 s)."""
    out = tmp_path_factory.mktemp("seed_grid")
    csv_path = run(MatrixConfig(policies=("expert", "words", "blind", "idle"), scenarios=SEED_SCENARIOS, families=(),
                                seeds=tuple(range(5)), out=out), progress=False)
    return pd.read_csv(csv_path, keep_default_na=False)


def test_blind_baseline_reproduces_the_seed_table(seed_grid):
    blind = seed_grid[seed_grid.policy == "blind"]
    # Exactly, as the README says: one instruction-dependent episode in 120 must fail this.
    assert metrics.heuristic_agreement(blind).value == 1.0
    assert metrics.language_influence_index(blind).value == 0.0
    assert metrics.language_sensitivity(blind).value == 0.0
    hh = blind[blind.scenario == "(H,H)"]
    assert set(hh.behaviour) == {"picked_cheese", "picked_bread"}  # either one, at random


def test_expert_follows_language_and_is_separated_from_blind(seed_grid):
    expert = seed_grid[seed_grid.policy == "expert"]
    blind = seed_grid[seed_grid.policy == "blind"]
    assert metrics.success_rate(expert).value >= 0.95
    assert metrics.negation_compliance(expert).value == 1.0
    e, b = metrics.language_influence_index(expert), metrics.language_influence_index(blind)
    assert e.ci_low > b.ci_high  # CIs don't overlap
    assert metrics.success_rate(blind).value < metrics.success_rate(expert).value


def test_idle_floor_and_expert_ceiling_on_the_honest_metrics(seed_grid):
    """The metrics issue's bar: inaction scores 0 where acting is required, the expert 1, blind 0 sensitivity."""
    summary = metrics.summarize(seed_grid, n_boot=200).set_index("policy")
    assert summary.loc["idle", "success_act"] == 0.0
    assert summary.loc["idle", "language_sensitivity"] == 0.0
    assert summary.loc["expert", "success_act"] == 1.0
    assert summary.loc["expert", "language_sensitivity"] > 0.9
    assert summary.loc["expert", "wording_sensitivity"] < 0.05
    assert summary.loc["blind", "language_sensitivity"] == 0.0
    assert (summary["errors"] == 0).all()
    # The old success rate let idle hide near the baselines; success_act separates them.
    assert summary.loc["idle", "success"] > 0.5


def test_words_follows_object_words_and_ignores_not(seed_grid):
    """Pinned per kind of meaning change, as the blind baseline is: the object decides (1.00), "not" changes
    nothing (0.00), so the headline, the weakest kind, is 0 while its success where it must act is the expert's."""
    words = seed_grid[seed_grid.policy == "words"]
    kinds = metrics.sensitivity_by_kind(words)
    assert {k: m.value for k, m in kinds.items()} == {"object": 1.0, "negation": 0.0}
    assert metrics.language_sensitivity(words).value == 0.0
    assert metrics.success_act(words).value == 1.0
    # "do not pick up the cheese" with cheese present: picked wherever it is in the holder ((H,H), (H,–), (H,P)),
    # left where it is already on the plate ((P,H), (P,P), (P,–)).
    assert metrics.negation_compliance(words).value == 0.5
    blind = metrics.sensitivity_by_kind(seed_grid[seed_grid.policy == "blind"])
    assert {k: m.value for k, m in blind.items()} == {"object": 0.0, "negation": 0.0}
