"""SO-101 forward and inverse kinematics on the robot's own MJCF (robot only, no scene).

Backend-neutral: the scripted policies plan with it whichever simulator runs the physics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from leisaac_tasks.robot_model import so101_mjcf_path
from leisaac_tasks.spec import RobotSpec

ARM_JOINTS = 5  # the five joints in front of the gripper

# Gripper-link frame facts, measured from the MJCF: the jaws point along -z, the moving jaw opens along +x,
# and the fixed jaw pad's inner face sits at this point.
APPROACH_AXIS_LOCAL = np.array([0.0, 0.0, -1.0])
CLOSING_AXIS_LOCAL = np.array([1.0, 0.0, 0.0])
FIXED_PAD_FACE_LOCAL = np.array([-0.00145, -0.0002, -0.0972])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.cross`` of two 3-vectors, the same arithmetic without its axis handling: ~20x faster on one pair, and
    the IK calls it ~500 times a solve."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _norm(v: np.ndarray) -> float:
    return math.sqrt(v.dot(v))  # np.linalg.norm's own formula for a real vector, without its dispatch


@dataclass(frozen=True)
class IKResult:
    qpos: np.ndarray  # five arm joints, radians
    position_error: float
    orientation_error: float

    @property
    def ok(self) -> bool:
        return self.position_error < 2e-3 and self.orientation_error < 0.05


class SO101Kinematics:
    def __init__(self, robot: RobotSpec = RobotSpec()):
        spec = mujoco.MjSpec.from_file(str(so101_mjcf_path()))
        spec.body("base").pos = list(robot.base_pos)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self._qadr = np.array([self.model.joint(j).qposadr[0] for j in robot.joint_names[:ARM_JOINTS]])
        self._dadr = np.array([self.model.joint(j).dofadr[0] for j in robot.joint_names[:ARM_JOINTS]])
        self._low, self._high = self.model.jnt_range[[self.model.joint(j).id for j in robot.joint_names[:ARM_JOINTS]]].T
        self._link = self.model.body(robot.gripper_link).id

    def link_pose(self, arm_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World position and rotation matrix of the gripper link for arm joints ``arm_q``."""
        self.data.qpos[self._qadr] = arm_q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # mj_jac reads the com-based motion axes
        return self.data.xpos[self._link].copy(), self.data.xmat[self._link].reshape(3, 3).copy()

    def point(self, arm_q: np.ndarray, local: np.ndarray = FIXED_PAD_FACE_LOCAL) -> np.ndarray:
        pos, rot = self.link_pose(arm_q)
        return pos + rot @ local

    def solve(self, target: np.ndarray, closing_dir: np.ndarray, q0: np.ndarray,
              local: np.ndarray = FIXED_PAD_FACE_LOCAL) -> IKResult:
        """Put ``local`` (a gripper-link point) at ``target`` with the jaws closing along ``closing_dir``.

        Jaws straight down where the arm can (the SO-101's wrist can't above ~8 cm of fingertip height);
        otherwise tilted about the closing axis, which only turns a pinched slice within its own plane.
        """
        x_des = np.asarray(closing_dir, float) / np.linalg.norm(closing_dir)
        # The roll joint stops short of a full turn, so a solve seeded on the wrong side of it gets stuck at the
        # limit: also seed half a turn either way.
        seeds = [np.asarray(q0, float)] + [np.append(q0[:4], q0[4] + turn) for turn in (np.pi, -np.pi)]
        candidates = [self._dls(target, x_des, seed, local, top_down=True) for seed in seeds]
        best = min(candidates, key=lambda r: (not r.ok, abs(r.qpos[4] - q0[4])))
        if best.ok:
            return best
        relaxed = [self._dls(target, x_des, c.qpos, local, top_down=False) for c in candidates]
        return min(relaxed, key=lambda r: (not r.ok, r.position_error))

    def _dls(self, target: np.ndarray, x_des: np.ndarray, q0: np.ndarray, local: np.ndarray, top_down: bool,
             iters: int = 300) -> IKResult:
        """Damped least squares within the joint limits on position + axis alignment.

        The expert plans with this in the stepping process of every grid and demo run (~90 iterations a run, ~25 runs
        a plan), so the loop keeps numpy's per-call overhead out: buffers made once, 3-vector helpers."""
        axes = [(CLOSING_AXIS_LOCAL, x_des)] + ([(APPROACH_AXIS_LOCAL, np.array([0.0, 0.0, -1.0]))] if top_down else [])
        q = np.clip(np.asarray(q0, float).copy(), self._low, self._high)
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        jac, damping = np.empty((6, ARM_JOINTS)), 1e-5 * np.eye(6)
        for i in range(iters + 1):
            pos, rot = self.link_pose(q)
            world_point = pos + rot @ local
            e_pos = target - world_point
            e_rot = sum(_cross(rot @ axis, want) for axis, want in axes)
            if i == iters or (_norm(e_pos) < 1e-5 and _norm(e_rot) < 1e-4):
                break
            mujoco.mj_jac(self.model, self.data, jacp, jacr, world_point, self._link)
            jac[:3], jac[3:] = jacp[:, self._dadr], jacr[:, self._dadr]
            dq = jac.T @ np.linalg.solve(jac @ jac.T + damping, np.concatenate([e_pos, e_rot]))
            q = np.clip(q + np.clip(dq, -0.2, 0.2), self._low, self._high)
        closing_error = _norm(_cross(rot @ CLOSING_AXIS_LOCAL, x_des))
        return IKResult(q, _norm(e_pos), _norm(e_rot) if top_down else closing_error)
