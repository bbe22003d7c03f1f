"""The circuit breaker: a policy whose server is down costs three episodes, not every remaining one."""

from __future__ import annotations

import pandas as pd

from eval.run_matrix import main
from policies.base import Abilities, PolicyError
from policies.registry import POLICIES


class DownServer:
    """Stands in for a remote policy whose server stopped answering: every action raises PolicyError."""

    name, abilities = "down", Abilities()
    calls = 0
    error: Exception = PolicyError("no reply from the GR00T server at 127.0.0.1:1 (3 attempts); start it with "
                                   "python -m policies.gr00t.serve")

    def reset(self, instruction: str, seed: int) -> None:
        pass

    @property
    def done(self) -> bool:
        return False

    def act(self, observation, info):
        type(self).calls += 1
        raise self.error


def test_a_dead_server_trips_the_breaker_and_the_run_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(POLICIES, "down", f"{__name__}:DownServer")  # registered for this test only
    DownServer.calls = 0
    out = tmp_path / "grid"
    code = main(["--policies", "down,expert", "--scenarios", "H,H;H,-", "--families", "none", "--seeds", "2",
                 "--image-size", "32", "--max-steps", "40", "--out", str(out)])
    assert code == 3
    assert DownServer.calls == 3  # contacted for three episodes, then never again
    rows = pd.read_csv(out / "episodes.csv", keep_default_na=False)
    down, expert = rows[rows.policy == "down"], rows[rows.policy == "expert"]
    assert len(down) == 12 and (down.behaviour == "policy_error").all()
    assert (down.error.str.contains("circuit breaker tripped")).sum() == 9
    assert len(expert) == 12 and (expert.error == "").all()  # the other policy goes on
    err = capsys.readouterr().err
    assert err.count("circuit breaker: down failed 3 episodes in a row") == 1
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("policy")
    assert int(summary.loc["down", "errors"]) == 12 and float(summary.loc["down", "success"]) == 0.0


def test_a_breaker_of_0_never_trips(tmp_path, monkeypatch):
    monkeypatch.setitem(POLICIES, "down", f"{__name__}:DownServer")
    DownServer.calls = 0
    code = main(["--policies", "down", "--scenarios", "H,H", "--families", "none", "--seeds", "2",
                 "--image-size", "32", "--max-steps", "40", "--breaker", "0", "--out", str(tmp_path / "g")])
    assert code == 4 and DownServer.calls == 6  # never tripped; the errors still fail the run


def test_the_breaker_trips_in_the_vectorized_grid_too(tmp_path, capsys, monkeypatch):
    """--num-envs: rows pass the same breaker; once it trips, queued episodes of that policy are recorded without
    being started. At most the episodes already in flight (one per other env) reach the server after the trip."""
    monkeypatch.setitem(POLICIES, "down", f"{__name__}:DownServer")
    DownServer.calls = 0
    out = tmp_path / "vec"
    code = main(["--policies", "down,expert", "--scenarios", "H,H;H,-", "--families", "none", "--seeds", "2",
                 "--image-size", "32", "--max-steps", "40", "--num-envs", "2", "--out", str(out)])
    assert code == 3
    assert 3 <= DownServer.calls <= 4
    rows = pd.read_csv(out / "episodes.csv", keep_default_na=False)
    down, expert = rows[rows.policy == "down"], rows[rows.policy == "expert"]
    assert len(down) == 12 and (down.behaviour == "policy_error").all()
    assert (down.error.str.contains("circuit breaker tripped")).sum() == 12 - DownServer.calls
    assert len(expert) == 12 and (expert.error == "").all()
    assert capsys.readouterr().err.count("circuit breaker: down failed 3 episodes in a row") == 1


def test_the_breaker_trips_under_workers_with_an_unregistered_policy_by_import_path(tmp_path, capsys):
    """--workers 2 with ``module:Class`` (no registration: each spawned worker imports it by path). At most the
    episodes in flight when the breaker trips reach the dead server; the rest are recorded without a worker."""
    out = tmp_path / "workers"
    code = main(["--policies", f"{__name__}:DownServer,expert", "--scenarios", "H,H;H,-", "--families", "none",
                 "--seeds", "2", "--image-size", "32", "--max-steps", "40", "--workers", "2", "--out", str(out)])
    assert code == 3
    rows = pd.read_csv(out / "episodes.csv", keep_default_na=False)
    down = rows[rows.policy == f"{__name__}:DownServer"]
    assert len(down) == 12 and (down.behaviour == "policy_error").all()
    assert 8 <= down.error.str.contains("circuit breaker tripped").sum() <= 9
    assert (rows[rows.policy == "expert"].error == "").all()


def test_an_import_path_that_does_not_import_is_one_clear_line(tmp_path, capsys):
    code = main(["--policies", "nosuchpkg.policies:Mine", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot import nosuchpkg.policies:Mine" in err and not (tmp_path / "x").exists()


class Crashes(DownServer):
    """A policy with a bug: every action raises a plain RuntimeError, not a PolicyError."""

    name = "crashes"
    calls = 0
    error = RuntimeError("index 7 is out of bounds")


def test_any_exception_trips_the_breaker_with_one_traceback(tmp_path, capsys):
    """Every exception a policy raises counts, not only PolicyError: before, 30 tracebacks and exit 0."""
    Crashes.calls = 0
    code = main(["--policies", f"{__name__}:Crashes", "--scenarios", "H,H;H,-", "--families", "none", "--seeds",
                 "3", "--image-size", "32", "--max-steps", "40", "--out", str(tmp_path / "g")])
    assert code == 3 and Crashes.calls == 3
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1 and err.count("policy_error: RuntimeError: index 7") == 2


def test_a_run_with_some_errors_exits_4_and_marks_the_row_incomplete(tmp_path, capsys):
    """Errors below the breaker's limit: the run finishes, but says so and exits non-zero."""
    Crashes.calls = 0
    out = tmp_path / "g"
    code = main(["--policies", f"expert,{__name__}:Crashes", "--scenarios", "H,H", "--families", "none",
                 "--seeds", "1", "--image-size", "32", "--max-steps", "40", "--breaker", "0", "--out", str(out)])
    assert code == 4
    assert f"{__name__}:Crashes: 3" in capsys.readouterr().err
    summary = (out / "summary.md").read_text()
    assert f"| {__name__}:Crashes (incomplete: 3 errors) |" in summary and "| expert |" in summary
