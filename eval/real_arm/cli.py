"""Run the benchmark grid on an SO-ARM 101 through LeRobot (or its simulated twin), one operator-guided trial at a time.

    python -m eval.real_arm --robot so101 --robot-port /dev/ttyACM0 --robot-id my_arm --front-cam 0 --wrist-cam 2 \\
        --policies vla:runs/dis --families none --seeds 2 --out reports/real/dis
    python -m eval.real_arm --robot so101 ... --out reports/real/dis --resume        # another day, same flags
    python -m eval.real_arm --robot sim_so101 --policies expert --families none --seeds 1 --out /tmp/sim_arm

Grid flags are eval/run_matrix.py's own (--policies, --scenarios, --include-ninth, --families, --instructions-file,
--seeds, --image-size, --max-steps, --out, --resume) and give the same trials in the same order; --max-steps is the
length of every trial at 30 Hz (360 = 12 s). --image-size is the simulated arm's camera size.
Writes OUT/episodes.csv (the sim benchmark's columns; backend = so101 or sim_so101), summary + plots, the
session files (session.json, session.jsonl), a LeRobot dataset (OUT/dataset), reference pictures (OUT/reference)
and, on the simulated arm, OUT/sim_ground_truth.csv. Exit status: 0 done or quit, 2 bad input, 3 the arm was
lost, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from eval.real_arm.safety import HOME_DEG, SafetyConfig
from leisaac_tasks.console import LIBRARIES_LOG, library_log, quiet_libraries

EXIT = {"complete": 0, "quit": 0, "robot_error": 3, "interrupted": 130}


def _floats(text: str, n: int, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise argparse.ArgumentTypeError(f"{flag} takes {n} comma-separated numbers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    d = SafetyConfig()
    p = argparse.ArgumentParser(prog="python -m eval.real_arm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    arm = p.add_argument_group("arm")
    arm.add_argument("--robot", required=True, choices=("so101", "sim_so101"),
                     help="so101: the real follower through LeRobot; sim_so101: the simulated one (CI)")
    arm.add_argument("--robot-port", help="so101: serial port of the follower, e.g. /dev/ttyACM0 (`lerobot-find-port`)")
    arm.add_argument("--robot-id", default="chefmate_follower",
                     help="calibration id, as `lerobot-calibrate --robot.id=...` (default chefmate_follower)")
    arm.add_argument("--calibration-dir", type=Path, help="default: LeRobot's calibration folder "
                     "(~/.cache/huggingface/lerobot/calibration/robots/so_follower); sim_so101: OUT/calibration")
    arm.add_argument("--robot-units", choices=("degrees", "normalized"), default="degrees",
                     help="the follower's use_degrees: degrees (LeRobot's default) or the -100..100 range")
    arm.add_argument("--front-cam", default="0", help="OpenCV index or path of the front camera (default 0)")
    arm.add_argument("--wrist-cam", default="2", help="OpenCV index or path of the wrist camera (default 2)")
    arm.add_argument("--cam-width", type=int, default=640)
    arm.add_argument("--cam-height", type=int, default=480)
    arm.add_argument("--cam-fps", type=int, default=30)

    op = p.add_argument_group("operator")
    op.add_argument("--countdown", type=float, help="seconds before each run (default 3; sim_so101: 0)")
    op.add_argument("--input", type=Path, help="read the operator's keys from this file, one per line "
                    "(an empty line is Enter) instead of the keyboard")
    op.add_argument("--auto-accept", action="store_true",
                    help="start each run at once and take every automatic guess (unattended sim runs)")
    op.add_argument("--no-detect", action="store_true", help="no automatic guesses: type every outcome")
    op.add_argument("--regions", type=Path, help="saved plate/holder regions (default OUT/regions.json, else "
                    "click them on the first front-camera frame)")
    op.add_argument("--reference-size", type=int, default=480, help="reference picture size in pixels")
    op.add_argument("--no-record", action="store_true", help="don't write the LeRobot dataset")
    op.add_argument("--realtime", action="store_true", help="sim_so101: pace the control loop at 30 Hz too")

    sf = p.add_argument_group("safety (on by default)")
    sf.add_argument("--joint-margin-deg", type=float, default=d.joint_margin_deg,
                    help=f"keep arm-joint targets this far inside their ranges (default {d.joint_margin_deg})")
    sf.add_argument("--max-step-deg", type=float, default=d.max_step_deg,
                    help=f"max arm-joint move per 1/30 s step from the measured position (default {d.max_step_deg})")
    sf.add_argument("--gripper-max-step-deg", type=float, default=d.gripper_max_step_deg,
                    help=f"the same for the gripper (default {d.gripper_max_step_deg})")
    sf.add_argument("--workspace", type=lambda t: _floats(t, 6, "--workspace"),
                    default=d.workspace_min_m + d.workspace_max_m,
                    help="jaw-tip box in metres, world frame (table top z=0, robot base at the origin): "
                         "xmin,ymin,zmin,xmax,ymax,zmax (default "
                         + ",".join(f"{v:g}" for v in d.workspace_min_m + d.workspace_max_m) + ")")
    sf.add_argument("--no-workspace", action="store_true", help="switch the workspace box off")
    sf.add_argument("--slow-trials", type=int, default=d.slow_trials,
                    help=f"the first N runs of each session move slowly (default {d.slow_trials})")
    sf.add_argument("--slow-factor", type=float, default=d.slow_factor,
                    help=f"... at this fraction of --max-step-deg (default {d.slow_factor})")
    sf.add_argument("--rest-pose", type=lambda t: _floats(t, 6, "--rest-pose"), default=HOME_DEG,
                    help="rest pose, sim joint angles in degrees (default the sim's start pose "
                         + ",".join(f"{v:g}" for v in HOME_DEG) + ")")
    sf.add_argument("--rest-step-deg", type=float, default=d.rest_step_deg,
                    help=f"speed of moves to rest, degrees per step (default {d.rest_step_deg})")
    sf.add_argument("--rest-timeout-s", type=float, default=d.rest_timeout_s)

    from eval.grid import add_grid_arguments

    add_grid_arguments(p.add_argument_group("grid (eval/run_matrix.py's flags, the same trials in the same order)"),
                       simulator=False, out=Path("outputs/real_arm"))  # not the sim grid's reports/matrix
    return p


def safety_config(a: argparse.Namespace) -> SafetyConfig:
    cfg = SafetyConfig(joint_margin_deg=a.joint_margin_deg, max_step_deg=a.max_step_deg,
                       gripper_max_step_deg=a.gripper_max_step_deg, workspace=not a.no_workspace,
                       workspace_min_m=tuple(a.workspace[:3]), workspace_max_m=tuple(a.workspace[3:]),
                       slow_trials=a.slow_trials, slow_factor=a.slow_factor, rest_pose_deg=tuple(a.rest_pose),
                       rest_step_deg=a.rest_step_deg, rest_timeout_s=a.rest_timeout_s)
    cfg.validate()
    return cfg


@contextlib.contextmanager
def ctrl_c_raises():
    """The safe stop hangs on SIGINT raising KeyboardInterrupt, but a process started in the background of a
    non-interactive shell inherits SIGINT ignored (and Python then installs no handler), and a library may replace
    it: put Python's default in place for the session (signal handlers can only be set from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def main(argv: list[str] | None = None, *, input_stream: TextIO | None = None, robot=None,
         policies: dict | None = None) -> int:
    """``input_stream``, ``robot`` and ``policies`` let tests script the operator, inject faults and bring their
    own policies (keyed by the names in --policies)."""
    from eval.grid import grid_config

    parser = build_parser()
    args = parser.parse_args(argv)
    grid = grid_config(args, parser.error)  # the sim benchmark's own grid flags, checked its way
    try:
        safety = safety_config(args)
    except ValueError as exc:
        parser.error(str(exc))
    command = " ".join(["python -m eval.real_arm", *(sys.argv[1:] if argv is None else argv)])
    try:
        with ctrl_c_raises(), quiet_libraries():
            return _run(args, grid, safety, command, input_stream, robot, policies)
    except (ValueError, RuntimeError) as exc:  # setup problems: one line, nothing lost
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before or after the trials (the session handles it during them)
        print("interrupted", file=sys.stderr)
        return EXIT["interrupted"]


def _run(args, grid, safety: SafetyConfig, command: str, input_stream, robot, policies) -> int:
    from eval.real_arm.operator import Operator, StreamKeys, default_keys
    from eval.real_arm.recording import TrialRecorder
    from eval.real_arm.reference import ReferencePictures
    from eval.real_arm.robot import JointUnits, RobotOptions, camera_source, connect_robot, make_robot
    from eval.real_arm.safety import SafetyFilter
    from eval.real_arm.session import Session, SessionFile, SessionSettings
    from eval.report import markdown_summary, write_report
    from eval.results import ResultStore
    from policies.registry import make_policy

    simulated = args.robot == "sim_so101"
    out: Path = grid.out
    plan = grid.episodes()
    if not plan:
        raise ValueError("the grid is empty; check --scenarios, --families and --seeds")

    # Everything that can reject the run happens before the arm moves or a file is written.
    policies = dict(policies or {})
    for name in grid.policies:
        if name not in policies:
            policies[name] = make_policy(name)
    privileged = [n for n in grid.policies if policies[n].abilities.privileged]
    if privileged and not simulated:
        raise ValueError(f"policy {', '.join(privileged)} reads the simulator's object poses (a sim-only "
                         f"reference); run it with --robot sim_so101, or give the real arm a camera policy "
                         f"such as vla:CHECKPOINT")
    options = RobotOptions(kind=args.robot, port=args.robot_port, id=args.robot_id,
                           calibration_dir=args.calibration_dir or (out / "calibration" if simulated else None),
                           front_cam=camera_source(args.front_cam), wrist_cam=camera_source(args.wrist_cam),
                           cam_width=args.cam_width, cam_height=args.cam_height, cam_fps=args.cam_fps,
                           use_degrees=args.robot_units == "degrees", image_size=grid.image_size)
    if not simulated and (args.auto_accept or args.realtime):
        raise ValueError("--auto-accept and --realtime are for --robot sim_so101; on the real arm the operator "
                         "starts every run and confirms every outcome")
    if args.input is not None and not args.input.is_file():
        raise ValueError(f"--input {args.input} does not exist; point it at a file of keys, one per line")
    meta = {"robot": args.robot, "robot_id": args.robot_id, "units": args.robot_units, "command": command,
            "safety": safety.as_dict()}
    session_file = SessionFile(out, plan, meta, resume=grid.resume)  # checks only

    owned = robot is None  # a robot handed in (tests) stays connected for its owner to inspect
    robot = make_robot(options) if owned else robot
    if not robot.is_connected:
        connect_robot(robot, options)
    keys_file = args.input.open() if args.input is not None else None
    recorder = references = None
    ended = "quit"
    logs = contextlib.ExitStack()
    try:
        session_file.start()
        logs.enter_context(library_log(out / LIBRARIES_LOG))  # LeRobot's Python logging: a file, not the console
        store = ResultStore(out / "episodes.csv", resume=True)  # the session file decided about resuming
        units = JointUnits.of(robot)
        safety_filter = SafetyFilter(safety)
        # LeRobot's own step clip as a backstop, looser than ours, in the arm's units.
        robot.config.max_relative_target = units.step_limits(safety.step_caps() * safety.backstop_factor)
        guesser = None if args.no_detect else _guesser(robot, simulated, args, out)
        if args.auto_accept and guesser is None:
            raise ValueError("--auto-accept needs automatic guesses; drop --no-detect (or drop --auto-accept)")
        keys = StreamKeys(input_stream or keys_file) if (input_stream or keys_file) else default_keys()
        countdown = args.countdown if args.countdown is not None else (0.0 if simulated else 3.0)
        operator = Operator(keys, countdown_s=countdown, auto_accept=args.auto_accept)
        references = ReferencePictures(out / "reference", size=args.reference_size)
        if not args.no_record:
            recorder = TrialRecorder(out / "dataset", options.image_shape, fps=30, source=args.robot)
        settings = SessionSettings(backend=args.robot, max_steps=grid.max_steps,
                                   realtime=not simulated or args.realtime)
        session = Session(robot, units, policies, operator, safety_filter, session_file, store, recorder,
                          references, guesser, settings)
        ended = session.run(plan)
    finally:
        if keys_file is not None:
            keys_file.close()
        if references is not None:
            references.close()
        if recorder is not None:
            recorder.close()
        if owned:
            _disconnect(robot)
        logs.close()
    rows = sum(1 for _ in store.rows())
    if rows:
        summary = write_report(store.path, out)
        print(markdown_summary(summary))
    print(f"{ended}: {rows} trials" + ("" if ended == "complete" else
                                       "; continue with the same command plus --resume"))
    print(f"wrote {store.path}" + (", summary.md and plots" if rows else "")
          + (", the dataset" if recorder is not None else "") + f" and the session files in {out}/; library "
          f"messages in {out / LIBRARIES_LOG}")
    return EXIT[ended]


def _guesser(robot, simulated: bool, args, out: Path):
    from eval.real_arm.guessing import real_guesser, sim_guesser

    try:
        return sim_guesser(robot) if simulated else real_guesser(robot, args.regions, out)
    except ImportError as exc:
        print(f"no automatic guesses ({exc}); type every outcome", file=sys.stderr)
        return None


def _disconnect(robot) -> None:
    """Leave the arm safe: LeRobot's disconnect switches torque off (disable_torque_on_disconnect)."""
    try:
        if robot.is_connected:
            robot.disconnect()
    except Exception as exc:  # noqa: BLE001  a dead link can't be closed cleanly; say so and go on
        print(f"warning: could not disconnect the arm cleanly ({type(exc).__name__}: {exc}); "
              f"switch the servo power off", file=sys.stderr)
