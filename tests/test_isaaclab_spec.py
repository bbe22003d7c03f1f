"""The Isaac Lab backend's CPU side: the spec translation against the spec and the MuJoCo backend, the SO-101
USD joint/base mapping against the MJCF (forward kinematics), the vectorized runner's rows against the sequential
runner's, and the batched VLA against the single-episode one. Nothing here imports isaaclab."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest

from eval.results import COLUMNS
from eval.run_matrix import MatrixConfig
from eval.runner import Episode, run_episode
from eval.vector_runner import run_vectorized
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.instructions import SEED_INSTRUCTIONS
from leisaac_tasks.isaaclab import so101_usd
from leisaac_tasks.isaaclab.description import (describe_scene, layout_poses, look_at_xyzw, matrix_to_xyzw,
                                                xyzw_to_wxyz)
from leisaac_tasks.layout import sample_layout
from leisaac_tasks.scenarios import Scenario
from leisaac_tasks.spec import DEFAULT_SCENE
from leisaac_tasks.vec_env import MujocoVecEnv
from policies.registry import make_policy
from policies.scripted import ScriptedExpert

SPEC = DEFAULT_SCENE.with_resolution(64, 48)
DESC = describe_scene(SPEC)


def _quat_close(a_wxyz, b_wxyz, tol=1e-6) -> bool:
    return abs(abs(float(np.dot(a_wxyz, b_wxyz))) - 1.0) < tol


def _geom_world(sim, name: str) -> tuple[np.ndarray, np.ndarray]:
    g = sim.model.geom(name).id
    return sim.data.geom_xpos[g].copy(), sim.model.geom_size[g].copy()


def test_prims_match_the_mujoco_scene(sim):
    """Every box the MuJoCo backend builds from the spec appears with the same size, colour, friction and place."""
    layout = sample_layout(sim.spec, Scenario.parse("H,H"), 3)
    sim.reset(layout)
    poses = layout_poses(sim.spec, DESC, layout)
    for name in (*DESC.holder_parts, "table", "robot_riser", "plate", "cheese", "bread"):
        prim = DESC.prim(name)
        g = sim.model.geom(name).id
        pos, size = _geom_world(sim, name)
        np.testing.assert_allclose(poses[name][:3] if name in poses else prim.pos, pos, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(prim.rgba, sim.model.geom_rgba[g], atol=1e-6, err_msg=name)
        assert prim.friction == pytest.approx(sim.model.geom_friction[g][0]), name
        if prim.shape == "cylinder":
            np.testing.assert_allclose((prim.size[0] / 2, prim.size[2] / 2), size[:2], err_msg=name)
        else:
            np.testing.assert_allclose(np.array(prim.size) / 2, size, err_msg=name)
        assert prim.condim == sim.model.geom_condim[g], name
    for name in ("cheese", "bread"):
        assert DESC.prim(name).mass == pytest.approx(sim.model.body_mass[sim.model.body(name).id])
        assert _quat_close(xyzw_to_wxyz(poses[name][3:]), layout.ingredient_poses[name][3:])


def test_jaw_pads_and_gripper_site_come_from_the_mjcf(sim):
    m = sim.model
    for pad in ("fixed_jaw_pad", "moving_jaw_pad"):
        prim, g = DESC.prim(pad), m.geom(pad).id
        np.testing.assert_allclose(prim.pos, m.geom_pos[g])
        np.testing.assert_allclose(np.array(prim.size) / 2, m.geom_size[g])
        assert _quat_close(xyzw_to_wxyz(prim.quat), m.geom_quat[g])
        assert prim.friction == pytest.approx(m.geom_friction[g][0]) and prim.condim == m.geom_condim[g]
    assert DESC.prim("fixed_jaw_pad").parent == "gripper" and DESC.prim("moving_jaw_pad").parent == "jaw"
    np.testing.assert_allclose(DESC.robot.ee_site_local, m.site_pos[m.site(SPEC.robot.ee_site).id])


def test_link_colliders_are_the_mjcf_collision_meshes(sim):
    """Every mesh the MuJoCo backend collides with is a hull collider on the same USD link, and nothing else."""
    m = sim.model
    mjcf = set()
    for g in range(m.ngeom):
        body = m.body(m.geom_bodyid[g]).name
        if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and m.geom_contype[g] and body != "world":
            mjcf.add(("jaw" if body == "moving_jaw_so101_v1" else body, m.mesh(m.geom_dataid[g]).name))
    assert set(DESC.robot.link_colliders) == mjcf and len(DESC.robot.link_colliders) == len(mjcf) == 13
    assert {link for link, _ in mjcf} == {"shoulder", "upper_arm", "lower_arm", "wrist", "gripper", "jaw"}


def test_cameras_match_the_mujoco_cameras(sim):
    for cam in DESC.cameras:
        mj = sim.model.camera(cam.name)
        np.testing.assert_allclose(cam.pos, sim.model.cam_pos[mj.id])
        assert _quat_close(xyzw_to_wxyz(cam.quat), sim.model.cam_quat[mj.id])
        assert cam.fovy_deg == pytest.approx(sim.model.cam_fovy[mj.id])
        assert (cam.width, cam.height) == (64, 48)
        vertical_aperture = 20.955 * cam.height / cam.width  # the pinhole's aperture and focal length give fovy back
        assert np.degrees(2 * np.arctan(vertical_aperture / (2 * cam.focal_length_cm))) == pytest.approx(cam.fovy_deg)
    assert DESC.camera("wrist").parent == so101_usd.USD_GRIPPER_LINK and DESC.camera("front").parent == "world"


def test_robot_drive_and_limits_match_the_mujoco_servos(sim):
    m = sim.model
    d = DESC.robot.drive
    for k, joint in enumerate(SPEC.robot.joint_names):
        act, dof = m.actuator(joint).id, m.joint(joint).dofadr[0]
        assert d.stiffness[k] == pytest.approx(m.actuator_gainprm[act][0])
        assert d.damping[k] == pytest.approx(-m.actuator_biasprm[act][2])
        assert d.viscous_friction[k] == pytest.approx(m.dof_damping[dof])
        assert d.friction[k] == pytest.approx(m.dof_frictionloss[dof])
        assert d.armature[k] == pytest.approx(m.dof_armature[dof])
        assert d.effort_limit[k] == pytest.approx(m.actuator_forcerange[act][1])
        np.testing.assert_allclose(DESC.robot.sim_limits[k], m.jnt_range[m.joint(joint).id])
    np.testing.assert_allclose(np.array(DESC.robot.usd_limits) - np.array(DESC.robot.sim_limits),
                               np.stack([so101_usd.JOINT_OFFSETS] * 2, axis=1))
    np.testing.assert_allclose(so101_usd.usd_to_sim(DESC.robot.home_usd), SPEC.robot.home_qpos)
    # The riser: the robot base stands on it, in the spec's frame.
    np.testing.assert_allclose(np.array(DESC.robot.root_pos) - so101_usd.ROOT_OFFSET, SPEC.robot.base_pos)


def test_physics_rate_and_contact_model_match_mujoco(sim):
    assert DESC.physics.physics_dt == pytest.approx(sim.model.opt.timestep)
    assert DESC.physics.control_dt == pytest.approx(1 / SPEC.control_hz)
    assert DESC.physics.cone == "elliptic" and sim.model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    assert DESC.physics.impratio == pytest.approx(sim.model.opt.impratio)


def test_only_the_pinch_is_stiffer_than_mujocos_default_contact(sim):
    """The pads and slices get a stiffer contact than MuJoCo's default (see PINCH_SOLREF); every other collider
    keeps MuJoCo's softness."""
    stiff = {p.name for p in DESC.prims if p.solref is not None or p.solimp is not None}
    assert stiff == {"cheese", "bread", "fixed_jaw_pad", "moving_jaw_pad"}
    for name in stiff:
        g, prim = sim.model.geom(name).id, DESC.prim(name)
        assert prim.solref[0] < sim.model.geom_solref[g][0]  # shorter time constant
        assert prim.solimp[1] > sim.model.geom_solimp[g][1]  # less yielding at depth
        assert prim.solref[0] >= 2 * DESC.physics.physics_dt  # MuJoCo's stability floor for the time constant


def test_plate_collider_is_the_square_inscribed_in_the_plate():
    plate, collider = DESC.prim("plate"), DESC.prim("plate_collider")
    assert not plate.collides and collider.collides and not collider.visible
    assert np.hypot(collider.size[0] / 2, collider.size[1] / 2) == pytest.approx(SPEC.plate.radius)
    assert collider.size[2] == plate.size[2] and collider.pos == plate.pos and collider.friction == plate.friction
    layout = sample_layout(SPEC, Scenario.parse("P,H"), 1)
    poses = layout_poses(SPEC, DESC, layout)
    np.testing.assert_allclose(poses["plate_collider"], poses["plate"])


def test_absent_slices_park_under_the_table_and_layout_moves_holder_and_plate():
    layout = sample_layout(SPEC, Scenario.parse("-,P"), 7)
    poses = layout_poses(SPEC, DESC, layout)
    assert poses["cheese"][2] < -0.2  # under the table top (z = 0), out of every camera's view
    np.testing.assert_allclose(poses["plate"][:2], layout.plate_xy)
    base = poses["holder_base"]
    np.testing.assert_allclose(base[:2], layout.holder_xy)
    assert poses["bread"][2] > SPEC.plate.top_z


def test_quaternion_helpers_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w, x, y, z = q
        m = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        assert _quat_close(xyzw_to_wxyz(matrix_to_xyzw(m)), q)
    # A camera looking straight down with +x up in the image: its -z is world -z.
    q = xyzw_to_wxyz(look_at_xyzw((0, 0, 1), (0, 0, 0), (1, 0, 0)))
    w, x, y, z = q
    assert 1 - 2 * (x * x + y * y) == pytest.approx(1.0)  # camera z stays world z


# --- the USD's joints and base, against the MJCF ---------------------------------------------------------------

USD_JOINTS = json.loads((Path(__file__).parent / "fixtures" / "so101_usd_joints.json").read_text())


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _pose(pos, wxyz) -> np.ndarray:
    w, x, y, z = np.asarray(wxyz, float) / np.linalg.norm(wxyz)
    t = np.eye(4)
    t[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    t[:3, 3] = pos
    return t


def _usd_link_frames(q_usd: np.ndarray, root: np.ndarray) -> dict[str, np.ndarray]:
    """Forward kinematics of the USD's joints (tests/fixtures/so101_usd_joints.json): every link frame for USD joint
    angles ``q_usd``, from the articulation root placed at ``root``."""
    fixed = USD_JOINTS["root_joint"]
    frames = {"base": root @ _pose(fixed["local_pos0"], fixed["local_rot0"])
              @ np.linalg.inv(_pose(fixed["local_pos1"], fixed["local_rot1"]))}
    axes = {"X": np.array([1.0, 0, 0]), "Y": np.array([0, 1.0, 0]), "Z": np.array([0, 0, 1.0])}
    for j, angle in zip(USD_JOINTS["joints"], q_usd):
        turn = np.eye(4)
        turn[:3, :3] = _rot(axes[j["axis"]], angle)
        frames[j["child"]] = (frames[j["parent"]] @ _pose(j["local_pos0"], j["local_rot0"]) @ turn
                              @ np.linalg.inv(_pose(j["local_pos1"], j["local_rot1"])))
    return frames


def test_the_usd_fixture_is_the_chain_so101_usd_names():
    assert USD_JOINTS["stage"] == {"up_axis": "Z", "meters_per_unit": 1.0, "default_prim": "/so101_new_calib"}
    assert tuple(j["name"] for j in USD_JOINTS["joints"]) == so101_usd.USD_JOINT_NAMES
    parents = ["base"] + [j["child"] for j in USD_JOINTS["joints"][:-1]]
    assert [j["parent"] for j in USD_JOINTS["joints"]] == parents  # one serial chain, in LeRobot's joint order
    assert USD_JOINTS["joints"][4]["child"] == so101_usd.USD_GRIPPER_LINK


def test_usd_joint_zeros_and_base_reproduce_the_mjcf_kinematics():
    """The USD's joints (the committed fixture, read from the isaaclab-so101 asset), driven by ``sim_to_usd(q)``
    from the root at ``ROOT_OFFSET``, put the gripper and the moving jaw exactly where the MJCF puts them for
    ``q``; and the root joint turns the base by ``ROOT_YAW``."""
    from leisaac_tasks.robot_model import so101_mjcf_path

    fixed = USD_JOINTS["root_joint"]
    base_turn = _pose(fixed["local_pos0"], fixed["local_rot0"]) @ np.linalg.inv(_pose(fixed["local_pos1"],
                                                                                       fixed["local_rot1"]))
    np.testing.assert_allclose(base_turn[:3, :3], _rot(np.array([0, 0, 1.0]), so101_usd.ROOT_YAW), atol=1e-6)
    np.testing.assert_allclose(base_turn[:3, 3], 0.0, atol=1e-9)

    m = mujoco.MjModel.from_xml_path(str(so101_mjcf_path()))
    d = mujoco.MjData(m)
    adr = [m.joint(j).qposadr[0] for j in SPEC.robot.joint_names]
    root = np.eye(4)
    root[:3, 3] = so101_usd.ROOT_OFFSET  # the MJCF base body at the origin here
    rng = np.random.default_rng(0)
    for q in [np.zeros(6), np.array(SPEC.robot.home_qpos), *rng.uniform(-1.2, 1.2, (10, 6))]:
        d.qpos[:] = 0
        d.qpos[adr] = q
        mujoco.mj_kinematics(m, d)
        frames = _usd_link_frames(so101_usd.sim_to_usd(q), root)
        for usd_link, mj_body in (("gripper", "gripper"), ("jaw", "moving_jaw_so101_v1")):
            b = m.body(mj_body).id
            np.testing.assert_allclose(frames[usd_link][:3, 3], d.xpos[b], atol=1e-5)  # the USD stores float32
            np.testing.assert_allclose(frames[usd_link][:3, :3], d.xmat[b].reshape(3, 3), atol=2e-5)


def test_usd_joint_limits_are_the_mjcf_limits_moved_by_the_joint_offsets():
    """The limits the Isaac Lab backend writes into the articulation (``usd_limits``) against the USD's own: the
    same ranges, shifted by ``JOINT_OFFSETS``, on every joint but the elbow. The USD's elbow stops at -100..+90
    degrees where the MJCF's allows +-96.8, which is why vec_env overwrites the USD's limits with ``usd_limits``."""
    usd = np.radians([[j["lower_deg"], j["upper_deg"]] for j in USD_JOINTS["joints"]])
    ours = np.array(DESC.robot.usd_limits)
    same = [k for k, name in enumerate(so101_usd.USD_JOINT_NAMES) if name != "Elbow"]
    np.testing.assert_allclose(ours[same], usd[same], atol=1e-5)  # float32 degrees in the USD
    elbow = so101_usd.USD_JOINT_NAMES.index("Elbow")
    np.testing.assert_allclose(np.degrees(usd[elbow]), [-100.0, 90.0], atol=1e-3)
    assert ours[elbow][1] > usd[elbow][1]  # the override matters: above 90 degrees only the MJCF's range allows


# --- the vectorized runner -------------------------------------------------------------------------------------

def _episodes(policies: tuple[str, ...]) -> list[Episode]:
    cells = [("H,H", 0, 0), ("P,H", 1, 1), ("H,-", 2, 2), ("-,-", 0, 3)]
    return [Episode(p, Scenario.parse(s), SEED_INSTRUCTIONS[i], seed) for p in policies for s, i, seed in cells]


@pytest.mark.parametrize("plan_workers", [0, 2], ids=["in-process", "plan-pool"])
def test_vectorized_rows_equal_sequential_rows(plan_workers):
    """Two envs refilled as episodes end give each episode the row run_episode gives it (the same columns), also
    when the scripted policies' plans come from a pool while the other env steps."""
    cfg = MatrixConfig(max_steps=120)
    episodes = _episodes(("expert", "blind"))[::2]
    rows: list[dict] = []
    run_vectorized(cfg, episodes, rows.append, num_envs=2, env=MujocoVecEnv(2), plan_workers=plan_workers)
    env = SandwichEnv(cameras=())
    policies = {name: make_policy(name) for name in ("expert", "blind")}
    expected = {e.key(): run_episode(env, policies[e.policy], e, cfg.max_steps) for e in episodes}
    env.close()
    assert len(rows) == len(episodes)
    for row in rows:
        assert set(row) == set(COLUMNS)
        want = expected[(row["policy"], row["scenario"], row["instruction"], str(row["seed"]))]
        for col in COLUMNS:
            if col != "wall_seconds":
                assert row[col] == want[col], col


class ExpertThatFailsOnBread(ScriptedExpert):
    """Built by import path in the plan pool's workers, where a monkeypatch would not reach."""

    def act(self, observation, info):
        if self.instruction.startswith("pick up the bread"):
            raise RuntimeError(f"servo bus gone in process {os.getpid()}")
        return super().act(observation, info)


def test_a_policy_failing_in_the_plan_pool_ends_only_its_own_episodes():
    spec = f"{__name__}:ExpertThatFailsOnBread"
    rows: list[dict] = []
    run_vectorized(MatrixConfig(max_steps=20), _episodes((spec,)), rows.append, num_envs=3, env=MujocoVecEnv(3),
                   plan_workers=2)
    errors = {r["instruction"]: r["error"] for r in rows}
    failed = re.fullmatch(r"RuntimeError: servo bus gone in process (\d+)", errors[SEED_INSTRUCTIONS[1].text])
    assert failed and int(failed.group(1)) != os.getpid()  # raised in a pool worker, recorded here
    assert all(e == "" for text, e in errors.items() if text != SEED_INSTRUCTIONS[1].text)


def test_a_failing_policy_ends_only_its_own_episodes(monkeypatch):
    def broken_act(self, observation, info):
        if self.instruction.startswith("pick up the bread"):
            raise RuntimeError("servo bus gone")
        return observation["state"].astype(float)

    monkeypatch.setattr(ScriptedExpert, "act", broken_act)
    rows: list[dict] = []
    run_vectorized(MatrixConfig(max_steps=20), _episodes(("expert",)), rows.append, num_envs=3, env=MujocoVecEnv(3))
    errors = {r["instruction"]: r["error"] for r in rows}
    assert errors[SEED_INSTRUCTIONS[1].text] == "RuntimeError: servo bus gone"
    assert all(e == "" for text, e in errors.items() if text != SEED_INSTRUCTIONS[1].text)
    assert {r["behaviour"] for r in rows if r["error"]} == {"policy_error"}


def test_batched_vla_acts_like_one_vla_per_episode(tmp_path):
    """act_batch over two envs returns, for each, the actions a lone VLAPolicy gives that episode."""
    import torch  # a core dependency: never a reason to skip
    sys.path.insert(0, str(Path(__file__).parent))
    from test_vla import CFG, norm

    from policies.vla.model import VLA
    from policies.vla.policy import VLAPolicy

    torch.manual_seed(0)
    VLA(CFG, norm()).save(tmp_path / "ckpt")
    rng = np.random.default_rng(0)
    s = 64
    obs = {cam: rng.integers(0, 256, (2, s, s, 3), dtype=np.uint8) for cam in CFG.cameras}
    obs["state"] = rng.uniform(-0.5, 0.5, (2, 6)).astype(np.float32)
    texts, seeds = ["do not pick up the cheese", "pick up the bread and put it into the white plate"], [3, 4]
    batched = VLAPolicy(tmp_path / "ckpt", device="cpu")
    for slot, (text, seed) in enumerate(zip(texts, seeds)):
        batched.reset_slot(slot, text, seed)
    got = batched.act_batch([0, 1], obs)
    for slot, (text, seed) in enumerate(zip(texts, seeds)):
        lone = VLAPolicy(tmp_path / "ckpt", device="cpu")
        lone.reset(text, seed)
        np.testing.assert_allclose(got[slot], lone.act({k: v[slot] for k, v in obs.items()}, {}), atol=1e-4)
