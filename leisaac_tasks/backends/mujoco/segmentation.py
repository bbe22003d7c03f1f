"""A segmentation pass over the MuJoCo scene: which named objects (plate, holder, slices, the gripper) a camera
sees, and whether the arm penetrates the scene. Caption generation uses it so visibility facts are true for the
image."""

from __future__ import annotations

import numpy as np

from leisaac_tasks.scenarios import INGREDIENTS
from leisaac_tasks.spec import SceneSpec

OBJECTS: tuple[str, ...] = ("plate", "holder", *INGREDIENTS)  # what a camera can be said to see
SEEN_OBJECTS: tuple[str, ...] = ("", *OBJECTS, "gripper")  # segmentation classes; "" = anything else
VISIBLE_FRACTION = 0.002  # an object counts as seen when it covers this share of a camera's pixels


class SegmentingSim:
    """The MuJoCo backend plus a segmentation pass: which named objects a camera sees, judged from the pixels."""

    def __init__(self, spec: SceneSpec, segment_size: int):
        import mujoco  # here, not at import: the object names above are read where MuJoCo is not installed

        from leisaac_tasks.backends.mujoco.sim import MujocoSim

        self.spec = spec
        self.sim = MujocoSim(spec)
        m = self.sim.model
        robot_root = m.body("base").id
        self._robot_body = np.zeros(m.nbody, bool)
        for b in range(m.nbody):  # a body belongs to the arm when "base" is among its ancestors
            r = b
            while r and r != robot_root:
                r = m.body_parentid[r]
            self._robot_body[b] = r == robot_root
        named = {"plate": [m.geom("plate").id], **{n: [m.geom(n).id] for n in INGREDIENTS},
                 "holder": [g for g in range(m.ngeom) if m.geom_bodyid[g] == m.body("holder").id],
                 "gripper": [g for g in range(m.ngeom) if m.geom_bodyid[g] in
                             (m.body(spec.robot.gripper_link).id, m.body("moving_jaw_so101_v1").id)]}
        # geom id -> index into SEEN_OBJECTS (0 = nothing we name); the extra last slot catches background (-1)
        self._geom_object = np.zeros(m.ngeom + 1, np.int64)
        for obj, geoms in named.items():
            self._geom_object[geoms] = SEEN_OBJECTS.index(obj)
        # Visibility is judged at the saved image size: "seen" means seen in the pixels the model gets.
        self._segment = mujoco.Renderer(m, height=segment_size, width=segment_size)
        self._segment.enable_segmentation_rendering()
        self._geom_type = int(mujoco.mjtObj.mjOBJ_GEOM)

    def arm_collides(self) -> bool:
        """Arm geoms penetrating the scene (table, holder, plate, slices) after the last reset."""
        m, d = self.sim.model, self.sim.data
        for c in d.contact[: d.ncon]:
            if c.dist < -1e-3 and self._robot_body[m.geom_bodyid[c.geom1]] != self._robot_body[m.geom_bodyid[c.geom2]]:
                return True
        return False

    def seen(self, camera: str) -> set[str]:
        self._segment.update_scene(self.sim.data, camera=camera)
        seg = self._segment.render()
        ids = np.where(seg[..., 1] == self._geom_type, seg[..., 0], -1)
        counts = np.bincount(self._geom_object[ids].ravel(), minlength=len(SEEN_OBJECTS))
        return {obj for obj, c in zip(SEEN_OBJECTS, counts) if obj and c >= VISIBLE_FRACTION * ids.size}

    def close(self) -> None:
        self._segment.close()
        self.sim.close()
