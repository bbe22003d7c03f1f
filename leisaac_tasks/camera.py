"""A world camera of the scene spec as a pinhole projector, in MuJoCo's convention: the one place the
intrinsics are computed from ``CameraSpec.fovy_deg`` for projecting points (outcome detection's regions)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leisaac_tasks.spec import CameraSpec


class CameraError(ValueError):
    """A camera that cannot project the way it was asked to; the message names the fix."""


@dataclass(frozen=True)
class PinholeCamera:
    """A CameraSpec as a projector: MuJoCo's convention (looks along -z, y up, vertical fovy)."""

    pos: np.ndarray
    axes: np.ndarray  # rows: right, up, back (world frame)
    focal: float  # pixels
    size: tuple[int, int]

    @classmethod
    def from_spec(cls, cam: CameraSpec, size: tuple[int, int]) -> "PinholeCamera":
        if cam.parent != "world":
            raise CameraError(f"camera {cam.name!r} rides on {cam.parent!r}, so it has no fixed view to calibrate; "
                              f"use a world camera such as 'front'")
        pos, target, up = (np.array(v, float) for v in (cam.pos, cam.look_at, cam.up))
        back = (pos - target) / np.linalg.norm(pos - target)
        right = np.cross(up, back)
        right /= np.linalg.norm(right)
        focal = size[1] / 2 / math.tan(math.radians(cam.fovy_deg) / 2)
        return cls(pos, np.stack([right, np.cross(back, right), back]), focal, size)

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> pixel-centre coordinates (N, 2) (pixel (0, 0) is centred on (0, 0))."""
        cam = (np.asarray(points, float) - self.pos) @ self.axes.T
        depth = -cam[:, 2]
        if np.any(depth <= 1e-6):
            raise CameraError("a scene point lies behind the camera; check the camera spec's pos and look_at")
        w, h = self.size
        return np.stack([w / 2 - 0.5 + self.focal * cam[:, 0] / depth,
                         h / 2 - 0.5 - self.focal * cam[:, 1] / depth], axis=1)

    def rays(self) -> np.ndarray:
        """World-frame ray directions through every pixel centre, (h, w, 3)."""
        w, h = self.size
        u, v = np.meshgrid(np.arange(w) + 0.5 - w / 2, h / 2 - (np.arange(h) + 0.5))
        local = np.stack([u / self.focal, v / self.focal, -np.ones_like(u, dtype=float)], axis=-1)
        return local @ self.axes
