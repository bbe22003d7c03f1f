"""The SO-101 USD shipped by ``isaaclab-so101`` (the NVIDIA workshop asset), related to the MJCF the sim speaks.

The benchmark's joint angles are the MJCF's ("new calibration": each joint's zero mid-range). The USD's link chain
is the same robot, measured by forward kinematics against the MJCF (tests/test_isaaclab_spec.py re-derives every
number below from the URDF that ``isaaclab-so101`` generates from its USD):

- joints: ``usd = sim + JOINT_OFFSETS``. Only wrist roll differs: the MJCF recentred it by 2.79 degrees, which is
  why its range is -2.744..2.841 rad there and a symmetric +-2.793 rad in the USD.
- base: the USD's ``base`` frame sits ``ROOT_OFFSET`` from the MJCF's ``base`` body, turned 90 degrees about z
  (the USD's arm points along its -y).
- gripper: the USD's ``gripper`` link frame is the MJCF's ``gripper`` body frame, so the wrist camera, the
  gripper site and the pads keep their MJCF offsets unchanged.
"""

from __future__ import annotations

import numpy as np

# USD joint names in LeRobot's so101_follower order (shoulder_pan ... gripper).
USD_JOINT_NAMES: tuple[str, ...] = ("Rotation", "Pitch", "Elbow", "Wrist_Pitch", "Wrist_Roll", "Jaw")
USD_GRIPPER_LINK = "gripper"

# usd_angle = sim_angle + offset (radians). Wrist roll: half the asymmetry of the MJCF's roll range.
JOINT_OFFSETS = np.array([0.0, 0.0, 0.0, 0.0, -0.0486795, 0.0])

# The USD root relative to the MJCF base body, in the MJCF base frame (metres), and its yaw (radians).
ROOT_OFFSET = np.array([0.0157608, -0.0207909, -0.0324817])
ROOT_YAW = np.pi / 2


def sim_to_usd(q: np.ndarray) -> np.ndarray:
    """Joint angles (..., 6) from the sim's MJCF convention to the USD's."""
    return np.asarray(q, dtype=np.float64) + JOINT_OFFSETS


def usd_to_sim(q: np.ndarray) -> np.ndarray:
    return np.asarray(q, dtype=np.float64) - JOINT_OFFSETS
