"""ProcessVecEnv: a worker's failure reaches the caller as one error naming the worker, with its traceback."""

import os
import signal

import numpy as np
import pytest

from leisaac_tasks.process_vec_env import ProcessVecEnv, WorkerError
from leisaac_tasks.scenarios import Scenario
from leisaac_tasks.vec_env import make_vec_env


@pytest.fixture
def env():
    env = ProcessVecEnv(3, workers=2, image_size=32)
    yield env
    env.close()


def test_envs_are_split_into_contiguous_blocks(env):
    assert env.workers == 2 and env.backend == "mujoco"
    env.reset_envs([2, 0], [Scenario.parse("H,-"), Scenario.parse("-,H")], ["pick up the cheese"] * 2, [5, 6])
    env.step(np.zeros((3, 6)), np.array([True, False, True]))
    assert env.observations([2, 0])["state"].shape == (2, 6)
    assert env.info(0)["scenario"] == Scenario.parse("-,H").label


def test_infos_come_from_every_worker_in_the_order_asked(env):
    """One request per worker, the rows put back in the caller's order: what the per-env calls return."""
    env.reset_envs([0, 1, 2], [Scenario.parse(s) for s in ("-,H", "H,-", "H,H")], ["pick up the cheese"] * 3,
                   [1, 2, 3])
    env.step(np.zeros((3, 6)))
    infos = env.infos([2, 0, 1])
    assert [i["scenario"] for i in infos] == [Scenario.parse(s).label for s in ("H,H", "-,H", "H,-")]
    for i, info in zip([2, 0, 1], infos):
        np.testing.assert_array_equal(info["ee_pos"], env.info(i)["ee_pos"])
    assert env.infos([]) == []


def test_an_error_inside_a_worker_is_raised_with_its_traceback(env):
    with pytest.raises(WorkerError, match=r"(?s)MuJoCo worker 1 failed:.*Traceback"):
        env.reset_envs([2], ["not a scenario"], ["pick up the cheese"], [0])


def test_a_killed_worker_is_reported_not_waited_on(env):
    os.kill(env._procs[0].pid, signal.SIGKILL)
    env._procs[0].join(timeout=10)
    with pytest.raises(WorkerError, match="MuJoCo worker 0 failed: the process exited"):
        env.step(np.zeros((3, 6)))


def test_isaaclab_takes_no_workers():
    with pytest.raises(ValueError, match="leave --workers out"):
        make_vec_env("isaaclab", 4, workers=2)


def test_round_trips_time_each_method_against_its_busiest_worker(env):
    """Each call adds the caller's wall time and the workers' time inside the env: the busiest worker's is at
    least the mean's and at most the wall time, since the caller waited for it."""
    env.reset_envs([0, 1, 2], [Scenario.parse("H,H")] * 3, ["pick up the cheese"] * 3, [1, 2, 3])
    for _ in range(3):
        env.step(np.zeros((3, 6)))
    env.observations([0, 2])
    steps, looks = env.round_trips["step"], env.round_trips["observations"]
    assert (steps.calls, looks.calls, env.round_trips["reset_envs"].calls) == (3, 1, 1)
    for trips in env.round_trips.values():
        assert 0 < trips.mean_busy_s <= trips.busiest_s <= trips.wall_s
    assert env.infos([]) == [] and "infos" not in env.round_trips  # no request sent, nothing timed
