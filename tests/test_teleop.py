"""Teleop recording, headless: the keyboard device replays a key stream, the leader device is LeRobot's real
SO101Leader talking the Feetech protocol to a virtual servo chain behind a pseudo-terminal.

Both paths must do the task physically (cheese ends on the plate), and the kept episode must read back with
LeRobot.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from leisaac_tasks.dataset import DemoWriter, load_dataset, read_journal
from leisaac_tasks.env import CHEESE_INSTRUCTION, SandwichEnv
from leisaac_tasks.kinematics import CLOSING_AXIS_LOCAL, SO101Kinematics
from leisaac_tasks.outcomes import Outcome
from leisaac_tasks.units import (JOINT_HIGH, JOINT_LOW, from_motor_dict, lerobot_to_sim,
                                 sim_to_lerobot, to_motor_dict)
from policies.motion import SLICE_THIN_AXIS, MotionConfig, quat_to_mat
from policies.scripted import ScriptedExpert
from training.teleop.__main__ import main
from training.teleop.keyboard import KeyboardConfig, KeyboardTeleop, ScriptedKeySource
from training.teleop.leader import LeaderArmTeleop, LeaderConfig
from training.teleop.session import SessionConfig, TeleopSession
from training.teleop.virtual_servos import PhysicalLeader, VirtualServoChain

SIZE = 64
CAMERAS = ENV_CAMERAS = ("front",)  # one camera halves the (software) rendering; the recording path is the same


def session_config(**kw) -> SessionConfig:
    return SessionConfig(scenario="H,-", instruction=CHEESE_INSTRUCTION, realtime=False, show=False, **kw)


def writer(root: Path) -> DemoWriter:
    return DemoWriter(root, (SIZE, SIZE), cameras=CAMERAS)


# --- a keyboard operator, scripted from privileged poses ------------------------------------------------------
AXIS_KEYS = (("w", "s"), ("a", "d"), ("q", "e"))


def keyboard_pick_taps(env: SandwichEnv, seed: int, cfg: KeyboardConfig, tick: int) -> tuple[list, int]:
    """Key taps that pick the cheese of layout ``seed`` and put it on the plate, starting with B at ``tick``.

    Plays a careful operator: the same waypoints the scripted planner uses, reached by holding the move keys
    (one step per tick, several axes at once), pausing for the arm to catch up. Returns (taps, last tick).
    """
    obs, info = env.reset(seed=seed, options={"scenario": "H,-"})  # same layout the session will get
    kin, m = SO101Kinematics(env.scene.robot), MotionConfig()
    q = obs["state"].astype(float)
    start, rot = kin.point(q[:5]), kin.link_pose(q[:5])[1]
    yaw0 = np.arctan2(*(rot @ CLOSING_AXIS_LOCAL)[[1, 0]])
    thickness, _, height = env.scene.ingredients["cheese"].extents
    pose = info["object_poses"]["cheese"]
    thin = quat_to_mat(pose[3:]) @ SLICE_THIN_AXIS
    thin = np.array([thin[0], thin[1], 0.0]) / np.linalg.norm(thin[:2])
    closing = thin if np.dot(thin[:2], info["holder_xy"] - pose[:2]) >= 0 else -thin
    grasp_z = pose[2] + height / 2 - m.grasp_depth
    pad = pose[:3] - closing * (thickness / 2 + m.pad_clearance)
    release_z = env.scene.plate.top_z + m.release_gap + height - m.grasp_depth
    carry_z = max(grasp_z + m.lift_height, release_z + 0.02)
    drop = np.array([*info["plate_xy"], carry_z]) - closing * thickness / 2

    taps = [(tick, "b"), (tick, "u")]  # start recording, open the jaws
    at, turns = np.zeros(3, int), 0  # key steps taken so far, per axis

    def go(target, settle: int, yaw: float | None = None) -> None:
        nonlocal tick, turns
        want = np.round((np.asarray(target) - start) / cfg.pos_step).astype(int)
        want_turns = turns if yaw is None else int(round((yaw - yaw0) / cfg.yaw_step))
        while (want != at).any() or want_turns != turns:
            tick += 1
            for axis in range(3):
                if want[axis] != at[axis]:
                    taps.append((tick, AXIS_KEYS[axis][0 if want[axis] > at[axis] else 1]))
                    at[axis] += np.sign(want[axis] - at[axis])
            if want_turns != turns:
                taps.append((tick, "j" if want_turns > turns else "l"))
                turns += np.sign(want_turns - turns)
        tick += settle

    def press(key: str, settle: int) -> None:
        nonlocal tick
        tick += 1
        taps.append((tick, key))
        tick += settle

    go([pad[0], pad[1], grasp_z + m.approach_height], 20, yaw=np.arctan2(closing[1], closing[0]))
    go([pad[0], pad[1], grasp_z], 8)
    press("space", 12)  # close on the slice
    go([pad[0], pad[1], carry_z], 4)
    go(drop, 10)
    go([drop[0], drop[1], release_z], 8)
    press("space", 10)  # let go
    go(drop, 10)
    press("n", 0)  # mark success
    return taps, tick


def test_keyboard_failure_is_discarded_and_a_scripted_pick_is_kept(env, tmp_path):
    cfg = KeyboardConfig()
    # Attempt 1 (seed 3): start, wander a little, mark failure. Attempt 2 (seed 4): the full pick, success.
    wander = [(0, "b")] + [(t, k) for t in range(1, 15) for k in ("a", "e")] + [(15, "r")]
    pick, _ = keyboard_pick_taps(env, 4, cfg, tick=16)
    device = KeyboardTeleop(cfg, ScriptedKeySource(wander + pick))
    root = tmp_path / "kb"
    with writer(root) as w:
        result = TeleopSession(env, device, w, session_config(seeds=(3, 4))).run()

    # Physically done: the env still holds the last (kept) episode.
    assert env.outcome().per_ingredient["cheese"] == Outcome.ON_PLATE
    assert device.unreachable == 0
    failed, kept = result.attempts
    assert (failed.layout_seed, failed.success, failed.episode_index, failed.frames) == (3, False, None, 15)
    assert (kept.layout_seed, kept.success, kept.episode_index, kept.source) == (4, True, 0, "keyboard")
    assert kept.outcome == "cheese=on_plate,bread=absent"

    journal = read_journal(root)
    assert [(a.layout_seed, a.episode_index) for a in journal] == [(3, None), (4, 0)]
    ds = load_dataset(root)
    assert ds.meta.total_episodes == 1 and len(ds) == kept.frames  # the failed attempt's frames are gone
    actions = np.stack([ds[i]["action"].numpy() for i in range(len(ds))])
    grip = actions[:, 5]  # LeRobot units: 0 closed .. 100 open
    assert grip.min() == pytest.approx(0.0, abs=0.5)
    assert grip.max() == pytest.approx(sim_to_lerobot(np.r_[np.zeros(5), MotionConfig.gripper_open])[5], abs=0.5)
    assert ds[0]["task"] == CHEESE_INSTRUCTION


def test_running_out_of_steps_discards(env, tmp_path):
    device = KeyboardTeleop(keys=ScriptedKeySource([(0, "b")] + [(t, "w") for t in range(1, 8)], end_tick=20))
    root = tmp_path / "short"
    with writer(root) as w:
        result = TeleopSession(env, device, w, session_config(seeds=(0,), max_steps=5)).run()
    (attempt,) = result.attempts
    assert (attempt.success, attempt.frames, attempt.extra["ended"]) == (False, 5, "max_steps")
    assert not root.exists()  # a new dataset that kept nothing leaves nothing behind


@pytest.fixture(autouse=True)
def virtual_bus_reply_budget(monkeypatch):
    """The virtual servos answer from a thread of this process, not from a servo on a USB adapter. On a loaded CI
    box (2 cores, two test workers) that thread can wait for a CPU longer than LeRobot's reply budget (its patched
    scservo_sdk timeout: the packet's bytes + 50 ms), and a read fails with "There is no status packet!" (seen
    once). The virtual bus gets 1 s instead; a reply still returns as soon as it is written, so nothing else changes."""
    from lerobot.motors.feetech import feetech

    def roomy_timeout(self, packet_length):  # noqa: N802 (scservo_sdk's name)
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = self.tx_time_per_byte * (packet_length + 3.0) + 1000.0

    monkeypatch.setattr(feetech, "patch_setPacketTimeout", roomy_timeout)


def leader_rig(tmp_path: Path, joint_stream: list[np.ndarray], keys: ScriptedKeySource, reply_delay_s: float = 0.0):
    """A virtual leader playing ``joint_stream`` (sim radians) with a LeRobot calibration file on disk."""
    arm = PhysicalLeader()
    cal = arm.calibration()
    cal_dir = tmp_path / "calibration"
    cal_dir.mkdir()
    (cal_dir / "virtual_leader.json").write_text(json.dumps(cal))  # the file `lerobot-calibrate` writes
    eeprom = {c["id"]: {k: c[k] for k in ("homing_offset", "range_min", "range_max")} for c in cal.values()}
    chain = VirtualServoChain(eeprom, [arm.encoder(q) for q in joint_stream], reply_delay_s)
    device = LeaderArmTeleop(LeaderConfig(port=chain.port, id="virtual_leader", calibration_dir=cal_dir), keys)
    return chain, device


def test_unit_conversion_round_trip():
    rng = np.random.default_rng(0)
    q = rng.uniform(JOINT_LOW, JOINT_HIGH, size=(50, 6))
    v = sim_to_lerobot(q)
    np.testing.assert_allclose(lerobot_to_sim(v), q, atol=1e-9)
    np.testing.assert_allclose(from_motor_dict(to_motor_dict(v[0])), v[0])
    np.testing.assert_allclose(v[:, :5], np.degrees(q[:, :5]))
    np.testing.assert_allclose(sim_to_lerobot(JOINT_LOW)[5], 0.0, atol=1e-9)  # closed
    np.testing.assert_allclose(sim_to_lerobot(JOINT_HIGH)[5], 100.0, atol=1e-9)  # fully open


@pytest.mark.parametrize("reply_delay_s", [0.0, 0.08])  # 0.08: later than LeRobot's 50 ms budget, as under load
def test_leader_reads_a_physical_pose_as_sim_radians(tmp_path, reply_delay_s):
    """Static poses through the real bus + calibration: what the leader's joints are is what the sim gets, also
    when every reply comes 80 ms late (the virtual bus's budget, see virtual_bus_reply_budget)."""
    poses = [np.zeros(6), JOINT_LOW * 0.9, JOINT_HIGH * 0.9, np.array([0.5, -1.2, 1.1, 0.7, -2.0, 0.45])]
    chain, device = leader_rig(tmp_path, poses, ScriptedKeySource([]), reply_delay_s)
    try:
        device.connect()
        for q in poses:
            np.testing.assert_allclose(device.command(np.zeros(6), {}), q, atol=2e-3)  # one tick ~ 1.5 mrad
        device.disconnect()
    finally:
        chain.close()


def test_leader_records_a_pick_from_a_scripted_joint_stream(env, tmp_path):
    seed = 2
    obs, info = env.reset(seed=seed, options={"scenario": "H,-"})
    expert = ScriptedExpert(noise=False)
    expert.reset(CHEESE_INSTRUCTION, seed)
    plan = []
    while not expert.done:  # the plan is fixed at the first call, so the same obs/info serve throughout
        plan.append(expert.act(obs, info))
    stream = plan + [plan[-1]] * 10  # the operator holds still while the slice settles
    keys = ScriptedKeySource([(0, "b"), (len(stream), "n")])
    chain, device = leader_rig(tmp_path, stream, keys)
    root = tmp_path / "leader"
    try:
        with writer(root) as w:
            result = TeleopSession(env, device, w, session_config(seeds=(seed,))).run()
    finally:
        chain.close()

    assert env.outcome().per_ingredient["cheese"] == Outcome.ON_PLATE
    (kept,) = result.attempts
    assert (kept.source, kept.success, kept.episode_index, kept.frames) == ("leader", True, 0, len(stream))
    ds = load_dataset(root)
    actions = np.stack([ds[i]["action"].numpy() for i in range(len(ds))])
    # Recorded in LeRobot units, equal to the operator's joint stream up to one encoder tick.
    np.testing.assert_allclose(actions, sim_to_lerobot(np.array(stream)), atol=0.15)


# --- command line ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--device", "leader"], "--device leader needs --port"),
    (["--device", "keyboard", "--scenario", "H,Q"], "unknown scenario 'H,Q'"),
    (["--device", "keyboard", "--episodes", "0"], "--episodes must be at least 1"),
    (["--device", "keyboard"], "DISPLAY is not set"),  # headless: a clear error, not pynput's traceback
])
def test_cli_bad_input_exits_2_with_one_message(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_refuses_an_existing_dataset_without_resume(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert main(["--device", "keyboard", "--out", str(tmp_path / "out")]) == 2
    assert "--resume" in capsys.readouterr().err


def test_cli_replays_a_key_script_headlessly(env, tmp_path, capsys, monkeypatch):
    """chefmate-teleop --keys: the scripted pick from a file, through the CLI, with no display or keyboard."""
    monkeypatch.delenv("DISPLAY", raising=False)
    taps, _ = keyboard_pick_taps(env, 4, KeyboardConfig(), tick=0)
    script = tmp_path / "pick.keys"
    script.write_text("# a recorded session\n" + "\n".join(f"{t} {k}" for t, k in taps) + "\n")
    out = tmp_path / "replay"
    assert main(["--device", "keyboard", "--keys", str(script), "--no-view", "--scenario", "H,-", "--seed", "4",
                 "--episodes", "1", "--image-size", str(SIZE), "--fps", "120", "--out", str(out)]) == 0
    assert f"wrote {out} (1 demos)" in capsys.readouterr().out
    journal = [json.loads(line) for line in (out / "meta" / "chefmate_attempts.jsonl").read_text().splitlines()]
    assert [(a["layout_seed"], a["success"], a["source"]) for a in journal] == [(4, True, "keyboard")]

    bad = tmp_path / "bad.keys"
    bad.write_text("0 b\nw 3\n")
    assert main(["--device", "keyboard", "--keys", str(bad), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "line 2" in err and "'TICK KEY'" in err and len(err.splitlines()) == 1 and not (tmp_path / "b").exists()


def test_cli_replays_a_leader_joint_stream_from_a_file(env, tmp_path, capsys, monkeypatch):
    """chefmate-teleop --device leader --joints: a recorded leader stream (LeRobot units) drives the follower
    through the same session, headless; the dataset's actions are the file's rows."""
    monkeypatch.delenv("DISPLAY", raising=False)
    seed = 2
    obs, info = env.reset(seed=seed, options={"scenario": "H,-"})
    expert = ScriptedExpert(noise=False)
    expert.reset(CHEESE_INSTRUCTION, seed)
    plan = []
    while not expert.done:
        plan.append(expert.act(obs, info))
    rows = sim_to_lerobot(np.array(plan + [plan[-1]] * 10))
    joints, marks = tmp_path / "pick.joints", tmp_path / "marks.keys"
    joints.write_text("# shoulder_pan ... gripper\n" + "\n".join(" ".join(f"{v:.6f}" for v in r) for r in rows) + "\n")
    marks.write_text(f"0 b\n{len(rows)} n\n")
    out = tmp_path / "replay"
    assert main(["--device", "leader", "--joints", str(joints), "--keys", str(marks), "--no-view", "--scenario", "H,-",
                 "--seed", str(seed), "--episodes", "1", "--image-size", str(SIZE), "--fps", "120",
                 "--out", str(out)]) == 0
    assert f"wrote {out} (1 demos)" in capsys.readouterr().out
    journal = [json.loads(line) for line in (out / "meta" / "chefmate_attempts.jsonl").read_text().splitlines()]
    assert [(a["layout_seed"], a["success"], a["source"]) for a in journal] == [(seed, True, "leader")]
    ds = load_dataset(out)
    actions = np.stack([ds[i]["action"].numpy() for i in range(len(ds))])
    np.testing.assert_allclose(actions, np.clip(rows, *sim_to_lerobot(np.stack([JOINT_LOW, JOINT_HIGH]))),
                               atol=1e-3)

    bad = tmp_path / "bad.joints"
    bad.write_text("1 2 3 4 5 6\n1 2 3\n")
    assert main(["--device", "leader", "--joints", str(bad), "--keys", str(marks), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "line 2" in err and "six numbers" in err and len(err.splitlines()) == 1 and not (tmp_path / "b").exists()
