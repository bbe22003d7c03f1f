"""The embedded backend: MuJoCo physics at the spec's control rate, offscreen rendering through EGL."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the mujoco import; headless machines have no display

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from leisaac_tasks.backends.mujoco.scene_builder import PARKING_XY, build_model  # noqa: E402
from leisaac_tasks.backends.mujoco.shared_renderer import RENDERERS  # noqa: E402
from leisaac_tasks.layout import Layout  # noqa: E402
from leisaac_tasks.scenarios import INGREDIENTS  # noqa: E402
from leisaac_tasks.spec import SceneSpec  # noqa: E402


class MujocoSim:
    name = "mujoco"

    def __init__(self, spec: SceneSpec):
        self.spec = spec
        self.model = build_model(spec)
        self.data = mujoco.MjData(self.model)
        self._arm_qpos = np.array([self.model.joint(j).qposadr[0] for j in spec.robot.joint_names])
        self._ctrl_low, self._ctrl_high = self.model.actuator_ctrlrange.T.copy()
        self._ingredient_qpos = {n: self.model.joint(n).qposadr[0] for n in INGREDIENTS}
        self._ee_site = self.model.site(spec.robot.ee_site).id
        self._renderers: dict[tuple[int, int], str] = {}  # image size -> this process's shared renderer

    # --- episode control -------------------------------------------------------------------------
    def reset(self, layout: Layout, qpos: np.ndarray | None = None) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        m.body_pos[m.body("plate").id][:2] = layout.plate_xy
        m.body_pos[m.body("holder").id][:2] = layout.holder_xy
        for i, name in enumerate(INGREDIENTS):
            pose = layout.ingredient_poses[name]
            adr = self._ingredient_qpos[name]
            if pose is None:
                thickness = self.spec.ingredients[name].thickness
                d.qpos[adr:adr + 7] = [PARKING_XY[0] + 0.2 * i, PARKING_XY[1], thickness / 2, 0.7071068, 0, 0.7071068, 0]
            else:
                d.qpos[adr:adr + 7] = pose
        home = np.array(self.spec.robot.home_qpos if qpos is None else qpos, dtype=float)
        d.qpos[self._arm_qpos] = home
        d.ctrl[:] = home
        mujoco.mj_forward(m, d)

    def step(self, joint_targets: np.ndarray) -> None:
        """One control period: hold the position targets for ``physics_substeps`` physics steps."""
        self.data.ctrl[:] = np.clip(joint_targets, self._ctrl_low, self._ctrl_high)
        mujoco.mj_step(self.model, self.data, nstep=self.spec.physics_substeps)

    # --- state -----------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    def ingredient_pose(self, name: str) -> np.ndarray:
        adr = self._ingredient_qpos[name]
        return self.data.qpos[adr:adr + 7].copy()

    def ee_position(self) -> np.ndarray:
        return self.data.site_xpos[self._ee_site].copy()

    def sim_time(self) -> float:
        return float(self.data.time)

    # --- rendering -------------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        cam = self.spec.camera(camera)
        key = (cam.height, cam.width)
        if key not in self._renderers:
            self._renderers[key] = RENDERERS.acquire(self.model, cam.height, cam.width)
        return RENDERERS.render(self._renderers[key], self.model, self.data, camera)

    def close(self) -> None:
        for key in self._renderers.values():
            RENDERERS.release(key)
        self._renderers.clear()
