"""Record teleoperated demos of the sandwich task into a LeRobot dataset.

    python -m training.teleop --device keyboard --out datasets/teleop --scenario H,H \\
        --instruction "pick up the yellow cheese and put it into the white plate"
    python -m training.teleop --device leader --port /dev/ttyACM0 --out datasets/teleop --resume
    chefmate-teleop --device keyboard --keys session.keys --no-view --out datasets/replay   # headless, from a file
    chefmate-teleop --device leader --joints pick.joints --keys marks.keys --no-view --out datasets/replay

Keys: B start recording, N success (keep, next layout), R failure (discard, next layout), Esc quit.
Keyboard arm control: W/S forward/back, A/D left/right, Q/E up/down, J/L turn the jaws, Space toggles the
gripper (U/O open/close). With --device leader the follower mirrors the leader arm; the keys above still mark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.config_cli import defaults_from
from leisaac_tasks.console import quiet_libraries
from leisaac_tasks.dataset import DatasetError, DemoWriter
from leisaac_tasks.scenarios import Scenario
from training.teleop.keyboard import KeyboardConfig
from training.teleop.leader import LeaderConfig
from training.teleop.session import SessionConfig, TeleopError, TeleopSession

DEVICES = ("keyboard", "leader")
SEED_SPAN = 100_000  # more layouts than anyone will teleoperate in one sitting


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.teleop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True, choices=DEVICES)
    p.add_argument("--port", help="leader arm serial port, e.g. /dev/ttyACM0 (required with --device leader)")
    p.add_argument("--leader-id", default=LeaderConfig.id, help="calibration id of the leader (LeRobot's --teleop.id)")
    p.add_argument("--calibration-dir", type=Path, help="where the leader calibration lives "
                   "(default: LeRobot's calibration folder)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.add_argument("--scenario", help="cheese,bread placement: H holder, P plate, - absent (default %(default)s)")
    p.add_argument("--instruction", help="task text stored with every frame")
    p.add_argument("--episodes", type=int, default=20, help="stop after this many kept demos this run (default 20)")
    p.add_argument("--seed", type=int, default=None, help="first layout seed (default 0, or after the last one "
                   "already in --out with --resume)")
    p.add_argument("--max-steps", type=int, help="discard an attempt after this many steps (default %(default)s)")
    p.add_argument("--image-size", type=int, default=224, help="square camera images, pixels (default 224)")
    p.add_argument("--fps", type=float, help="real-time loop rate; lower is slow motion (the sim and "
                   "the dataset stay at 30 Hz)")
    p.add_argument("--pos-step", type=float, help="keyboard: metres per tick a move key is held")
    p.add_argument("--no-view", action="store_true", help="no camera window")
    p.add_argument("--resume", action="store_true", help="add to an existing --out dataset")
    p.add_argument("--joints", type=Path, help="with --device leader: replay the leader's joints from a file (six "
                   "numbers per line: 5 joints in degrees, gripper 0-100, one line per control step) instead of "
                   "reading the arm")
    p.add_argument("--keys", type=Path, help="replay key taps from a file instead of the keyboard ('TICK KEY' per "
                                             "line, e.g. '0 b' then '1 w'): a headless session on the same code path")
    defaults_from(p, SessionConfig, KeyboardConfig)
    return p


def validate(args: argparse.Namespace) -> None:
    """Raise ``TeleopError`` on bad input, before anything is opened or written."""
    if args.joints is not None:
        if args.device != "leader":
            raise TeleopError("--joints replays a leader arm; use it with --device leader")
        from training.teleop.leader import read_joint_stream

        try:
            read_joint_stream(args.joints)
        except (OSError, ValueError) as exc:
            raise TeleopError(f"--joints: {exc}") from None
    elif args.device == "leader" and not args.port:
        raise TeleopError("--device leader needs --port (find it with `lerobot-find-port`)")
    try:
        Scenario.parse(args.scenario)
    except ValueError as exc:
        raise TeleopError(str(exc)) from None
    if not args.instruction.strip():
        raise TeleopError("--instruction is empty")
    for flag, value, low in (("--episodes", args.episodes, 1), ("--max-steps", args.max_steps, 1),
                             ("--image-size", args.image_size, 16)):
        if value < low:
            raise TeleopError(f"{flag} must be at least {low}, got {value}")
    if not 0 < args.fps <= 120:
        raise TeleopError(f"--fps must be in (0, 120], got {args.fps}")
    if not 0 < args.pos_step <= 0.05:
        raise TeleopError(f"--pos-step must be in (0, 0.05] metres, got {args.pos_step}")
    if args.out.exists() and not args.resume:
        raise TeleopError(f"{args.out} already exists; pass --resume to add to it, or choose another --out")
    from training.teleop.keyboard import PynputKeySource, read_key_script

    if args.keys is not None:
        try:
            read_key_script(args.keys)
        except (OSError, ValueError) as exc:
            raise TeleopError(f"--keys: {exc}") from None
        return  # a key script needs no keyboard or display
    PynputKeySource.check()  # both devices take their B/N/R/Esc marks from the keyboard


def make_device(args: argparse.Namespace):
    from training.teleop.keyboard import read_key_script

    keys = read_key_script(args.keys) if args.keys is not None else None
    if args.device == "keyboard":
        from training.teleop.keyboard import KeyboardTeleop

        return KeyboardTeleop(KeyboardConfig(pos_step=args.pos_step), keys)
    from training.teleop.leader import LeaderArmTeleop, RecordedLeader, read_joint_stream

    if args.joints is not None:
        return RecordedLeader(read_joint_stream(args.joints), keys)
    return LeaderArmTeleop(LeaderConfig(port=args.port, id=args.leader_id, calibration_dir=args.calibration_dir),
                           keys)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with quiet_libraries():  # x264 statistics and "Map:" bars would scroll the key help away after each kept demo
        return _record(args)


def _record(args: argparse.Namespace) -> int:
    try:
        validate(args)
        from leisaac_tasks.env import SandwichEnv

        env = SandwichEnv(cameras=("front", "wrist"), image_size=args.image_size)
        try:
            size = (args.image_size, args.image_size)
            with DemoWriter(args.out, size, fps=int(env.scene.control_hz), resume=args.resume) as writer:
                first = args.seed
                if first is None:  # resume after the last layout this dataset has seen
                    first = max((a.layout_seed for a in writer.journal), default=-1) + 1
                already = writer.episodes
                config = SessionConfig(scenario=args.scenario, instruction=args.instruction,
                                       seeds=range(first, first + SEED_SPAN), episodes=args.episodes,
                                       max_steps=args.max_steps, fps=args.fps, show=not args.no_view)
                print(__doc__.split("\n\n", 2)[2].strip())
                result = TeleopSession(env, make_device(args), writer, config).run()
                total = already + len(result.kept)
                print(f"{len(result.kept)} kept, {len(result.attempts) - len(result.kept)} discarded this run")
                print(f"wrote {args.out} ({total} demos)" if total else "nothing kept, so no dataset was written")
        finally:
            env.close()
    except (TeleopError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
