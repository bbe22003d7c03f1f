"""Leader-arm teleop: LeRobot's own ``SO101Leader`` drives the sim follower joint for joint.

Units, explicitly. The leader is opened with ``use_degrees=True``, so LeRobot's calibration turns each servo's
raw 0-4095 ticks into: the five arm joints in degrees about the middle of the range recorded at calibration,
and the gripper in 0-100 % of its recorded range (0 = closed). ``units.lerobot_to_sim`` maps that onto the
MJCF: degrees -> radians (the sim's zero is the middle of each joint's range too) and 0-100 -> the gripper's
closed...open limits. So a leader calibrated with LeRobot's usual procedure (``lerobot-calibrate``: joints at
mid-range, then each through its full range) lines up with the sim without any extra offsets.

Control marks come from the keyboard, as in LeIsaac: B start, N success, R failure, Esc quit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, from_motor_dict, lerobot_to_sim
from training.teleop.keyboard import KeySource, PynputKeySource, control_events
from training.teleop.session import TeleopError


@dataclass(frozen=True)
class LeaderConfig:
    port: str  # the leader's serial port, e.g. /dev/ttyACM0 (`lerobot-find-port` tells)
    id: str = "chefmate_leader"  # names the calibration file, as in `lerobot-calibrate --teleop.id=...`
    calibration_dir: Path | None = None  # None: LeRobot's default (~/.cache/huggingface/lerobot/calibration)


class LeaderArmTeleop:
    name = "leader"

    def __init__(self, config: LeaderConfig, keys: KeySource | None = None):
        self.cfg = config
        self.keys: KeySource = keys if keys is not None else PynputKeySource()
        self.arm = None  # lerobot SO101Leader, made in connect()

    def connect(self) -> None:
        from lerobot.teleoperators.so_leader import SO101Leader, SO101LeaderConfig

        # Degrees, not LeRobot's default -100..100 for the arm joints: units.py's contract.
        self.arm = SO101Leader(SO101LeaderConfig(port=self.cfg.port, id=self.cfg.id, use_degrees=True,
                                                 calibration_dir=self.cfg.calibration_dir))
        try:
            # With no calibration file, or one that disagrees with the servos, LeRobot runs its interactive
            # calibration here (prompts on the terminal) and saves the file for next time.
            self.arm.connect(calibrate=True)
        except ConnectionError as exc:
            raise TeleopError(f"no SO-101 leader answers on {self.cfg.port}: {str(exc).strip().splitlines()[0]} "
                              f"(find the port with `lerobot-find-port`)") from exc
        self.keys.start()

    def disconnect(self) -> None:
        self.keys.stop()
        if self.arm is not None and self.arm.is_connected:
            self.arm.disconnect()

    def reset(self) -> None:
        pass  # the leader's pose is absolute: nothing to forget between episodes

    def events(self) -> set[str]:
        return control_events(self.keys.poll())

    def read_lerobot(self) -> np.ndarray:
        """The leader's joints in LeRobot units: 5 x degrees, gripper 0-100."""
        return from_motor_dict(self.arm.get_action())

    def command(self, q_current: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.clip(lerobot_to_sim(self.read_lerobot()), JOINT_LOW, JOINT_HIGH)


def read_joint_stream(path: Path) -> np.ndarray:
    """A leader recording: one control step per line, six numbers in LeRobot units (5 arm joints in degrees, then
    the gripper 0-100), as ``SO101Leader.get_action`` gives them; blank lines and ``#`` comments are skipped."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            values = []
        if len(values) != 6 or not np.isfinite(values).all():
            raise ValueError(f"{path}, line {n}: {line!r} is not six numbers (5 joints in degrees, gripper 0-100); "
                             f"fix the line")
        rows.append(values)
    if not rows:
        raise ValueError(f"{path} holds no joint rows; write one line of six numbers per control step")
    return np.asarray(rows, dtype=np.float64)


class RecordedLeader(LeaderArmTeleop):
    """The leader device replaying a joint stream from a file instead of reading the arm: step k of the session
    gets row k, and the last row holds. Everything after the joints (units, clipping, the session) is shared."""

    name = "leader"

    def __init__(self, stream: np.ndarray, keys: KeySource | None = None):
        super().__init__(LeaderConfig(port="(recorded)"), keys)
        self.stream, self.step = stream, 0

    def connect(self) -> None:
        self.keys.start()

    def disconnect(self) -> None:
        self.keys.stop()

    def read_lerobot(self) -> np.ndarray:
        row = self.stream[min(self.step, len(self.stream) - 1)]
        self.step += 1
        return row.copy()
