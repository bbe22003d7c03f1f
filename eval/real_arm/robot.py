"""Which arm the session drives, how it is built and opened, and how its units meet the sim's radians.

- ``so101``: LeRobot's own SO-101 follower (``SO101FollowerConfig`` + ``make_robot_from_config``), OpenCV cameras
  named ``front`` and ``wrist``, calibration from LeRobot's calibration folder (written by ``lerobot-calibrate``).
- ``sim_so101``: ``SimSO101``, the same interface over the embedded simulator.

``JointUnits`` converts explicitly between LeRobot's units (``use_degrees``: degrees about the middle of the
calibrated range; otherwise -100..100 across it; the gripper 0-100 either way) and the sim's radians.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from leisaac_tasks.units import (JOINT_NAMES, MOTOR_KEYS, calibration_spans, from_motor_dict, lerobot_to_sim,
                                 normalized_to_sim, sim_to_lerobot, sim_to_normalized)

ROBOT_KINDS: tuple[str, ...] = ("so101", "sim_so101")
CAMERAS: tuple[str, ...] = ("front", "wrist")


class RobotSetupError(RuntimeError):
    """The arm can't be opened as asked; the message names the flag or command that fixes it."""


@dataclass(frozen=True)
class RobotOptions:
    kind: str
    port: str | None = None  # so101: the follower's serial port (`lerobot-find-port`)
    id: str = "chefmate_follower"  # names the calibration file, as `lerobot-calibrate --robot.id=...`
    calibration_dir: Path | None = None  # None: LeRobot's folder (so101) / the sim's own default
    front_cam: int | str = 0  # OpenCV index or device path
    wrist_cam: int | str = 2
    cam_width: int = 640
    cam_height: int = 480
    cam_fps: int = 30
    use_degrees: bool = True
    image_size: int = 224  # sim_so101: square camera images

    def __post_init__(self) -> None:
        if self.kind not in ROBOT_KINDS:
            raise RobotSetupError(f"unknown --robot {self.kind!r}; choose one of {', '.join(ROBOT_KINDS)}")
        if self.kind == "so101" and not self.port:
            raise RobotSetupError("--robot so101 needs --robot-port (find it with `lerobot-find-port`)")

    @property
    def image_shape(self) -> tuple[int, int]:
        """(width, height) of both cameras' frames."""
        if self.kind == "sim_so101":
            return self.image_size, self.image_size
        return self.cam_width, self.cam_height


def camera_source(text: str) -> int | str:
    """``--front-cam 0`` is an OpenCV index, ``--front-cam /dev/video4`` a path."""
    return int(text) if str(text).isdigit() else str(text)


def robot_config(opts: RobotOptions):
    """The LeRobot ``RobotConfig`` for the chosen arm."""
    if opts.kind == "sim_so101":
        from eval.real_arm.sim_robot import SimSO101Config

        return SimSO101Config(id=opts.id, calibration_dir=opts.calibration_dir, use_degrees=opts.use_degrees,
                              image_size=opts.image_size, camera_names=CAMERAS)
    from lerobot.cameras.opencv import OpenCVCameraConfig
    from lerobot.robots.so_follower import SO101FollowerConfig

    cams = {name: OpenCVCameraConfig(index_or_path=Path(src) if isinstance(src, str) else src, fps=opts.cam_fps,
                                     width=opts.cam_width, height=opts.cam_height)
            for name, src in (("front", opts.front_cam), ("wrist", opts.wrist_cam))}
    return SO101FollowerConfig(port=opts.port, id=opts.id, calibration_dir=opts.calibration_dir,
                               use_degrees=opts.use_degrees, cameras=cams)


def make_robot(opts: RobotOptions):
    """Build (not connect) the arm through LeRobot's own factory."""
    from lerobot.robots.utils import make_robot_from_config

    import eval.real_arm  # noqa: F401  registers "sim_so101" with LeRobot's RobotConfig

    return make_robot_from_config(robot_config(opts))


def connect_robot(robot, opts: RobotOptions) -> None:
    """Open the arm; a missing calibration or port gives one line naming the fix instead of a prompt or trace."""
    if opts.kind == "so101" and not robot.calibration_fpath.is_file():
        raise RobotSetupError(
            f"no calibration for --robot-id {opts.id} at {robot.calibration_fpath}; calibrate first: "
            f"`lerobot-calibrate --robot.type=so101_follower --robot.port={opts.port} --robot.id={opts.id}`")
    try:
        # With a calibration file that disagrees with the servos, LeRobot asks (Enter keeps the file's).
        robot.connect(calibrate=True)
    except (ConnectionError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RobotSetupError(f"could not open the arm on {opts.port or opts.kind}: {first} (check the USB cable "
                              f"and power; `lerobot-find-port` finds the port, `lerobot-find-cameras opencv` "
                              f"the camera indices)") from exc


def is_simulated(robot) -> bool:
    return hasattr(robot, "stage") and hasattr(robot, "ground_truth")


class JointUnits:
    """LeRobot units of one robot <-> sim radians, chosen by ``use_degrees`` as the robot itself chooses."""

    def __init__(self, use_degrees: bool, calibration: Mapping[str, Any] | None = None):
        self.use_degrees = use_degrees
        self.spans: np.ndarray | None = None
        if not use_degrees:
            if not calibration:
                raise RobotSetupError("the normalized range needs the arm's calibration; calibrate it first "
                                      "(`lerobot-calibrate`) or use degrees (--robot-units degrees)")
            flipped = [n for n in JOINT_NAMES if getattr(calibration[n], "drive_mode", 0)]
            if flipped:
                raise RobotSetupError(f"calibration has drive_mode 1 on {', '.join(flipped)}; SO-101 calibrations "
                                      f"from `lerobot-calibrate` use 0: recalibrate")
            self.spans = calibration_spans(calibration)

    @classmethod
    def of(cls, robot) -> "JointUnits":
        return cls(bool(robot.config.use_degrees), robot.calibration)

    @property
    def name(self) -> str:
        return "degrees" if self.use_degrees else "normalized"

    def to_lerobot(self, q: np.ndarray) -> np.ndarray:
        return sim_to_lerobot(q) if self.use_degrees else sim_to_normalized(q, self.spans)

    def to_sim(self, v: np.ndarray) -> np.ndarray:
        return lerobot_to_sim(v) if self.use_degrees else normalized_to_sim(v, self.spans)

    def observation_to_sim(self, obs: Mapping[str, Any]) -> np.ndarray:
        """A robot observation or action dict -> 6 joint angles in radians."""
        return self.to_sim(from_motor_dict(obs))

    def action(self, q: np.ndarray) -> dict[str, float]:
        """Radians -> the robot's ``send_action`` dict."""
        return {key: float(v) for key, v in zip(MOTOR_KEYS, self.to_lerobot(q))}

    def step_limits(self, step_rad: np.ndarray) -> dict[str, float]:
        """Per-joint step sizes in radians -> LeRobot's ``max_relative_target`` dict (motor names, robot units)."""
        step = self.to_lerobot(np.asarray(step_rad, float)) - self.to_lerobot(np.zeros(len(JOINT_NAMES)))
        return {name: float(abs(v)) for name, v in zip(JOINT_NAMES, step)}


def torque_off(robot) -> None:
    robot.bus.disable_torque()


def torque_on(robot) -> None:
    """Enable torque where the arm is: goal = present position first, so no servo jumps to a stale goal."""
    if not is_simulated(robot):  # the simulated bus holds the present pose itself when torque comes on
        robot.bus.sync_write("Goal_Position", robot.bus.sync_read("Present_Position"))
    robot.bus.enable_torque()
