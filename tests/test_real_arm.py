"""The real-arm runner, end to end on the simulated SO-101: LeRobot's Robot interface, units, safety, the operator's
keys, resuming, recording, and the results the standard report reads."""

from __future__ import annotations

import csv
import io
import json
import signal
from pathlib import Path

import numpy as np
import pytest
import serial

from leisaac_tasks.units import (JOINT_HIGH, JOINT_LOW, JOINT_NAMES, MOTOR_KEYS, TICKS_PER_RAD, calibration_spans,
                                 lerobot_to_sim, mjcf_calibration_ranges, normalized_to_sim, sim_to_lerobot,
                                 sim_to_normalized)
from policies.base import Abilities

SMALL = ["--image-size", "64", "--reference-size", "64", "--families", "none", "--seeds", "1"]


# --- helpers ---------------------------------------------------------------------------------------------------
def sim_robot(tmp_path: Path, **kw):
    from eval.real_arm.robot import RobotOptions, connect_robot, make_robot

    opts = RobotOptions(kind="sim_so101", calibration_dir=tmp_path / "cal", image_size=64, **kw)
    robot = make_robot(opts)
    connect_robot(robot, opts)
    return robot


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "episodes.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "session.jsonl").read_text().splitlines()]


def main(argv, keys: str = "", **kw) -> int:
    from eval.real_arm.cli import main as cli_main

    return cli_main(argv, input_stream=io.StringIO(keys), **kw)


class Hold:
    """A camera-free, non-privileged policy that keeps the arm where it is (and can misbehave on cue)."""

    name, abilities = "hold", Abilities()

    def __init__(self, target=None, on_step=None):
        self.target, self.on_step = target, on_step
        self.seen: list[np.ndarray] = []
        self.trial = self.t = 0

    def reset(self, instruction: str, seed: int) -> None:
        self.trial, self.t = self.trial + 1, 0

    def act(self, observation, info):
        self.seen.append(observation["state"].astype(float))
        self.t += 1
        if self.on_step:
            self.on_step(self)
        return observation["state"] if self.target is None else self.target(observation["state"])

    @property
    def done(self) -> bool:
        return False


# --- units -------------------------------------------------------------------------------------------------------
def test_units_round_trip_degrees_and_normalized():
    rng = np.random.default_rng(0)
    q = rng.uniform(JOINT_LOW, JOINT_HIGH, (200, 6))
    np.testing.assert_allclose(lerobot_to_sim(sim_to_lerobot(q)), q, atol=1e-12)
    spans = calibration_spans({n: type("Cal", (), {"range_min": lo, "range_max": hi})()
                               for n, (lo, hi) in mjcf_calibration_ranges().items()})
    v = sim_to_normalized(q, spans)
    assert np.all(np.abs(v[:, :5]) <= 100 + 1e-9) and np.all((v[:, 5] >= -1e-9) & (v[:, 5] <= 100 + 1e-9))
    np.testing.assert_allclose(normalized_to_sim(v, spans), q, atol=1e-12)


def test_normalized_and_degrees_match_lerobots_own_bus_formulas():
    """Ticks from a real-looking calibration through LeRobot's FeetechMotorsBus vs our conversion of the same angle."""
    from lerobot.motors import Motor, MotorCalibration, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    from training.teleop.virtual_servos import PhysicalLeader

    cal = {n: MotorCalibration(**c) for n, c in PhysicalLeader().calibration().items()}
    spans = calibration_spans(cal)
    rng = np.random.default_rng(1)
    for body_mode, ours in ((MotorNormMode.DEGREES, lambda q: sim_to_lerobot(q)),
                            (MotorNormMode.RANGE_M100_100, lambda q: sim_to_normalized(q, spans))):
        motors = {n: Motor(i + 1, "sts3215", body_mode) for i, n in enumerate(JOINT_NAMES[:5])}
        bus = FeetechMotorsBus(port="/dev/null", motors=motors, calibration=cal)  # never opened
        for _ in range(50):
            ticks = {n: int(rng.integers(cal[n].range_min, cal[n].range_max + 1)) for n in JOINT_NAMES[:5]}
            theirs = bus._normalize({cal[n].id: t for n, t in ticks.items()})
            q = np.zeros(6)
            q[:5] = [(t - (cal[n].range_min + cal[n].range_max) / 2) / TICKS_PER_RAD for n, t in ticks.items()]
            np.testing.assert_allclose(ours(q)[:5], [theirs[cal[n].id] for n in JOINT_NAMES[:5]], atol=1e-9)


def test_joint_units_follow_the_robot_config(tmp_path):
    from eval.real_arm.robot import JointUnits

    for use_degrees in (True, False):
        robot = sim_robot(tmp_path / str(use_degrees), use_degrees=use_degrees)
        try:
            units = JointUnits.of(robot)
            robot.send_action(units.action(np.array([0.3, -0.5, 0.9, 0.4, -1.0, 0.6])))
            for _ in range(40):
                robot.send_action(units.action(np.array([0.3, -0.5, 0.9, 0.4, -1.0, 0.6])))
            obs = robot.get_observation()
            # The bus quantises to whole encoder ticks (1/652 rad), as a real STS3215 does.
            np.testing.assert_allclose(units.observation_to_sim(obs), robot.env.sim.joint_positions(), atol=2e-3)
            assert units.name == ("degrees" if use_degrees else "normalized")
        finally:
            robot.disconnect()


# --- the simulated robot behind LeRobot's interface ---------------------------------------------------------------
def test_sim_robot_is_a_lerobot_robot_with_the_followers_features(tmp_path):
    from lerobot.robots import Robot
    from lerobot.utils.errors import DeviceNotConnectedError

    from eval.real_arm.robot import RobotOptions, make_robot

    real = make_robot(RobotOptions(kind="so101", port="/dev/ttyFAKE", calibration_dir=tmp_path / "real",
                                   cam_width=64, cam_height=64))  # built, never connected
    assert type(real).__name__ == "SOFollower" and set(real.cameras) == {"front", "wrist"}
    sim = make_robot(RobotOptions(kind="sim_so101", calibration_dir=tmp_path / "sim", image_size=64))
    assert isinstance(sim, Robot) and sim.config.type == "sim_so101"
    assert sim.observation_features == real.observation_features
    assert sim.action_features == real.action_features
    with pytest.raises(DeviceNotConnectedError):
        sim.get_observation()
    sim.connect()
    try:
        assert sim.is_calibrated and sim.calibration_fpath.is_file()
        obs = sim.get_observation()
        assert set(obs) == set(real.observation_features)
        assert obs["front"].shape == (64, 64, 3) and obs["front"].dtype == np.uint8
        # max_relative_target clips like the real follower, and send_action returns what it sent.
        sim.config.max_relative_target = 5.0
        asked = {k: obs[k] for k in MOTOR_KEYS}
        asked["elbow_flex.pos"] -= 30.0
        sent = sim.send_action(asked)
        assert sent["elbow_flex.pos"] == pytest.approx(obs["elbow_flex.pos"] - 5.0)
        assert sent["shoulder_pan.pos"] == pytest.approx(obs["shoulder_pan.pos"])
    finally:
        sim.disconnect()
    assert not sim.is_connected


@pytest.mark.parametrize("fault, error", [("unplugged", serial.SerialException), ("no_response", ConnectionError)])
def test_fault_injection_fails_like_the_feetech_bus(tmp_path, fault, error):
    robot = sim_robot(tmp_path)
    try:
        robot.get_observation()
        robot.bus.fail_after(2, fault)
        robot.get_observation()
        robot.get_observation()
        with pytest.raises(error) as caught:
            robot.get_observation()
        assert isinstance(caught.value, OSError)  # what the trial loop ends a run on
        with pytest.raises(error):  # and it stays broken
            robot.send_action({k: 0.0 for k in MOTOR_KEYS})
    finally:
        robot.bus.clear_fault()
        robot.disconnect()


# --- safety ---------------------------------------------------------------------------------------------------
def test_safety_filter_clips_limits_and_steps_and_keeps_the_tip_in_the_box():
    from eval.real_arm.safety import SafetyConfig, SafetyFilter, SafetyLog

    cfg = SafetyConfig()
    f, log = SafetyFilter(cfg), SafetyLog()
    home = cfg.rest_pose
    beyond = home.copy()
    beyond[4] = JOINT_HIGH[4] + 1.0  # wrist roll past its stop
    out = f.filter(beyond, beyond.clip(JOINT_LOW, JOINT_HIGH), step=0, log=log)
    assert out[4] <= JOINT_HIGH[4] - np.radians(cfg.joint_margin_deg) + 1e-12 and log.count("joint_limit") == 1
    far = home + 1.0
    out = f.filter(far, home, step=1, log=log)
    assert np.all(np.abs(out - home) <= cfg.step_caps() + 1e-12) and log.count("max_step") == 1
    out = f.filter(far, home, step=2, log=log, slow=True)
    assert np.abs(out - home)[:5].max() <= np.radians(cfg.max_step_deg * cfg.slow_factor) + 1e-12
    # A pose with the jaws in the table: refused as far as needed, never below the box.
    dive = np.array([0.0, 0.9, -0.2, 1.2, 0.0, 0.0])
    assert f.tip(dive)[2] < cfg.workspace_min_m[2]
    q = home.copy()
    for step in range(60):
        q = f.filter(dive, q, step=step, log=log)
        assert f.tip(q)[2] >= cfg.workspace_min_m[2] - 1e-6
    assert log.count("workspace") > 0 and f.outside(q) == 0.0


def test_limit_and_workspace_breaches_on_the_arm_are_clipped(tmp_path):
    """A policy that drives the jaws into the table and the wrist past its stop. With safety (the box floor raised
    to 6 cm here) the tip stops at the floor and is held there; with the box switched off it reaches the table."""
    from eval.real_arm.safety import SafetyConfig, SafetyFilter

    box = (0.05, -0.25, 0.06, 0.40, 0.25, 0.35)
    dive = np.array([0.0, 0.9, -0.2, 1.2, JOINT_HIGH[4] + 0.5, 0.0])
    tips = {}
    for name, extra in (("safe", []), ("unsafe", ["--no-workspace"])):
        robot, policy = sim_robot(tmp_path / name), Hold(target=lambda q: dive)
        out = tmp_path / f"out_{name}"
        try:
            code = main(["--robot", "sim_so101", "--policies", "dive", "--scenarios=-,-", "--max-steps", "50",
                         "--workspace", ",".join(map(str, box)), "--no-record", "--no-detect", "--out", str(out),
                         *SMALL, *extra],
                        keys="\nq\n", robot=robot, policies={"dive": policy})  # one run, then quit
            assert code == 0
        finally:
            robot.disconnect()
        f = SafetyFilter(SafetyConfig())
        tips[name] = np.array([f.tip(q)[2] for q in policy.seen])
        clips = journal(out)[0]["safety"]["clips"]
        assert clips["joint_limit"]["count"] > 0
        assert ("workspace" in clips) == (name == "safe")
    floor = box[2]
    # Servo physics: a ~7 mm overshoot on arrival at 300 deg/s, then held a couple of mm under (gravity sag).
    assert tips["safe"].min() >= floor - 0.01 and tips["safe"][-5:].min() >= floor - 0.004
    assert tips["unsafe"].min() < floor - 0.04


def test_speed_cap_on_the_first_trials_only(tmp_path):
    """Also the loop in LeRobot's normalized units: the caps hold in radians whatever the arm speaks."""
    from eval.real_arm.safety import SafetyConfig

    robot, policy = sim_robot(tmp_path, use_degrees=False), Hold(target=lambda q: q + np.array([0.5, 0, 0, 0, 0, 0]))
    out = tmp_path / "out"
    try:
        assert main(["--robot", "sim_so101", "--policies", "sweep", "--scenarios=-,-", "--max-steps", "8",
                     "--slow-trials", "1", "--no-record", "--no-detect", "--out", str(out), *SMALL],
                    keys="\n\nq\n", robot=robot, policies={"sweep": policy}) == 0  # two runs, quit
    finally:
        robot.disconnect()
    records = journal(out)
    assert "speed_cap" in records[0]["safety"]["clips"] and "speed_cap" not in records[1]["safety"]["clips"]
    assert "max_step" in records[1]["safety"]["clips"]
    steps = np.array(policy.seen)
    first, second = np.abs(np.diff(steps[:8, 0])).max(), np.abs(np.diff(steps[8:16, 0])).max()
    cfg = SafetyConfig()
    assert first <= np.radians(cfg.max_step_deg * cfg.slow_factor) + 1e-3 < second


def assert_at_rest_with_torque_off(robot, units) -> None:
    """After a safe stop: the arm is at the rest pose, and torque really is off (a goal far away moves nothing but
    what gravity moves)."""
    from eval.real_arm.safety import SafetyConfig, read_joints

    cfg = SafetyConfig()
    at_rest = read_joints(robot, units)
    assert np.degrees(np.abs(at_rest - cfg.rest_pose)[:5]).max() <= cfg.rest_tolerance_deg
    assert not robot.bus.torque_enabled
    goal = at_rest.copy()
    goal[0] += 0.8
    for _ in range(15):
        robot.send_action(units.action(goal))
    assert abs(read_joints(robot, units)[0] - at_rest[0]) < 0.01


@pytest.mark.parametrize("how", ["raise", "sigint"])
def test_ctrl_c_mid_trial_goes_to_rest_and_switches_torque_off(tmp_path, how):
    from eval.real_arm.robot import JointUnits

    def interrupt(policy):
        if policy.trial == 2 and policy.t == 15:
            if how == "raise":
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)  # a real SIGINT, delivered to this (the main) thread

    robot = sim_robot(tmp_path)
    policy = Hold(target=lambda q: q + np.array([0.0, 0.02, 0.02, 0.0, 0.0, 0.0]), on_step=interrupt)
    out = tmp_path / "out"
    try:
        code = main(["--robot", "sim_so101", "--policies", "drift", "--scenarios", "H,-", "--max-steps", "25",
                     "--no-record", "--no-detect", "--out", str(out), *SMALL],
                    keys="\nu\n\nu\n\nu\n", robot=robot, policies={"drift": policy})
        assert code == 130
        assert_at_rest_with_torque_off(robot, JointUnits.of(robot))
    finally:
        robot.disconnect()
    assert len(rows(out)) == 1  # the first trial's row is intact; the interrupted one is not a result
    last = journal(out)[-1]
    assert last["status"] == "interrupted"
    assert [e["event"] for e in last["safety"]["events"]][-4:] == ["interrupted", "safe_stop", "rest", "torque_off"]


class ArmLog:
    """What the arm was told, in order: every goal sent (as sim radians, with the torque state at that moment)
    and every torque switch. Wraps the simulated robot's own methods, which still run."""

    def __init__(self, robot):
        from eval.real_arm.robot import JointUnits

        self.robot, self.units, self.events = robot, JointUnits.of(robot), []
        send, bus = robot.send_action, robot.bus
        off, on = bus.disable_torque, bus.enable_torque

        def send_action(action):
            self.events.append(("send", self.units.observation_to_sim(action), bus.torque_enabled))
            return send(action)

        def disable_torque():
            off()
            self.events.append(("torque_off",))

        def enable_torque():
            on()
            self.events.append(("torque_on",))

        robot.send_action, bus.disable_torque, bus.enable_torque = send_action, disable_torque, enable_torque

    def mark(self, what: str) -> None:
        from eval.real_arm.safety import read_joints

        self.events.append((what, read_joints(self.robot, self.units)))


def test_a_policy_error_mid_trial_ramps_to_rest_then_switches_torque_off(tmp_path):
    """A policy that raises mid-trial: the trial is a policy_error row, and the arm is walked back to the rest pose
    in steps of at most --rest-step-deg from where it stood, and only then is torque switched off."""
    from eval.real_arm.safety import SafetyConfig

    robot = sim_robot(tmp_path)
    arm = ArmLog(robot)

    def explode(policy):
        if policy.trial == 1 and policy.t == 20:
            arm.mark("raised")
            raise RuntimeError("the model produced NaNs")

    policy = Hold(target=lambda q: q + np.array([0.03, 0.03, -0.03, 0.0, 0.0, 0.0]), on_step=explode)
    out = tmp_path / "out"
    try:
        code = main(["--robot", "sim_so101", "--policies", "flaky", "--scenarios", "H,-", "--max-steps", "40",
                     "--no-record", "--no-detect", "--out", str(out), *SMALL],
                    keys="\nu\nq\n", robot=robot, policies={"flaky": policy})  # run, answer, quit at trial 2
        assert code == 0
        events = list(arm.events)
        assert_at_rest_with_torque_off(robot, arm.units)
    finally:
        robot.disconnect()

    cfg = SafetyConfig()
    raised = [i for i, e in enumerate(events) if e[0] == "raised"]
    assert len(raised) == 1 and len(policy.seen) == 20
    where, after = events[raised[0]][1], events[raised[0] + 1:]
    assert np.degrees(np.abs(where - cfg.rest_pose)[:5]).max() > 20  # the arm had left rest: a real ramp follows
    # After the error: goals with torque on, then torque off, then nothing.
    assert [e[0] for e in after] == ["send"] * (len(after) - 1) + ["torque_off"]
    ramp = np.array([e[1] for e in after[:-1]])
    assert all(e[2] for e in after[:-1])
    step = np.radians(cfg.rest_step_deg) + 1e-6  # the goals travel in LeRobot degrees: float rounding only
    assert np.abs(ramp[0] - where).max() <= step  # it starts where the arm stood, no jump
    assert np.abs(np.diff(ramp, axis=0)).max() <= step
    assert len(ramp) >= np.degrees(np.abs(where - cfg.rest_pose)).max() / cfg.rest_step_deg
    np.testing.assert_allclose(ramp[-1], cfg.rest_pose, atol=1e-6)  # gripper included

    (row,) = rows(out)
    assert row["behaviour"] == "policy_error" and row["success"] == "0" and row["steps"] == "19"  # the 20th act raised
    assert row["error"] == "RuntimeError: the model produced NaNs"
    failed = journal(out)[0]
    assert failed["status"] == "done" and failed["run_status"] == "policy_error"
    assert [e["event"] for e in failed["safety"]["events"]][-4:] == ["policy_error", "safe_stop", "rest", "torque_off"]


def test_lerobots_max_relative_target_is_a_backstop_1_5x_looser_that_clips_when_safety_is_bypassed(tmp_path,
                                                                                                     monkeypatch):
    """The session sets the follower config's max_relative_target to 1.5x the per-step safety caps, in the arm's
    units (degrees or LeRobot's normalized range); with the safety filter bypassed, a too-large step is still cut
    to that backstop by the robot's own LeRobot clipping (ensure_safe_goal_position)."""
    from eval.real_arm.robot import JointUnits
    from eval.real_arm.safety import SafetyConfig, SafetyFilter

    d = SafetyConfig()
    backstop = 1.5 * np.radians([d.max_step_deg] * 5 + [d.gripper_max_step_deg])  # README: "set 1.5x looser"
    argv = ["--robot", "sim_so101", "--scenarios", "H,-", "--no-record", "--no-detect", *SMALL]
    for use_degrees in (True, False):
        robot = sim_robot(tmp_path / f"cal_{use_degrees}", use_degrees=use_degrees)
        try:
            assert robot.config.max_relative_target is None
            assert main([*argv, "--policies", "hold", "--out", str(tmp_path / f"quit_{use_degrees}")], keys="q\n",
                        robot=robot, policies={"hold": Hold()}) == 0  # quit at the first prompt: nothing moves
            limits, units = robot.config.max_relative_target, JointUnits.of(robot)
        finally:
            robot.disconnect()
        assert isinstance(limits, dict) and list(limits) == list(JOINT_NAMES)
        if use_degrees:  # 10 deg per step -> 15 deg; the gripper's 40 deg -> 60 deg of its 0-100 range
            gripper = 100 * backstop[5] / (JOINT_HIGH[5] - JOINT_LOW[5])
            np.testing.assert_allclose([limits[n] for n in JOINT_NAMES], [15.0] * 5 + [gripper], rtol=1e-6)
        # Whatever the units: a move of that size from anywhere is 1.5x the caps in radians.
        for q in (np.zeros(6), (JOINT_LOW + JOINT_HIGH) / 2 + 0.1):
            start = units.to_lerobot(q)
            np.testing.assert_allclose(units.to_sim(start + [limits[n] for n in JOINT_NAMES]) - q, backstop,
                                       rtol=1e-9, err_msg=f"use_degrees={use_degrees}")

    # Bypass the safety layer: targets reach the arm as the policy gave them. LeRobot's clip still holds.
    monkeypatch.setattr(SafetyFilter, "filter", lambda self, target, measured, step, log, slow=False:
                        np.asarray(target, dtype=float))
    robot = sim_robot(tmp_path / "cal_bypass")
    sends = []
    send = robot.send_action

    def recording_send(action):
        present = {f"{name}.pos": v for name, v in robot.bus.sync_read("Present_Position").items()}
        sent = send(action)
        sends.append((present, dict(action), sent))
        return sent

    robot.send_action = recording_send
    jump = np.array([0.8, 0.0, 0.0, 0.0, 0.0, 0.0])  # 46 deg of shoulder pan in one step
    try:
        assert main([*argv, "--policies", "lunge", "--max-steps", "4", "--out", str(tmp_path / "bypass")],
                    keys="\nu\nq\n", robot=robot, policies={"lunge": Hold(target=lambda q: q + jump)}) == 0
    finally:
        robot.disconnect()
    lunges = [(p, a, s) for p, a, s in sends if a["shoulder_pan.pos"] - p["shoulder_pan.pos"] > 40]
    assert len(lunges) == 4  # every policy step asked for the whole jump
    for present, asked, sent in lunges:
        assert sent["shoulder_pan.pos"] - present["shoulder_pan.pos"] == pytest.approx(15.0, abs=1e-9)
        for key in MOTOR_KEYS[1:]:  # the small moves pass untouched
            assert sent[key] == pytest.approx(asked[key], abs=1e-9)


def test_serial_loss_mid_trial_is_a_robot_error_and_keeps_earlier_rows(tmp_path):
    robot = sim_robot(tmp_path)

    def unplug(policy):
        if policy.trial == 2 and policy.t == 15:
            robot.bus.fail_after(1, "unplugged")

    out = tmp_path / "out"
    argv = ["--robot", "sim_so101", "--policies", "hold", "--scenarios", "H,-", "--max-steps", "30", "--no-detect",
            "--no-record", "--out", str(out), *SMALL]
    try:
        assert main(argv, keys="\np\n\nu\n", robot=robot, policies={"hold": Hold(on_step=unplug)}) == 3
    finally:
        robot.bus.clear_fault()  # plug the cable back in
        robot.disconnect()
    got = rows(out)
    assert [r["behaviour"] for r in got] == ["picked_cheese", "robot_error"]
    assert got[0]["cheese"] == "on_plate" and got[0]["error"] == ""
    assert "SerialException" in got[1]["error"] and got[1]["success"] == "0"
    events = [e["event"] for e in journal(out)[-1]["safety"]["events"]]
    assert "serial_lost" in events and "torque_off_failed" in events
    # Another day, the cable back in: the session goes on where it stopped, no row twice.
    robot = sim_robot(tmp_path)
    try:
        assert main(argv + ["--resume"], keys="\nu\n", robot=robot, policies={"hold": Hold()}) == 0
    finally:
        robot.disconnect()
    assert [r["instruction"] for r in rows(out)] == [r["instruction"] for r in got] + ["do not pick up the cheese"]


# --- the operator-guided grid, end to end ----------------------------------------------------------------------------
def test_operator_guided_grid_end_to_end_with_quit_and_resume(tmp_path):
    from eval.report import write_report
    from leisaac_tasks.dataset import load_dataset, read_journal

    out = tmp_path / "run"
    argv = ["--robot", "sim_so101", "--policies", "expert", "--scenarios", "H,-;-,H", "--max-steps", "20",
            "--out", str(out), *SMALL]
    # Trials, in MatrixConfig order: (H,-) x 3 instructions, then (-,H) x 3.
    first_day = "\n".join([
        "", "p",  # 1: start, type "on plate" for the cheese
        "", "r", "", "",  # 2: start, redo; start again, accept the automatic guess
        "s",  # 3: skip
        "", "q",  # 4: start, then quit at the outcome prompt
    ]) + "\n"
    assert main(argv, keys=first_day) == 0
    assert len(rows(out)) == 2
    assert main(argv, keys="") == 2  # the same command without --resume refuses, nothing touched
    second_day = "\n".join(["", "m", "", "", "", "d"]) + "\n"  # 4 typed, 5 accepted, 6 typed
    assert main(argv + ["--resume"], keys=second_day) == 0

    got = rows(out)
    from eval.run_matrix import MatrixConfig
    from leisaac_tasks.scenarios import Scenario

    plan = MatrixConfig(policies=("expert",), scenarios=(Scenario.parse("H,-"), Scenario.parse("-,H")),
                        families=(), seeds=(0,)).episodes()
    keys = [(r["scenario"], r["instruction"]) for r in got]
    assert keys == [(e.scenario.label, e.instruction.text) for i, e in enumerate(plan) if i != 2]  # 3 skipped
    assert all(r["backend"] == "sim_so101" for r in got)
    records = journal(out)
    done = [r for r in records if r["status"] == "done"]
    assert [r["status"] for r in records] == ["done", "redo", "done", "skipped", "quit", "done", "done", "done"]
    assert done[0]["answers"] == {"cheese": "on_plate"} and done[0]["sources"] == {"cheese": "operator"}
    assert done[1]["sources"] == {"cheese": "auto"} and done[1]["redos"] == 1
    assert done[1]["answers"]["cheese"] == done[1]["guesses"]["cheese"]["outcome"]
    assert got[0]["cheese"] == "on_plate" and got[2]["bread"] == "moved" and got[4]["bread"] == "dropped"
    assert done[3]["answers"]["bread"] == done[3]["guesses"]["bread"]["outcome"]

    # The standard report reads it; the dataset holds one episode per row; the ground truth sits beside it.
    summary = write_report(out / "episodes.csv", tmp_path)
    assert int(summary["episodes"].iloc[0]) == len(got)
    ds = load_dataset(out / "dataset")
    assert ds.meta.total_episodes == len(got)
    assert ds[0]["observation.images.front"].shape[-2:] == (64, 64) and ds[0]["task"] == got[0]["instruction"]
    kept = [a for a in read_journal(out / "dataset") if a.episode_index is not None]
    assert [a.outcome for a in kept] == [r["outcome_label"] for r in got]
    with (out / "sim_ground_truth.csv").open(newline="") as f:
        truth = list(csv.DictReader(f))
    assert len(truth) == len(got) and all(t["truth_cheese"] and t["truth_bread"] for t in truth)
    assert (out / "reference" / "cell_H-_seed0.png").is_file()


def test_bad_input_is_one_line_and_touches_nothing(tmp_path, capsys):
    out = tmp_path / "real"
    assert main(["--robot", "so101", "--robot-port", "/dev/ttyFAKE", "--policies", "expert", "--out", str(out)]) == 2
    assert "sim-only" in capsys.readouterr().err and not out.exists()
    assert main(["--robot", "so101", "--policies", "camera", "--out", str(out)],
                policies={"camera": Hold()}) == 2
    assert "lerobot-find-port" in capsys.readouterr().err
    assert main(["--robot", "so101", "--robot-port", "/dev/ttyFAKE", "--calibration-dir", str(tmp_path / "cal"),
                 "--policies", "camera", "--out", str(out)], policies={"camera": Hold()}) == 2
    err = capsys.readouterr().err
    assert "lerobot-calibrate --robot.type=so101_follower" in err and len(err.strip().splitlines()) == 1
    assert not (out / "session.json").exists() and not (out / "episodes.csv").exists()


def test_full_eight_cell_grid_with_automatic_outcomes_matches_the_sim_grid(tmp_path):
    """The done bar (README: 48 trials, the same outcomes as the plain sim grid, 48 of 48 guesses right): the whole
    seed grid for expert and blind, operator-guided with every automatic guess accepted, on the simulated arm. Every
    row's outcome equals eval.run_matrix's for the same cell, policy and seed, and every guess equals the physics."""
    from eval.report import write_report
    from eval.run_matrix import MatrixConfig, run

    out = tmp_path / "grid"
    argv = ["--robot", "sim_so101", "--policies", "expert,blind", "--auto-accept", "--no-record", "--out", str(out),
            *SMALL]
    assert main(argv) == 0
    with (out / "sim_ground_truth.csv").open(newline="") as f:
        truth = list(csv.DictReader(f))
    assert len(truth) == 2 * 8 * 3  # two policies x eight scenarios x the seed's three instructions
    # An ingredient the scenario lacks gets no guess (the operator isn't asked about it either).
    wrong = [t for t in truth for n in ("cheese", "bread")
             if t[f"truth_{n}"] != "absent" and t[f"guess_{n}"] != t[f"truth_{n}"]]
    assert wrong == []
    moved = {t["truth_cheese"] for t in truth} | {t["truth_bread"] for t in truth}
    assert {"on_plate", "untouched", "absent"} <= moved  # the policies really pick, leave and lack slices

    # The plain sim grid: the same cells, policies, seeds and image size, through eval.run_matrix.
    sim = MatrixConfig(policies=("expert", "blind"), families=(), seeds=(0,), image_size=64, out=tmp_path / "sim")
    with run(sim, progress=False).open(newline="") as f:
        want = {(r["policy"], r["scenario"], r["instruction"], r["seed"]): r["outcome_label"] for r in csv.DictReader(f)}
    got = {(r["policy"], r["scenario"], r["instruction"], r["seed"]): r["outcome_label"] for r in rows(out)}
    assert len(want) == len(sim.episodes()) == 48 and got.keys() == want.keys()
    differ = {key: (label, want[key]) for key, label in got.items() if label != want[key]}
    assert differ == {}, "real-arm outcome vs run_matrix outcome"
    summary = write_report(out / "episodes.csv", tmp_path)
    assert int(summary["episodes"].sum()) == 48
