"""Unit conversion between the simulator (radians) and LeRobot's SO-101 conventions.

The sim acts in the MJCF's joint angles, in radians, with each joint's zero at the middle of its range. LeRobot's
``so101_follower``/``so101_leader`` with ``use_degrees=True`` report the five arm joints in degrees about the
middle of the calibrated range, and the gripper as 0-100 % of its calibrated range (0 = closed). Datasets store
LeRobot's units so a sim dataset and a real-arm dataset can be mixed; the sim converts at its boundary.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
MOTOR_KEYS: tuple[str, ...] = tuple(f"{name}.pos" for name in JOINT_NAMES)  # LeRobot's action/observation keys

# Joint limits of the SO-101 MJCF (radians), in this order.
JOINT_LOW = np.array([-1.91986, -1.74533, -1.69, -1.65806, -2.74385, -0.17453], dtype=np.float32)
JOINT_HIGH = np.array([1.91986, 1.74533, 1.69, 1.65806, 2.84121, 1.74533], dtype=np.float32)
# The gripper's range, closed ... fully open, maps linearly onto LeRobot's 0..100.
GRIPPER_CLOSED_RAD = float(JOINT_LOW[5])
GRIPPER_OPEN_RAD = float(JOINT_HIGH[5])


def sim_to_lerobot(q: np.ndarray) -> np.ndarray:
    """Joint angles in radians (..., 6) -> LeRobot units: 5 arm joints in degrees, gripper in 0-100."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty_like(q)
    out[..., :5] = np.degrees(q[..., :5])
    out[..., 5] = (q[..., 5] - GRIPPER_CLOSED_RAD) / (GRIPPER_OPEN_RAD - GRIPPER_CLOSED_RAD) * 100.0
    return out


def lerobot_to_sim(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sim_to_lerobot`."""
    v = np.asarray(v, dtype=np.float64)
    out = np.empty_like(v)
    out[..., :5] = np.radians(v[..., :5])
    out[..., 5] = GRIPPER_CLOSED_RAD + v[..., 5] / 100.0 * (GRIPPER_OPEN_RAD - GRIPPER_CLOSED_RAD)
    return out


def to_motor_dict(v: np.ndarray) -> dict[str, float]:
    """LeRobot-unit vector -> ``{"shoulder_pan.pos": ..., ...}``, the Robot/Teleoperator action format."""
    return {key: float(x) for key, x in zip(MOTOR_KEYS, v)}


def from_motor_dict(action: dict[str, float]) -> np.ndarray:
    missing = [k for k in MOTOR_KEYS if k not in action]
    if missing:
        raise KeyError(f"action is missing {', '.join(missing)}; an SO-101 action has the keys {', '.join(MOTOR_KEYS)}")
    return np.array([float(action[k]) for k in MOTOR_KEYS])
