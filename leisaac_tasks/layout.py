"""Turn a scenario and a seed into concrete poses: the only place placement jitter is drawn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leisaac_tasks.outcomes import PlateRegion
from leisaac_tasks.scenarios import INGREDIENTS, Placement, Scenario
from leisaac_tasks.spec import SceneSpec

Pose = np.ndarray  # (x, y, z, qw, qx, qy, qz)

LIE_FLAT = np.array([np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0])  # thickness axis (x) turned to vertical


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


@dataclass(frozen=True)
class Layout:
    scenario: Scenario
    plate_xy: np.ndarray
    holder_xy: np.ndarray
    ingredient_poses: dict[str, Pose | None]

    def plate_region(self, spec: SceneSpec) -> PlateRegion:
        return PlateRegion((float(self.plate_xy[0]), float(self.plate_xy[1])), spec.plate.radius, spec.plate.top_z)

    def slot_xy(self, spec: SceneSpec, ingredient: str) -> np.ndarray:
        return self.holder_xy + np.array([spec.holder.slot_offset(ingredient), 0.0])


def sample_layout(spec: SceneSpec, scenario: Scenario, seed: int) -> Layout:
    """Same (spec, scenario, seed) -> same poses, on every backend."""
    rng = np.random.default_rng(seed)
    j = spec.jitter
    plate_xy = np.array(spec.plate.center_xy) + rng.uniform(-j.plate_xy, j.plate_xy, 2)
    holder_xy = np.array(spec.holder.center_xy) + rng.uniform(-j.holder_xy, j.holder_xy, 2)
    layout = Layout(scenario, plate_xy, holder_xy, {})
    # Draw every ingredient's noise even when unused so one cell's jitter doesn't shift another's.
    for name in INGREDIENTS:
        ing = spec.ingredients[name]
        slide = rng.uniform(-j.slice_slide, j.slice_slide)
        on_plate_xy = rng.uniform(-j.on_plate_xy, j.on_plate_xy, 2)
        yaw = rng.uniform(-j.on_plate_yaw, j.on_plate_yaw)
        placement = scenario.placement(name)
        if placement == Placement.HOLDER:
            x, y = layout.slot_xy(spec, name) + np.array([0.0, slide])
            pose = np.array([x, y, spec.holder.top_z + ing.height / 2 + 1e-4, 1.0, 0.0, 0.0, 0.0])
        elif placement == Placement.PLATE:
            # Two slices on one plate would overlap: stack the bread above the cheese.
            below = [n for n in INGREDIENTS[: INGREDIENTS.index(name)] if scenario.placement(n) == Placement.PLATE]
            z = spec.plate.top_z + sum(spec.ingredients[n].thickness for n in below) + ing.thickness / 2 + 1e-4
            x, y = plate_xy + on_plate_xy * (0.3 if below else 1.0)
            pose = np.array([x, y, z, *quat_mul(yaw_quat(yaw), LIE_FLAT)])
        else:
            pose = None
        layout.ingredient_poses[name] = pose
    return layout
