"""A simulated SO-101 follower behind LeRobot's ``Robot`` interface, so the real-arm path runs without the arm.

``SimSO101`` is a ``lerobot.robots.Robot`` with the real follower's feature names ("shoulder_pan.pos" ...
"gripper.pos", cameras "front" and "wrist" as (H, W, 3) uint8) and units (``use_degrees``: degrees, else LeRobot's
-100..100; gripper 0-100). The physics is the embedded MuJoCo sandwich scene (``leisaac_tasks.env.SandwichEnv``);
every ``send_action`` advances it by one control period.

Its ``bus`` stands in for ``FeetechMotorsBus``: positions travel as integer encoder ticks through LeRobot's
normalisation formulas and the calibration, torque can be switched off (the servos go limp: zero actuator gains),
and ``bus.fail_after`` makes the serial link fail the way the real one does:
- ``"unplugged"``: the USB adapter is gone; pyserial raises ``serial.SerialException`` (an ``OSError``) from the
  read, and nothing between it and the caller catches it (scservo_sdk, FeetechMotorsBus, SOFollower);
- ``"no_response"``: the port is open but the servos are silent (power cut, cable off the first servo);
  ``FeetechMotorsBus.sync_read`` raises ``ConnectionError`` (also an ``OSError``) with LeRobot's message.

Beyond the interface, three sim-only methods do what the operator's hands and eyes do on the real arm:
``stage`` lays out a cell's ingredients, ``privileged_info`` gives scripted policies the object poses, and
``ground_truth`` returns the physics outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import serial
from lerobot.motors import Motor, MotorCalibration, MotorNormMode
from lerobot.robots import Robot, RobotConfig
from lerobot.robots.utils import ensure_safe_goal_position
from lerobot.utils.decorators import check_if_already_connected, check_if_not_connected

from leisaac_tasks.outcomes import EpisodeOutcome
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, JOINT_NAMES, mjcf_calibration_ranges

STS3215_MAX_RES = 4095  # resolution - 1, what LeRobot's DEGREES mode divides by
FAULTS = ("unplugged", "no_response")


@RobotConfig.register_subclass("sim_so101")
@dataclass
class SimSO101Config(RobotConfig):
    use_degrees: bool = True  # as SO101FollowerConfig: degrees, else LeRobot's normalized range
    max_relative_target: float | dict[str, float] | None = None  # as SO101FollowerConfig, in the same units
    disable_torque_on_disconnect: bool = True
    image_size: int = 224  # square camera images
    # Not ``cameras``: LeRobot's RobotConfig checks a ``cameras`` field for real camera configs.
    camera_names: tuple[str, ...] = ("front", "wrist")
    backend: str = "mujoco"


class SimMotorBus:
    """Six simulated STS3215s: what ``FeetechMotorsBus`` offers the follower, over the sim's joints.

    Encoder model: the arm joints read ``mid + q * TICKS_PER_RAD`` ticks (mid = middle of the calibrated range,
    the sim's zero), the gripper maps closed...open onto its calibrated range; readings are whole ticks.
    """

    def __init__(self, motors: dict[str, Motor]):
        self.motors = motors
        self.servo_ranges = {n: MotorCalibration(id=m.id, drive_mode=0, homing_offset=0, range_min=lo, range_max=hi)
                             for (n, m), (lo, hi) in zip(motors.items(), mjcf_calibration_ranges().values())}
        self.calibration: dict[str, MotorCalibration] = {}
        self.env = None  # the SandwichEnv the servos sit in, attached on connect
        self.torque_enabled = False
        self._gains: tuple[np.ndarray, np.ndarray] | None = None
        self._fault: str | None = None
        self._transfers_left: int | None = None
        self._broken = False

    # --- link ------------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.env is not None

    def connect(self, env) -> None:
        self.env = env
        model = env.sim.model
        self._gains = (model.actuator_gainprm.copy(), model.actuator_biasprm.copy())
        self.torque_enabled = True

    def disconnect(self, disable_torque: bool = True) -> None:
        if disable_torque:
            self.disable_torque()
        self.env = None

    def fail_after(self, transfers: int, fault: str = "unplugged") -> None:
        """Fault injection: the link dies after ``transfers`` more bus transfers (reads or writes), for good."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
        self._fault, self._transfers_left = fault, int(transfers)

    def clear_fault(self) -> None:
        """The cable is back in."""
        self._fault, self._transfers_left, self._broken = None, None, False

    def _transfer(self, what: str) -> None:
        if self._transfers_left is not None:
            if self._transfers_left <= 0:
                self._broken = True
            self._transfers_left -= 1
        if not self._broken:
            return
        if self._fault == "unplugged":  # pyserial's own words for a vanished USB device (serialposix.read)
            raise serial.SerialException("device reports readiness to read but returned no data "
                                         "(device disconnected or multiple access on port?)")
        ids = [m.id for m in self.motors.values()]  # FeetechMotorsBus's words (motors_bus.py + scservo_sdk)
        raise ConnectionError(f"Failed to {what} on ids={ids} after 1 tries. [TxRxResult] There is no status packet!")

    # --- calibration -----------------------------------------------------------------------------------
    @property
    def is_calibrated(self) -> bool:
        return bool(self.calibration) and all(
            self.calibration.get(n) is not None and self.calibration[n].range_min == c.range_min
            and self.calibration[n].range_max == c.range_max for n, c in self.servo_ranges.items())

    # --- LeRobot's normalisation (MotorsBus._normalize / _unnormalize) ----------------------------------------
    def _ticks(self, q: np.ndarray) -> dict[str, int]:
        out = {}
        for i, name in enumerate(JOINT_NAMES):
            cal = self.calibration[name]
            if name == "gripper":
                frac = (q[i] - JOINT_LOW[i]) / (JOINT_HIGH[i] - JOINT_LOW[i])
                out[name] = round(cal.range_min + frac * (cal.range_max - cal.range_min))
            else:
                out[name] = round((cal.range_min + cal.range_max) / 2 + q[i] * STS3215_MAX_RES / (2 * np.pi))
        return out

    def _radians(self, ticks: dict[str, int]) -> np.ndarray:
        q = np.empty(len(JOINT_NAMES))
        for i, name in enumerate(JOINT_NAMES):
            cal = self.calibration[name]
            if name == "gripper":
                frac = (ticks[name] - cal.range_min) / (cal.range_max - cal.range_min)
                q[i] = JOINT_LOW[i] + frac * (JOINT_HIGH[i] - JOINT_LOW[i])
            else:
                q[i] = (ticks[name] - (cal.range_min + cal.range_max) / 2) * 2 * np.pi / STS3215_MAX_RES
        return q

    def _normalize(self, name: str, ticks: int) -> float:
        cal, mode = self.calibration[name], self.motors[name].norm_mode
        lo, hi = cal.range_min, cal.range_max
        bounded = min(hi, max(lo, ticks))
        if mode is MotorNormMode.RANGE_M100_100:
            return (bounded - lo) / (hi - lo) * 200 - 100
        if mode is MotorNormMode.RANGE_0_100:
            return (bounded - lo) / (hi - lo) * 100
        return (ticks - (lo + hi) / 2) * 360 / STS3215_MAX_RES

    def _unnormalize(self, name: str, value: float) -> int:
        cal, mode = self.calibration[name], self.motors[name].norm_mode
        lo, hi = cal.range_min, cal.range_max
        if mode is MotorNormMode.RANGE_M100_100:
            return int((min(100.0, max(-100.0, value)) + 100) / 200 * (hi - lo) + lo)
        if mode is MotorNormMode.RANGE_0_100:
            return int(min(100.0, max(0.0, value)) / 100 * (hi - lo) + lo)
        return int(value * STS3215_MAX_RES / 360 + (lo + hi) / 2)

    # --- registers ---------------------------------------------------------------------------------------
    def sync_read(self, data_name: str) -> dict[str, float]:
        if data_name != "Present_Position":
            raise NotImplementedError(f"the simulated bus reads Present_Position only, not {data_name!r}")
        self._transfer(f"sync read '{data_name}'")
        ticks = self._ticks(self.env.sim.joint_positions())
        return {name: self._normalize(name, t) for name, t in ticks.items()}

    def sync_write(self, data_name: str, values: dict[str, float]) -> np.ndarray:
        """Goal positions in the bus's units -> the radians the servos will drive to (returned for the physics)."""
        if data_name != "Goal_Position":
            raise NotImplementedError(f"the simulated bus writes Goal_Position only, not {data_name!r}")
        self._transfer(f"sync write '{data_name}'")
        return self._radians({name: self._unnormalize(name, values[name]) for name in JOINT_NAMES})

    def enable_torque(self) -> None:
        self._transfer("write 'Torque_Enable'")
        model = self.env.sim.model
        model.actuator_gainprm[:], model.actuator_biasprm[:] = self._gains
        self.env.sim.data.ctrl[:] = self.env.sim.joint_positions()  # hold where it is, like a servo waking up
        self.torque_enabled = True

    def disable_torque(self) -> None:
        """The servos go limp: no position loop, the arm sags under gravity against the joints' damping."""
        self._transfer("write 'Torque_Enable'")
        model = self.env.sim.model
        model.actuator_gainprm[:, 0] = 0.0
        model.actuator_biasprm[:, :3] = 0.0
        self.torque_enabled = False


class SimSO101(Robot):
    config_class = SimSO101Config
    name = "sim_so101"

    def __init__(self, config: SimSO101Config):
        super().__init__(config)
        self.config = config
        body = MotorNormMode.DEGREES if config.use_degrees else MotorNormMode.RANGE_M100_100
        self.bus = SimMotorBus({name: Motor(i + 1, "sts3215", MotorNormMode.RANGE_0_100 if name == "gripper" else body)
                                for i, name in enumerate(JOINT_NAMES)})
        self.bus.calibration = self.calibration
        self.env = None
        self._info: dict[str, Any] = {}

    # --- features --------------------------------------------------------------------------------------
    @cached_property
    def observation_features(self) -> dict[str, type | tuple]:
        size = self.config.image_size
        return {**self.action_features, **{cam: (size, size, 3) for cam in self.config.camera_names}}

    @cached_property
    def action_features(self) -> dict[str, type]:
        return {f"{motor}.pos": float for motor in self.bus.motors}

    # --- lifetime --------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.bus.is_connected

    @check_if_already_connected
    def connect(self, calibrate: bool = True) -> None:
        from leisaac_tasks.env import SandwichEnv  # MuJoCo loads only when the arm is switched on

        # No env cameras: the env would render them on every step; get_observation renders once, on demand.
        self.env = SandwichEnv(backend=self.config.backend, cameras=(), image_size=self.config.image_size)
        for cam in self.config.camera_names:
            self.env.scene.camera(cam)  # an unknown camera name fails now
        _, self._info = self.env.reset(seed=0, options={"scenario": "-,-"})  # an empty table until staged
        self.bus.connect(self.env)
        if not self.is_calibrated and calibrate:
            self.calibrate()
        self.configure()

    @property
    def is_calibrated(self) -> bool:
        return self.bus.is_calibrated

    def calibrate(self) -> None:
        """No hands needed: the simulated servos' ranges are the MJCF's; write them as LeRobot would."""
        self.calibration = {name: MotorCalibration(**vars(cal)) for name, cal in self.bus.servo_ranges.items()}
        self.bus.calibration = self.calibration
        self._save_calibration()

    def configure(self) -> None:
        pass  # the sim's servo gains come from the scene spec

    @check_if_not_connected
    def disconnect(self) -> None:
        try:
            self.bus.disconnect(self.config.disable_torque_on_disconnect)
        finally:
            self.bus.env = None
            self.env.close()
            self.env = None

    # --- I/O -------------------------------------------------------------------------------------------
    @check_if_not_connected
    def get_observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {f"{motor}.pos": val for motor, val in self.bus.sync_read("Present_Position").items()}
        for cam in self.config.camera_names:
            obs[cam] = self.env.sim.render(cam)
        return obs

    @check_if_not_connected
    def send_action(self, action: dict[str, float]) -> dict[str, float]:
        """Goal positions, clipped to ``max_relative_target`` exactly as the real follower does; one control
        period of physics passes. Returns what was sent."""
        goal = {key.removesuffix(".pos"): float(val) for key, val in action.items() if key.endswith(".pos")}
        if self.config.max_relative_target is not None:
            present = self.bus.sync_read("Present_Position")
            goal = ensure_safe_goal_position({k: (g, present[k]) for k, g in goal.items()},
                                             self.config.max_relative_target)
        target = self.bus.sync_write("Goal_Position", goal)
        _, _, _, _, self._info = self.env.step(target)
        return {f"{motor}.pos": val for motor, val in goal.items()}

    # --- sim-only: the operator's hands and eyes --------------------------------------------------------
    @check_if_not_connected
    def stage(self, scenario, seed: int, instruction: str = "") -> None:
        """Lay out a cell (seeded, as in the sim benchmark) and put the arm at its start pose."""
        # Limp servos stay limp: the gains live in the model, which a reset leaves alone.
        _, self._info = self.env.reset(seed=int(seed), options={"scenario": scenario, "instruction": instruction})

    def privileged_info(self) -> dict[str, Any]:
        """The env's info (object poses, plate region): only scripted reference policies may read it."""
        return self._info

    def ground_truth(self) -> EpisodeOutcome:
        return self.env.outcome()

    def sim_time(self) -> float:
        return self.env.sim.sim_time()
