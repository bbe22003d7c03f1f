"""SceneSpec -> MuJoCo model. The only place MuJoCo-specific modelling choices live."""

from __future__ import annotations

import mujoco
import numpy as np

from leisaac_tasks.backends.mujoco.visual_mesh import lighten_visual_meshes
from leisaac_tasks.robot_model import so101_mjcf_path
from leisaac_tasks.scenarios import INGREDIENTS
from leisaac_tasks.spec import CameraSpec, SceneSpec

PARKING_XY = (3.0, 3.0)  # absent ingredients lie on a shelf here, out of every camera's view
_JAW_PADS = ("fixed_jaw_pad", "moving_jaw_pad")
COLLIDER_GROUP = 3  # geom group MuJoCo does not render by default: collision-only shapes


def look_at_quat(pos: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) for a MuJoCo camera (looks along -z, y up) at ``pos`` facing ``target``."""
    back = pos - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([right, cam_up, back]).flatten())
    return quat


def _add_camera(body: mujoco.MjsBody, cam: CameraSpec) -> None:
    pos = np.array(cam.pos, dtype=float)
    body.add_camera(name=cam.name, pos=pos, quat=look_at_quat(pos, np.array(cam.look_at, float), np.array(cam.up, float)),
                    fovy=cam.fovy_deg)


def build_model(spec: SceneSpec, light_meshes: bool = True) -> mujoco.MjModel:
    # Start from the robot's own file so its names, defaults and mesh paths stay exactly as shipped.
    world = mujoco.MjSpec.from_file(str(so101_mjcf_path()))
    if light_meshes:  # ~20x fewer triangles to draw, same collision meshes (see visual_mesh.py)
        lighten_visual_meshes(world, so101_mjcf_path().parent)
    world.body("base").pos = list(spec.robot.base_pos)
    world.modelname = "chefmate_sandwich"
    world.option.timestep = 1.0 / (spec.control_hz * spec.physics_substeps)
    # Elliptic cones with a high impratio keep a pinched slice from creeping out of the jaws.
    world.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    world.option.impratio = 10.0
    world.visual.global_.offwidth = max(c.width for c in spec.cameras)
    world.visual.global_.offheight = max(c.height for c in spec.cameras)
    world.visual.headlight.ambient = [0.45, 0.45, 0.45]
    world.visual.headlight.diffuse = [0.5, 0.5, 0.5]
    # Software GL on a CPU: shadows cost ~5x and MSAA ~2x per frame, so both are off (30+ renders/s at 224²).
    world.visual.quality.offsamples = 0
    world.worldbody.add_light(pos=[0.3, 0.0, 1.2], dir=[0, 0, -1], diffuse=[0.6, 0.6, 0.6], castshadow=False)

    table = spec.table.box()
    world.worldbody.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, pos=table.center,
                             size=np.array(table.extents) / 2, rgba=table.rgba, friction=[spec.table.friction, 0.005, 1e-4])

    riser = spec.robot.riser()
    world.worldbody.add_geom(name=riser.name, type=mujoco.mjtGeom.mjGEOM_BOX, pos=riser.center,
                             size=np.array(riser.extents) / 2, rgba=riser.rgba)

    holder = world.worldbody.add_body(name="holder", pos=[*spec.holder.center_xy, 0.0])
    for part in spec.holder.boxes(spec.ingredients):
        holder.add_geom(name=part.name, type=mujoco.mjtGeom.mjGEOM_BOX, pos=part.center,
                        size=np.array(part.extents) / 2, rgba=part.rgba, friction=[spec.holder.friction, 0.005, 1e-4])

    plate = world.worldbody.add_body(name="plate", pos=[*spec.plate.center_xy, 0.0])
    plate.add_geom(name="plate", type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, spec.plate.height / 2],
                   size=[spec.plate.radius, spec.plate.height / 2, 0], rgba=spec.plate.rgba,
                   friction=[spec.plate.friction, 0.005, 1e-4], contype=0, conaffinity=0)  # seen, not touched
    collider = spec.plate.collider()
    plate.add_geom(name=collider.name, type=mujoco.mjtGeom.mjGEOM_BOX, pos=collider.center,
                   size=np.array(collider.extents) / 2, group=COLLIDER_GROUP, rgba=[0, 0, 0, 0],
                   friction=[spec.plate.friction, 0.005, 1e-4])

    world.worldbody.add_geom(name="parking_shelf", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[*PARKING_XY, -0.01],
                             size=[0.5, 0.5, 0.01], rgba=[0.3, 0.3, 0.3, 1])
    for i, name in enumerate(INGREDIENTS):
        ing = spec.ingredients[name]
        body = world.worldbody.add_body(name=name, pos=[PARKING_XY[0] + 0.2 * i, PARKING_XY[1], 0.1])
        body.add_freejoint(name=name)
        body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=np.array(ing.extents) / 2, mass=ing.mass,
                      rgba=ing.rgba, friction=[ing.friction, 0.01, 1e-4], condim=4)

    # The shipped gains (kp 17.8, no kv) are not identified from the servo and sag ~1 cm under gravity; the real
    # STS3215 runs its own stiff PID, so stiffen the loop and damp it, keeping the shipped torque limit.
    for act in world.actuators:
        act.gainprm[0] = spec.robot.servo_kp
        act.biasprm[1] = -spec.robot.servo_kp
        act.biasprm[2] = -spec.robot.servo_kv
    for pad in _JAW_PADS:  # the model ships these inert; they give a flat, stable pinch
        geom = world.geom(pad)
        geom.contype, geom.conaffinity = 1, 1
        geom.friction = [1.2, 0.01, 1e-4]
        geom.condim = 4

    for cam in spec.cameras:
        _add_camera(world.worldbody if cam.parent == "world" else world.body(cam.parent), cam)
    return world.compile()
