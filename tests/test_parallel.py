"""--workers N, --num-envs N and both (the vector env's envs in worker processes): the same per-episode outcomes as
one process; kill -9 + --resume loses nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from eval.results import KEY_COLUMNS
from eval.run_matrix import MatrixConfig, run
from leisaac_tasks.scenarios import Scenario

ROOT = Path(__file__).resolve().parents[1]
CELLS = "H,H;H,-;-,H;P,-"
OUTCOME = ["cheese", "bread", "behaviour", "outcome_label", "success", "steps"]


def _outcomes(csv_path: Path) -> pd.DataFrame:
    df = pd.read_csv(csv_path, keep_default_na=False)
    assert not df.duplicated(list(KEY_COLUMNS)).any()
    return df.set_index(list(KEY_COLUMNS))[OUTCOME].sort_index()


def _cfg(out: Path, **kw) -> MatrixConfig:
    return MatrixConfig(policies=("expert", "blind"), scenarios=(Scenario.parse("H,H"), Scenario.parse("H,-")),
                        families=(), seeds=(0, 1), out=out, **kw)


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> pd.DataFrame:
    return _outcomes(run(_cfg(tmp_path_factory.mktemp("serial")), progress=False))


@pytest.mark.parametrize("how", [{"workers": 2}, {"num_envs": 3}, {"num_envs": 3, "workers": 2}],
                         ids=["workers-2", "num-envs-3", "num-envs-3-in-2-processes"])
def test_parallel_runs_give_the_same_outcomes_as_one_process(serial, tmp_path, how):
    parallel = _outcomes(run(_cfg(tmp_path / "run", **how), progress=False))
    assert len(serial) == len(parallel) == 24
    pd.testing.assert_frame_equal(serial, parallel)


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "eval" / "run_matrix.py"), "--policies", "blind", "--families", "none",
            "--scenarios", CELLS, "--seeds", "3", "--workers", "2", "--out", str(out), *extra]


def _gone(pgid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_kill_9_then_resume_completes_the_grid_without_duplicates(tmp_path):
    out = tmp_path / "run"
    csv_path = out / "episodes.csv"
    proc = subprocess.Popen(_cli(out), cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not csv_path.exists() or len(csv_path.read_text().splitlines()) < 8):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # the parent only: its workers must notice and leave
    proc.wait()
    written = len(csv_path.read_text().splitlines()) - 1
    assert 7 <= written < 36, "the kill should land mid-grid"
    assert _gone(proc.pid, within=10), "orphaned workers outlived the killed parent"
    # Everything is dead now: the complete rows on disk are what the kill left (a half-written last row aside).
    before = csv_path.read_bytes()
    before = before[: before.rfind(b"\n") + 1]
    assert before.count(b"\n") >= 1 + 7

    resumed = subprocess.run(_cli(out, "--resume"), cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = csv_path.read_bytes()
    assert after[: len(before)] == before, "rows written before the kill changed on resume"  # byte for byte
    assert after.count(b"\n") == 1 + 4 * 3 * 3  # the resume only appended the missing rows
    after_resume = _outcomes(csv_path)
    assert len(after_resume) == 4 * 3 * 3  # scenarios x seed instructions x seeds: nothing missing
    reference = _outcomes(run(MatrixConfig(policies=("blind",), families=(), seeds=(0, 1, 2), out=tmp_path / "ref",
                                           scenarios=tuple(map(Scenario.parse, CELLS.split(";")))), progress=False))
    pd.testing.assert_frame_equal(after_resume, reference)
