"""Joint-space pick-and-place trajectories for the SO-101, planned with IK from privileged poses.

Both scripted baselines share this: they differ only in *which* slice they pick, never in *how*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leisaac_tasks.kinematics import SO101Kinematics

SLICE_THIN_AXIS = np.array([1.0, 0.0, 0.0])  # spec: a slice's local x is its thickness


@dataclass(frozen=True)
class MotionConfig:
    control_hz: float = 30.0
    max_joint_speed: float = 1.2  # rad/s, well under the STS3215's no-load speed
    settle_steps: int = 4
    gripper_open: float = 0.45  # rad: ~3 cm between the pads, narrow enough to miss the next slot's slice
    gripper_closed: float = -0.17  # the joint's lower limit: squeeze until the slice stops the jaw
    grasp_depth: float = 0.014  # pad centre this far below the slice top
    pad_clearance: float = 0.003  # fixed pad this far off the slice face before closing
    approach_height: float = 0.03
    lift_height: float = 0.06
    release_gap: float = 0.012  # slice bottom above the plate when the jaws open
    close_steps: int = 12
    open_steps: int = 10
    idle_hold_steps: int = 30  # "leave it" is 1 s of holding still, then done: a finite, recordable refusal


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


class TrajectoryBuilder:
    """Appends joint-target rows (5 arm joints + gripper), one per control step."""

    def __init__(self, start: np.ndarray, cfg: MotionConfig):
        self.cfg = cfg
        self.rows: list[np.ndarray] = []
        self.current = np.asarray(start, float).copy()

    def move(self, arm_q: np.ndarray, gripper: float | None = None, speed_scale: float = 1.0) -> None:
        target = np.append(arm_q, self.current[5] if gripper is None else gripper)
        step = self.cfg.max_joint_speed * speed_scale / self.cfg.control_hz
        n = max(1, int(np.ceil(np.max(np.abs(target[:5] - self.current[:5])) / step)))
        for alpha in np.linspace(0.0, 1.0, n + 1)[1:]:
            self.rows.append(self.current + alpha * (target - self.current))
        self.current = target
        self.hold(self.cfg.settle_steps)

    def grip(self, gripper: float, steps: int) -> None:
        self.current = self.current.copy()
        self.current[5] = gripper
        self.hold(steps)

    def hold(self, steps: int) -> None:
        self.rows.extend(self.current.copy() for _ in range(steps))

    def array(self) -> np.ndarray:
        return np.array(self.rows)


def plan_pick_place(kin: SO101Kinematics, start_q: np.ndarray, rest_q: np.ndarray, slice_pose: np.ndarray,
                    slice_extents: tuple[float, float, float], holder_xy: np.ndarray, plate_xy: np.ndarray,
                    plate_top: float, cfg: MotionConfig = MotionConfig(),
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Grasp an upright slice by its top edge, carry it over the plate, let go, return to rest."""
    thickness, _, height = slice_extents
    center = slice_pose[:3]
    thin = quat_to_mat(slice_pose[3:]) @ SLICE_THIN_AXIS
    thin = np.array([thin[0], thin[1], 0.0]) / np.linalg.norm(thin[:2])
    # The bulky fixed jaw goes on the slot's outer side; the thin moving jaw swings in toward the holder centre.
    closing = thin if np.dot(thin[:2], holder_xy - center[:2]) >= 0 else -thin
    jitter = (lambda s: rng.uniform(-s, s)) if rng is not None else (lambda s: 0.0)

    grasp_z = center[2] + height / 2 - cfg.grasp_depth + jitter(0.002)
    pad = center - closing * (thickness / 2 + cfg.pad_clearance)
    release_z = plate_top + cfg.release_gap + height - cfg.grasp_depth
    carry_z = max(grasp_z + cfg.lift_height, release_z + 0.02)
    drop_center = np.array([*plate_xy, 0.0]) + np.array([jitter(0.005), jitter(0.005), 0.0])

    b = TrajectoryBuilder(start_q, cfg)
    q = start_q[:5]

    def to(point: np.ndarray, **kw) -> None:
        nonlocal q
        q = kin.solve(point, closing, q).qpos
        b.move(q, **kw)

    def over_plate() -> np.ndarray:
        """A slice is symmetric under a half turn, so carry it whichever way needs less wrist roll."""
        nonlocal closing
        options = []
        for sign in (1.0, -1.0):
            point = drop_center - sign * closing * (thickness / 2) + np.array([0.0, 0.0, carry_z])
            options.append((kin.solve(point, sign * closing, q), sign, point))
        best, sign, point = min(options, key=lambda o: (not o[0].ok, abs(o[0].qpos[4] - q[4])))
        closing = sign * closing
        return point

    speed = 1.0 + jitter(0.15)
    approach = cfg.approach_height + jitter(0.01)
    to(np.array([pad[0], pad[1], grasp_z + approach]), gripper=cfg.gripper_open, speed_scale=speed)
    to(np.array([pad[0], pad[1], grasp_z]), speed_scale=0.5)
    b.grip(cfg.gripper_closed, cfg.close_steps + int(jitter(3)))
    to(np.array([pad[0], pad[1], carry_z]), speed_scale=0.5)
    drop = over_plate()
    to(drop, speed_scale=speed)
    to(np.array([drop[0], drop[1], release_z]), speed_scale=0.5)
    b.grip(cfg.gripper_open, cfg.open_steps + int(jitter(3)))
    to(drop, speed_scale=0.5)
    b.move(rest_q[:5], gripper=rest_q[5])
    return b.array()
