"""Unit conversion between the simulator (radians) and LeRobot's SO-101 conventions.

The sim acts in the MJCF's joint angles, in radians, with each joint's zero at the middle of its range. LeRobot's
``so101_follower``/``so101_leader`` with ``use_degrees=True`` report the five arm joints in degrees about the
middle of the calibrated range, and the gripper as 0-100 % of its calibrated range (0 = closed). Datasets store
LeRobot's units so a sim dataset and a real-arm dataset can be mixed; the sim converts at its boundary.
"""

from __future__ import annotations

from typing import Any, Mapping

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


# --- LeRobot's normalized range (``use_degrees=False``) -------------------------------------------------------
# LeRobot's MotorsBus turns encoder ticks into "degrees" as (ticks - mid) * 360 / (resolution - 1), with
# resolution 4096 on the STS3215, so 4095 ticks make its 360 degrees. Using the same scale here keeps its degrees
# exactly np.degrees of the sim's radians, and the normalized range consistent with them.
TICKS_PER_RAD = 4095 / (2 * np.pi)
ENCODER_MID = 2047  # the count LeRobot's calibration puts at the middle of a joint's range (half-turn homing)


def calibration_spans(calibration: Mapping[str, Any]) -> np.ndarray:
    """Each joint's calibrated range in ticks, ``range_max - range_min``, in ``JOINT_NAMES`` order.

    ``calibration`` maps motor names to LeRobot ``MotorCalibration`` objects (anything with ``range_min`` and
    ``range_max``), as loaded from a ``lerobot-calibrate`` file.
    """
    missing = [n for n in JOINT_NAMES if n not in calibration]
    if missing:
        raise KeyError(f"the calibration lacks {', '.join(missing)}; recalibrate with `lerobot-calibrate`")
    spans = np.array([calibration[n].range_max - calibration[n].range_min for n in JOINT_NAMES], dtype=np.float64)
    if np.any(spans <= 0):
        bad = [n for n, s in zip(JOINT_NAMES, spans) if s <= 0]
        raise ValueError(f"calibrated range of {', '.join(bad)} is empty (range_max <= range_min); recalibrate")
    return spans


def sim_to_normalized(q: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Radians (..., 6) -> LeRobot's normalized units: arm joints -100..100 across the calibrated range, gripper 0-100.

    LeRobot computes ``(ticks - range_min) / (range_max - range_min) * 200 - 100``: 0 at the middle of the range,
    which is the sim's zero (as in degrees mode), and 100 at ``span / 2`` ticks from it. The gripper is 0-100 in
    both modes, the same mapping as :func:`sim_to_lerobot`.
    """
    q = np.asarray(q, dtype=np.float64)
    out = sim_to_lerobot(q)
    out[..., :5] = q[..., :5] * TICKS_PER_RAD * 200.0 / spans[:5]
    return out


def normalized_to_sim(v: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sim_to_normalized`."""
    v = np.asarray(v, dtype=np.float64)
    out = lerobot_to_sim(v)
    out[..., :5] = v[..., :5] * spans[:5] / (200.0 * TICKS_PER_RAD)
    return out


def mjcf_calibration_ranges() -> dict[str, tuple[int, int]]:
    """A LeRobot-style calibration for the simulated arm: (range_min, range_max) ticks per joint.

    Each MJCF joint range laid around the encoder's middle count, as ``lerobot-calibrate`` records a real arm whose
    joints were swept through their full range; wrist roll spans the full turn, as LeRobot records it.
    """
    ranges = {}
    for name, low, high in zip(JOINT_NAMES, JOINT_LOW, JOINT_HIGH):
        if name == "wrist_roll":
            ranges[name] = (0, 4095)
        elif name == "gripper":
            ranges[name] = (round(ENCODER_MID + low * TICKS_PER_RAD), round(ENCODER_MID + high * TICKS_PER_RAD))
        else:  # the arm joints' MJCF ranges are symmetric about zero: keep the middle count exact
            half = round(max(-low, high) * TICKS_PER_RAD)
            ranges[name] = (ENCODER_MID - half, ENCODER_MID + half)
    return ranges
