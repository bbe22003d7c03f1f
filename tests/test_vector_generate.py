"""Vectorized demo generation (MujocoVecEnv, 3 envs; the same envs in 2 worker processes, ProcessVecEnv; and those
with the expert planning in a pool of 2) writes what the one-env generator writes for the same seeds."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from eval.vector_runner import PerEnvActor
from leisaac_tasks.dataset import load_dataset, read_journal
from training.demos.generate import GenerateConfig, generate, main
from training.demos.vector_generate import AttemptScheduler

SIZE = 32
plan_ahead = PerEnvActor.plan_ahead
# Two cells, so the cell of each attempt depends on the earlier ones' results. With this seed and step limit the
# expert's bread attempt 1 runs too long and is rejected, so attempts 2 and 3 change cells: the vectorized run,
# which guessed ahead, has to recover from its wrong guesses.
RUN = dict(recipe="disambiguating", episodes=3, image_size=SIZE, seed=1, max_steps=300)
PART = "disambiguating"


def _frames(root: Path) -> dict[str, np.ndarray]:
    table = pq.ParquetDataset(sorted((root / "data").rglob("*.parquet"))).read().to_pandas()
    return {col: np.stack(table[col].to_numpy()) for col in ("action", "observation.state", "episode_index",
                                                               "frame_index", "task_index")}


def _journal(root: Path) -> list[dict]:
    return [asdict(a) for a in read_journal(root)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("vecdemos")
    generate(GenerateConfig(out=out / "single", **RUN), progress=False)
    generate(GenerateConfig(out=out / "vector", num_envs=3, **RUN), progress=False)
    generate(GenerateConfig(out=out / "processes", num_envs=3, workers=2, **RUN), progress=False)
    # The expert's plans made in a pool while the other envs step: each env waits, unstepped, for its own.
    planned = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PerEnvActor, "plan_ahead", lambda self, slot, *a: planned.append(slot) or plan_ahead(self, slot, *a))
        generate(GenerateConfig(out=out / "planned", num_envs=3, workers=2, plan_workers=2, **RUN), progress=False)
    assert len(planned) >= RUN["episodes"], "the pool planned no attempt: 'planned' would test nothing new"
    return {name: out / name / PART for name in ("single", "vector", "processes", "planned")}


VECTORIZED = pytest.mark.parametrize("kind", ["vector", "processes", "planned"])


@VECTORIZED
def test_same_attempts_outcomes_and_journal_as_one_env(runs, kind):
    single, vector = _journal(runs["single"]), _journal(runs[kind])
    assert sum(a["success"] for a in single) == RUN["episodes"]
    assert any(not a["success"] for a in single), "no rejected attempt: the test no longer exercises re-planning"
    assert vector == single


@VECTORIZED
def test_same_actions_and_states_as_one_env(runs, kind):
    single, vector = _frames(runs["single"]), _frames(runs[kind])
    assert single["action"].shape[0] == sum(a.frames for a in read_journal(runs["single"]) if a.success)
    for col in single:
        np.testing.assert_array_equal(vector[col], single[col], err_msg=col)


@VECTORIZED
def test_vector_dataset_loads_with_lerobot(runs, kind):
    single, vector = load_dataset(runs["single"]), load_dataset(runs[kind])
    assert len(vector) == len(single) and vector.meta.total_episodes == RUN["episodes"]
    for index in (0, len(vector) - 1):
        for key in vector.meta.video_keys:
            assert vector[index][key].shape == (3, SIZE, SIZE)
            assert torch.equal(vector[index][key], single[index][key])


def test_resume_continues_to_the_same_dataset(runs, tmp_path):
    out = tmp_path / "resumed"
    generate(GenerateConfig(out=out, num_envs=3, **{**RUN, "episodes": 1}), progress=False)
    generate(GenerateConfig(out=out, num_envs=2, resume=True, **RUN), progress=False)
    assert _journal(out / PART) == _journal(runs["single"])
    np.testing.assert_array_equal(_frames(out / PART)["action"], _frames(runs["single"])["action"])


def test_scheduler_runs_the_next_cell_for_certain_and_drops_impossible_guesses():
    sched = AttemptScheduler(first=5, episodes=4, n_cells=2, budget=20, horizon=6)
    need = sched.need(kept=1)
    assert need[(5, 1)] == 1.0 and (5, 0) not in need  # attempt 5 runs cell kept % 2 = 1
    assert 0.0 < need[(6, 0)] < 1.0 and 0.0 < need[(6, 1)] < 1.0  # depends on attempt 5's result
    assert max(k for k, _ in need) == 10  # horizon


def test_unknown_vectorized_backend_is_one_clear_error(tmp_path, capsys):
    assert main(["--recipe", "seed", "--out", str(tmp_path / "x"), "--backend", "bullet", "--num-envs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no vectorized 'bullet' backend") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_workers_without_enough_envs_is_one_clear_error(tmp_path, capsys):
    assert main(["--recipe", "seed", "--out", str(tmp_path / "x"), "--workers", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --workers 4 spreads the mujoco backend's envs") and "--num-envs" in err
    assert "\n" not in err and not (tmp_path / "x").exists()


def test_plan_workers_without_parallel_envs_is_one_clear_error(tmp_path, capsys):
    assert main(["--recipe", "seed", "--out", str(tmp_path / "x"), "--plan-workers", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --plan-workers 4 plans for parallel envs") and "--num-envs" in err
    assert "\n" not in err and not (tmp_path / "x").exists()


def test_a_writer_error_stops_the_run_with_its_cause_and_keeps_what_was_written(runs, tmp_path, monkeypatch):
    """The writer runs on a thread of its own: an error there (a full disk, say) must end the run with its cause,
    not leave the envs stepping or hang, and the demos it saved before stay on disk, journal and all."""
    from leisaac_tasks.dataset import DemoWriter

    keep = DemoWriter.keep

    def keep_one_then_fail(self, attempt):
        if self.episodes >= 1:
            raise OSError("No space left on device")
        keep(self, attempt)

    monkeypatch.setattr(DemoWriter, "keep", keep_one_then_fail)
    with pytest.raises(RuntimeError, match=f"writing {PART} failed: No space left on device"):
        generate(GenerateConfig(out=tmp_path / "full", num_envs=3, **RUN), progress=False)
    journal = _journal(tmp_path / "full" / PART)
    assert [a for a in journal if a["episode_index"] is not None] == \
        [a for a in _journal(runs["single"]) if a["episode_index"] == 0]
    assert load_dataset(tmp_path / "full" / PART).meta.total_episodes == 1
