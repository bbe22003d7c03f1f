"""Safety, on by default: every joint target a policy produces passes ``SafetyFilter.filter`` before the arm sees it.

Per control step, in this order:
1. joint limits: targets are clipped into the SO-101's joint ranges, less a margin;
2. step size (LeRobot's ``max_relative_target`` idea): no joint target further than a cap from where the joint
   is now; on the first ``slow_trials`` trials of each run the arm joints' cap is scaled down (a speed cap);
3. workspace: the jaw tip, through forward kinematics (``leisaac_tasks.kinematics``), must stay in a box; a step
   that would leave it is cut back along its way to the farthest point still inside (never further out than now).
LeRobot's own ``max_relative_target`` is set on the robot as well, a little looser, as a backstop.

When something goes wrong (Ctrl-C, any exception, a policy error) ``safe_stop`` moves the arm to its rest pose and
switches torque off. Everything that fired is written to a ``SafetyLog`` that goes into the trial's journal entry.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from eval.runner import error_text
from leisaac_tasks.kinematics import FIXED_PAD_FACE_LOCAL, SO101Kinematics
from leisaac_tasks.spec import RobotSpec
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, JOINT_NAMES

# The fixed jaw's pad reaches 7.2 mm below its face centre (MJCF pad half-height): the lowest point of the hand.
JAW_TIP_LOCAL = FIXED_PAD_FACE_LOCAL + np.array([0.0, 0.0, -0.0072])
HOME_DEG: tuple[float, ...] = tuple(round(float(np.degrees(v)), 2) for v in RobotSpec().home_qpos)


@dataclass(frozen=True)
class SafetyConfig:
    """Defaults suit the benchmark scene (table top z = 0, robot base on its 6 cm riser); each has a flag."""

    joint_margin_deg: float = 2.0  # arm joints stay this far inside their ranges (the gripper may close fully)
    max_step_deg: float = 10.0  # arm joints, per 1/30 s step, from the measured position (300 deg/s)
    gripper_max_step_deg: float = 40.0  # the gripper squeezes by commanding past the slice: keep this wide
    workspace: bool = True
    workspace_min_m: tuple[float, float, float] = (0.05, -0.25, 0.01)  # jaw tip, world frame, metres
    workspace_max_m: tuple[float, float, float] = (0.40, 0.25, 0.35)
    slow_trials: int = 3  # the first trials of each run move slowly
    slow_factor: float = 0.5  # ... at this fraction of max_step_deg
    rest_pose_deg: tuple[float, ...] = HOME_DEG  # sim joint angles in degrees; the sim episodes' start pose
    rest_step_deg: float = 2.0  # speed of moves to rest (60 deg/s at 30 Hz)
    rest_tolerance_deg: float = 4.0
    rest_timeout_s: float = 8.0
    backstop_factor: float = 1.5  # LeRobot's max_relative_target on the robot = this x the step caps

    def validate(self) -> None:
        """Raise ``ValueError`` naming the flag to fix."""
        checks = [
            ("--joint-margin-deg", 0 <= self.joint_margin_deg < 20),
            ("--max-step-deg", 0 < self.max_step_deg <= 45),
            ("--gripper-max-step-deg", 0 < self.gripper_max_step_deg <= 120),
            ("--slow-trials", self.slow_trials >= 0), ("--slow-factor", 0 < self.slow_factor <= 1),
            ("--rest-step-deg", 0 < self.rest_step_deg <= 10), ("--rest-timeout-s", self.rest_timeout_s > 0),
            ("--rest-tolerance-deg", self.rest_tolerance_deg > 0),
            ("--workspace", all(lo < hi for lo, hi in zip(self.workspace_min_m, self.workspace_max_m))),
        ]
        for flag, ok in checks:
            if not ok:
                raise ValueError(f"{flag} is out of range ({self}); see --help for the allowed values")
        if len(self.rest_pose_deg) != len(JOINT_NAMES):
            raise ValueError(f"--rest-pose needs {len(JOINT_NAMES)} angles in degrees ({', '.join(JOINT_NAMES)})")
        rest = np.radians(self.rest_pose_deg)
        if np.any(rest < JOINT_LOW) or np.any(rest > JOINT_HIGH):
            raise ValueError(f"--rest-pose {self.rest_pose_deg} is outside the joint ranges "
                             f"{np.degrees(JOINT_LOW).round(1).tolist()} .. {np.degrees(JOINT_HIGH).round(1).tolist()}")

    @property
    def rest_pose(self) -> np.ndarray:
        return np.radians(np.asarray(self.rest_pose_deg, float))

    def joint_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Target bounds, radians: the joint ranges less the margin on the arm joints."""
        margin = np.radians(self.joint_margin_deg) * np.array([1, 1, 1, 1, 1, 0])
        return JOINT_LOW + margin, JOINT_HIGH - margin

    def step_caps(self, slow: bool = False) -> np.ndarray:
        """Per-joint step caps, radians."""
        arm = self.max_step_deg * (self.slow_factor if slow else 1.0)
        return np.radians(np.array([arm] * 5 + [self.gripper_max_step_deg]))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SafetyLog:
    """What the safety layer did during one trial: per-kind clip counts and the discrete events, in order."""

    clips: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def clip(self, kind: str, step: int, amount: float, **detail: Any) -> None:
        """A target changed by ``kind`` at ``step``; ``amount`` is how far (deg, or mm for the workspace)."""
        entry = self.clips.setdefault(kind, {"count": 0, "first_step": step, "worst": 0.0, **detail})
        entry["count"] += 1
        if amount > entry["worst"]:
            entry.update(worst=round(float(amount), 3), **detail)

    def event(self, kind: str, **detail: Any) -> None:
        self.events.append({"event": kind, **detail})

    def count(self, kind: str) -> int:
        return self.clips.get(kind, {}).get("count", 0)

    def to_json(self) -> dict[str, Any]:
        return {"clips": self.clips, "events": self.events}


class SafetyFilter:
    def __init__(self, cfg: SafetyConfig, kinematics: SO101Kinematics | None = None):
        cfg.validate()
        self.cfg = cfg
        self.low, self.high = cfg.joint_bounds()
        self.kin = (kinematics or SO101Kinematics()) if cfg.workspace else None
        self.box_min, self.box_max = np.array(cfg.workspace_min_m), np.array(cfg.workspace_max_m)
        self.reset()

    # --- the workspace box ---------------------------------------------------------------------------------
    def tip(self, q: np.ndarray) -> np.ndarray:
        return self.kin.point(np.asarray(q, float)[:5], JAW_TIP_LOCAL)

    def outside(self, q: np.ndarray) -> float:
        """How far (m) the jaw tip is outside the box; 0 inside."""
        p = self.tip(q)
        return float(np.linalg.norm(np.maximum(self.box_min - p, 0) + np.maximum(p - self.box_max, 0)))

    # --- one step --------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """A new trial: forget the last target known to be inside the box."""
        self._last_inside: np.ndarray | None = None

    def filter(self, target: np.ndarray, measured: np.ndarray, step: int, log: SafetyLog,
               slow: bool = False) -> np.ndarray:
        measured = np.asarray(measured, float)
        target = np.asarray(target, float).reshape(-1)
        if target.shape != measured.shape or not np.all(np.isfinite(target)):
            log.clip("invalid_target", step, 0.0, got=str(np.asarray(target).tolist())[:80])
            return measured.copy()  # hold still

        safe = np.clip(target, self.low, self.high)
        if np.any(safe != target):
            over = np.abs(safe - target)
            log.clip("joint_limit", step, float(np.degrees(over.max())),
                     joints=[n for n, o in zip(JOINT_NAMES, over) if o > 0])

        caps = self.cfg.step_caps(slow)
        limited = measured + np.clip(safe - measured, -caps, caps)
        if np.any(np.abs(limited - safe) > 1e-12):
            log.clip("speed_cap" if slow else "max_step", step, float(np.degrees(np.abs(limited - safe).max())))

        if self.kin is not None:
            limited = self._keep_inside(limited, measured, step, log)
            limited = measured + np.clip(limited - measured, -caps, caps)
        return limited

    def _keep_inside(self, target: np.ndarray, measured: np.ndarray, step: int, log: SafetyLog) -> np.ndarray:
        """Cut a step that leaves the box back to the farthest point inside, along the way from the last target
        known to be inside (so an arm that overshot the boundary is pulled back in); with none yet this trial,
        from where the arm is, never further out than it is now."""
        out = self.outside(target)
        if out == 0.0:
            self._last_inside = target
            return target
        anchor = self._last_inside
        allowed = 0.0
        if anchor is None:
            anchor, allowed = measured, self.outside(measured)
            if out <= allowed + 1e-9:  # outside, but heading back in
                return target
        lo, hi = 0.0, 1.0
        for _ in range(12):
            mid = (lo + hi) / 2
            if self.outside(anchor + mid * (target - anchor)) <= allowed + 1e-9:
                lo = mid
            else:
                hi = mid
        log.clip("workspace", step, out * 1000.0, tip_m=[round(float(v), 3) for v in self.tip(target)])
        inside = anchor + lo * (target - anchor)
        if allowed == 0.0:
            self._last_inside = inside
        return inside


class RateClock:
    """Paces a control loop: real time at ``hz`` on the real arm, as fast as possible on the simulated one."""

    def __init__(self, hz: float, realtime: bool):
        self.period, self.realtime = 1.0 / hz, realtime
        self._next = time.perf_counter()

    def start(self) -> None:
        self._next = time.perf_counter()

    def tick(self) -> None:
        if not self.realtime:
            return
        self._next += self.period
        time.sleep(max(0.0, self._next - time.perf_counter()))
        self._next = max(self._next, time.perf_counter() - self.period)  # after a stall, don't race to catch up


def read_joints(robot, units) -> np.ndarray:
    """The arm's joints in radians, straight from the bus (no camera frames)."""
    present = robot.bus.sync_read("Present_Position")
    return units.observation_to_sim({f"{name}.pos": v for name, v in present.items()})


def move_to_rest(robot, units, cfg: SafetyConfig, clock: RateClock, log: SafetyLog, gripper: bool = True) -> bool:
    """Ramp the command from where the arm is to the rest pose at ``rest_step_deg`` per step, within the joint
    limits; True once the arm joints are within ``rest_tolerance_deg``. ``gripper=False`` keeps the hand as it is,
    so a held slice stays held."""
    rest = cfg.rest_pose
    q = read_joints(robot, units)
    command = q.copy()
    if not gripper:
        rest = np.append(rest[:5], q[5])
    step = np.radians(cfg.rest_step_deg)
    low, high = cfg.joint_bounds()
    clock.start()
    for _ in range(int(cfg.rest_timeout_s / clock.period)):
        command = command + np.clip(rest - command, -step, step)
        robot.send_action(units.action(np.clip(command, low, high)))
        clock.tick()
        if np.allclose(command, rest):
            q = read_joints(robot, units)
            if np.degrees(np.abs(q - rest)[:5]).max() <= cfg.rest_tolerance_deg:
                return True
    error = float(np.degrees(np.abs(read_joints(robot, units) - rest)[:5]).max())
    log.event("rest_not_reached", error_deg=round(error, 2))
    return False


def safe_stop(robot, units, cfg: SafetyConfig, clock: RateClock, log: SafetyLog, reason: str) -> None:
    """Rest pose, then torque off; each part tries on its own so a dead link still gets a torque-off attempt."""
    from eval.real_arm.robot import torque_off

    log.event("safe_stop", reason=reason)
    try:
        reached = move_to_rest(robot, units, cfg, clock, log)
        pose = np.degrees(read_joints(robot, units))
        log.event("rest", reached=reached, pose_deg=[round(float(v), 2) for v in pose])
    except KeyboardInterrupt:  # a second Ctrl-C: skip the move, still switch torque off
        log.event("rest_aborted", reason="Ctrl-C during the move to rest")
    except Exception as exc:  # noqa: BLE001  the link may be gone: say so, still try torque off
        log.event("rest_failed", error=error_text(exc)[:200])
    try:
        torque_off(robot)
        log.event("torque_off")
    except Exception as exc:  # noqa: BLE001
        log.event("torque_off_failed", error=error_text(exc)[:200])
