"""The Isaac Lab backend on a GPU: placement, forward kinematics and a scripted pick against the MuJoCo backend.
Skipped without an NVIDIA GPU or without the kit-less Isaac Lab stack (requirements-isaaclab.txt)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def _gpu_stack_missing() -> str | None:
    for module in ("isaaclab", "isaaclab_newton", "isaaclab_so101", "warp"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (see requirements-isaaclab.txt)"
    import torch

    return None if torch.cuda.is_available() else "no CUDA GPU"


_missing = _gpu_stack_missing()


@pytest.fixture(scope="module")
def vec():
    if _missing:
        pytest.skip(_missing)
    from leisaac_tasks.isaaclab.vec_env import IsaacLabVecEnv

    env = IsaacLabVecEnv(4, cameras=("front",), image_size=64)
    yield env
    env.close()


def test_gripper_follows_the_mjcf_kinematics(vec):
    import torch

    from leisaac_tasks.isaaclab import so101_usd
    from leisaac_tasks.kinematics import SO101Kinematics

    kin = SO101Kinematics(vec.spec.robot)
    q = np.random.default_rng(0).uniform(vec._sim_low * 0.6, vec._sim_high * 0.6, (vec.num_envs, 6))
    vec.robot.write_joint_position_to_sim_index(position=vec._tensor(so101_usd.sim_to_usd(q)),
                                                joint_ids=vec._joint_ids,
                                                env_ids=torch.arange(vec.num_envs, device=vec.device))
    body = vec.robot.data.body_link_pose_w.torch[:, vec._gripper].double().cpu().numpy()
    for i in range(vec.num_envs):
        np.testing.assert_allclose(body[i, :3] - vec.origins[i], kin.link_pose(q[i, :5])[0], atol=1e-4)


def test_an_expert_pick_lands_the_cheese_on_the_plate_and_rows_match_the_csv(vec):
    from leisaac_tasks.instructions import SEED_INSTRUCTIONS
    from eval.results import COLUMNS
    from eval.run_matrix import MatrixConfig
    from eval.runner import Episode
    from eval.vector_runner import run_vectorized
    from leisaac_tasks.scenarios import Scenario

    episodes = [Episode("expert", Scenario.parse("H,-"), SEED_INSTRUCTIONS[0], 0),
                Episode("blind", Scenario.parse("P,H"), SEED_INSTRUCTIONS[2], 0)]
    rows: list[dict] = []
    run_vectorized(MatrixConfig(backend="isaaclab"), episodes, rows.append, num_envs=2, env=vec)
    by_policy = {r["policy"]: r for r in rows}
    assert all(set(r) == set(COLUMNS) and r["backend"] == "isaaclab" for r in rows)
    assert by_policy["expert"]["outcome_label"] == "cheese=on_plate,bread=absent"
    assert by_policy["blind"]["behaviour"] == "none"  # something on the plate: the seed heuristic stops
