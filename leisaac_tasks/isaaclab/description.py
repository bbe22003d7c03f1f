"""SceneSpec -> a backend-neutral description of the Isaac Lab scene: prims, poses, cameras, robot, physics.

Pure Python (numpy, plus MuJoCo to read the robot MJCF's joint dynamics), so CPU tests can check every value
against the spec and the MuJoCo backend. Poses are env-local, quaternions (x, y, z, w): Isaac Lab 3.0's order.
The spec is never copied: every size, colour and position below is computed from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from leisaac_tasks.isaaclab import so101_usd
from leisaac_tasks.layout import Layout
from leisaac_tasks.scenarios import INGREDIENTS
from leisaac_tasks.spec import RGBA, CameraSpec, SceneSpec, Vec3

Quat = tuple[float, float, float, float]  # (x, y, z, w)
IDENTITY: Quat = (0.0, 0.0, 0.0, 1.0)
HORIZONTAL_APERTURE_CM = 20.955  # Isaac Lab's PinholeCameraCfg default; the focal length is chosen to match fovy
PARKING_DEPTH = 0.30  # absent slices rest on a shelf this far under the table top, hidden from every camera
MJ_JAW_PADS = ("fixed_jaw_pad", "moving_jaw_pad")  # the MJCF's pad boxes, which the MuJoCo backend turns on
# Contact softness of the pads and slices (MuJoCo solref/solimp; everything else keeps MuJoCo's 0.02 s / 0.9-0.95).
# The 3.35 N*m jaw squeezes a slice with ~40 N. MuJoCo (CPU) spreads that over the pads *and* the finger meshes
# (12 contacts, 4-10 mm deep at the default softness, measured). On MJWarp the slice yields through the pads at
# the default softness and is pushed out, even with the finger hulls (RobotDesc.link_colliders) and the analytic
# box-box collider: parity with MuJoCo fell to 411/480 on the seed grid (H100, measured). Penetration scales with
# timeconst^2 * (1 - dmax) / dmax: these values cut it ~80x, so the pads hold the slice, and slices stacked on the
# plate stop jittering.
PINCH_SOLREF = (0.005, 1.0)
PINCH_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)


def wxyz_to_xyzw(q) -> Quat:
    w, x, y, z = (float(v) for v in q)
    return (x, y, z, w)


def xyzw_to_wxyz(q) -> tuple[float, float, float, float]:
    x, y, z, w = (float(v) for v in q)
    return (w, x, y, z)


def matrix_to_xyzw(m: np.ndarray) -> Quat:
    """Rotation matrix -> unit quaternion (x, y, z, w), w >= 0."""
    m = np.asarray(m, dtype=float)
    w = np.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
    q = np.array([x, y, z, w])
    return tuple(float(v) for v in q / np.linalg.norm(q))  # type: ignore[return-value]


def look_at_xyzw(pos: Vec3, target: Vec3, up: Vec3) -> Quat:
    """Orientation of a camera that looks along its -z with +y up (USD/OpenGL, as MuJoCo's cameras) at ``target``."""
    back = np.asarray(pos, float) - np.asarray(target, float)
    back /= np.linalg.norm(back)
    right = np.cross(np.asarray(up, float), back)
    right /= np.linalg.norm(right)
    return matrix_to_xyzw(np.column_stack([right, np.cross(back, right), back]))


@dataclass(frozen=True)
class Prim:
    """One shape. ``body``: static (never moves), kinematic (placed per episode) or dynamic (simulated)."""

    name: str
    shape: Literal["box", "cylinder"]
    size: Vec3  # box: full extents; cylinder: (2 * radius, 2 * radius, height)
    rgba: RGBA
    body: Literal["static", "kinematic", "dynamic"]
    pos: Vec3  # env-local default pose; kinematic and dynamic prims are moved by layout_poses()
    quat: Quat = IDENTITY
    mass: float | None = None
    friction: float = 1.0
    condim: int = 3  # MuJoCo contact dimension (4 adds torsional friction), read by Newton's MJWarp solver
    solref: tuple[float, float] | None = None  # MuJoCo contact softness; None: MuJoCo's default
    solimp: tuple[float, float, float, float, float] | None = None
    visible: bool = True
    parent: str = ""  # "" = the env; otherwise a robot link the prim is fixed to (the jaw pads)
    collides: bool = True


@dataclass(frozen=True)
class CameraDesc:
    name: str
    parent: str  # "world" or a USD robot link
    pos: Vec3
    quat: Quat  # OpenGL convention (looks along -z, +y up), in the parent's frame
    fovy_deg: float
    width: int
    height: int

    @property
    def focal_length_cm(self) -> float:
        vertical_aperture = HORIZONTAL_APERTURE_CM * self.height / self.width
        return vertical_aperture / (2.0 * np.tan(np.radians(self.fovy_deg) / 2.0))


@dataclass(frozen=True)
class JointDrive:
    """The servo loop and joint dynamics, per joint in so101_follower order, in the MJCF's units."""

    stiffness: tuple[float, ...]  # N·m/rad
    damping: tuple[float, ...]  # N·m·s/rad, of the position loop
    viscous_friction: tuple[float, ...]  # passive joint damping
    friction: tuple[float, ...]  # Coulomb friction loss, N·m
    armature: tuple[float, ...]  # kg·m²
    effort_limit: tuple[float, ...]  # N·m


@dataclass(frozen=True)
class RobotDesc:
    root_pos: Vec3  # env-local position of the USD's root link
    root_quat: Quat
    joint_names: tuple[str, ...]  # USD names, so101_follower order
    sim_limits: tuple[tuple[float, float], ...]  # the MJCF's, in sim radians
    usd_limits: tuple[tuple[float, float], ...]  # the same limits in the USD's joint zeros
    home_usd: tuple[float, ...]
    drive: JointDrive
    gripper_link: str
    ee_site_local: Vec3  # the MJCF's gripper site in the gripper link frame: info["ee_pos"]
    # (USD link, part) pairs that collide as convex hulls, as the MJCF's collision meshes do. The USD applies its
    # CollisionAPI to each link's ``collisions`` Xform, which UsdPhysics ignores ("unknown UsdGeomGPrim type"),
    # so without this the arm has no colliders at all in Newton; parts the MJCF lacks (the camera mount) stay off.
    link_colliders: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PhysicsDesc:
    control_dt: float
    substeps: int  # physics steps per control step
    cone: Literal["elliptic", "pyramidal"]
    impratio: float
    # Box-box contacts: "analytic" is MuJoCo C's box-box collider (MJWarp's NATIVECCD disable flag); "ccd" is
    # MJWarp's default GJK/EPA path, which let stacked slices sink through the plate (see scene_cfg).
    box_box: Literal["analytic", "ccd"] = "analytic"

    @property
    def physics_dt(self) -> float:
        return self.control_dt / self.substeps


@dataclass(frozen=True)
class SceneDescription:
    prims: tuple[Prim, ...]
    robot: RobotDesc
    cameras: tuple[CameraDesc, ...]
    physics: PhysicsDesc
    holder_parts: tuple[str, ...]  # kinematic prims that move with the holder origin
    ingredients: tuple[str, ...]

    def prim(self, name: str) -> Prim:
        for p in self.prims:
            if p.name == name:
                return p
        raise KeyError(f"no prim {name!r}; the description has {[p.name for p in self.prims]}")

    def camera(self, name: str) -> CameraDesc:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(f"no camera {name!r}; the description has {[c.name for c in self.cameras]}")


@dataclass(frozen=True)
class _MjcfRobotFacts:
    joint_limits: tuple[tuple[float, float], ...]
    damping: tuple[float, ...]
    frictionloss: tuple[float, ...]
    armature: tuple[float, ...]
    forcerange: tuple[float, ...]
    ee_site_local: Vec3
    pads: tuple[tuple[str, str, Vec3, Quat, Vec3], ...]  # name, MJCF body, pos, quat xyzw, full extents
    collision_meshes: tuple[tuple[str, str], ...]  # (MJCF body, mesh name) of every colliding mesh geom


@lru_cache(maxsize=4)
def _mjcf_robot_facts(joint_names: tuple[str, ...], ee_site: str) -> _MjcfRobotFacts:
    """Joint dynamics and pad boxes of the shipped SO-101 MJCF: read, never retyped."""
    import mujoco

    from leisaac_tasks.robot_model import so101_mjcf_path

    m = mujoco.MjModel.from_xml_path(str(so101_mjcf_path()))
    dofs = [m.joint(j).dofadr[0] for j in joint_names]
    acts = [m.actuator(j).id for j in joint_names]
    pads = []
    for pad in MJ_JAW_PADS:
        g = m.geom(pad)
        pads.append((pad, m.body(m.geom_bodyid[g.id]).name, tuple(map(float, m.geom_pos[g.id])),
                     wxyz_to_xyzw(m.geom_quat[g.id]), tuple(float(2 * s) for s in m.geom_size[g.id])))
    site = m.site(ee_site)
    meshes = dict.fromkeys((m.body(m.geom_bodyid[g]).name, m.mesh(m.geom_dataid[g]).name) for g in range(m.ngeom)
                           if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH
                           and (m.geom_contype[g] or m.geom_conaffinity[g]))
    return _MjcfRobotFacts(
        joint_limits=tuple((float(lo), float(hi)) for lo, hi in m.jnt_range[[m.joint(j).id for j in joint_names]]),
        damping=tuple(float(m.dof_damping[d]) for d in dofs),
        frictionloss=tuple(float(m.dof_frictionloss[d]) for d in dofs),
        armature=tuple(float(m.dof_armature[d]) for d in dofs),
        forcerange=tuple(float(m.actuator_forcerange[a][1]) for a in acts),
        ee_site_local=tuple(float(v) for v in m.site_pos[site.id]),  # type: ignore[arg-type]
        pads=tuple(pads),
        collision_meshes=tuple(meshes),
    )


# The MJCF's moving-jaw body is the USD's ``jaw`` link (same frame: see so101_usd); the other links share names.
_USD_LINK_OF_MJCF_BODY = {"moving_jaw_so101_v1": "jaw"}


def _usd_link(mjcf_body: str) -> str:
    return _USD_LINK_OF_MJCF_BODY.get(mjcf_body, mjcf_body)


def _camera(cam: CameraSpec) -> CameraDesc:
    parent = "world" if cam.parent == "world" else {"gripper": so101_usd.USD_GRIPPER_LINK}[cam.parent]
    return CameraDesc(cam.name, parent, cam.pos, look_at_xyzw(cam.pos, cam.look_at, cam.up), cam.fovy_deg,
                      cam.width, cam.height)


def describe_scene(spec: SceneSpec) -> SceneDescription:
    table = spec.table.box()
    riser = spec.robot.riser()
    prims: list[Prim] = [
        Prim("table", "box", table.extents, table.rgba, "static", table.center, friction=spec.table.friction),
        Prim("robot_riser", "box", riser.extents, riser.rgba, "static", riser.center),
        Prim("parking_shelf", "box", (table.extents[0] * 0.5, table.extents[1] * 0.5, 0.02), (0.3, 0.3, 0.3, 1.0),
             "static", (*spec.table.center_xy, -PARKING_DEPTH - 0.01)),
    ]
    holder_parts = []
    for part in spec.holder.boxes(spec.ingredients):
        pos = (spec.holder.center_xy[0] + part.center[0], spec.holder.center_xy[1] + part.center[1], part.center[2])
        prims.append(Prim(part.name, "box", part.extents, part.rgba, "kinematic", pos, friction=spec.holder.friction))
        holder_parts.append(part.name)
    plate = spec.plate
    prims.append(Prim("plate", "cylinder", (2 * plate.radius, 2 * plate.radius, plate.height), plate.rgba, "kinematic",
                      (*plate.center_xy, plate.height / 2), friction=plate.friction, collides=False))
    collider = plate.collider()  # the square inscribed in the disc, as on the MuJoCo backend (see PlateSpec)
    prims.append(Prim(collider.name, "box", collider.extents, plate.rgba, "kinematic",
                      (*plate.center_xy, collider.center[2]), friction=plate.friction, visible=False))
    for name in INGREDIENTS:
        ing = spec.ingredients[name]
        prims.append(Prim(name, "box", ing.extents, ing.rgba, "dynamic", tuple(parking_pose(spec, name)[:3]),
                          mass=ing.mass, friction=ing.friction, condim=4, solref=PINCH_SOLREF, solimp=PINCH_SOLIMP))

    robot = spec.robot
    facts = _mjcf_robot_facts(robot.joint_names, robot.ee_site)
    for pad, body, pos, quat, extents in facts.pads:
        # Same friction and contact dimension the MuJoCo backend gives the pads it switches on.
        prims.append(Prim(pad, "box", extents, (0.2, 0.2, 0.2, 1.0), "static", pos, quat, friction=1.2, condim=4,
                          solref=PINCH_SOLREF, solimp=PINCH_SOLIMP, visible=False,
                          parent=_usd_link(body)))
    offsets = so101_usd.JOINT_OFFSETS
    n = len(robot.joint_names)
    yaw = so101_usd.ROOT_YAW
    robot_desc = RobotDesc(
        root_pos=tuple(float(v) for v in np.asarray(robot.base_pos) + so101_usd.ROOT_OFFSET),  # type: ignore[arg-type]
        root_quat=(0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2))),
        joint_names=so101_usd.USD_JOINT_NAMES,
        sim_limits=facts.joint_limits,
        usd_limits=tuple((lo + o, hi + o) for (lo, hi), o in zip(facts.joint_limits, offsets)),
        home_usd=tuple(float(v) for v in so101_usd.sim_to_usd(np.array(robot.home_qpos))),
        drive=JointDrive(stiffness=(robot.servo_kp,) * n, damping=(robot.servo_kv,) * n,
                         viscous_friction=facts.damping, friction=facts.frictionloss, armature=facts.armature,
                         effort_limit=facts.forcerange),
        gripper_link=so101_usd.USD_GRIPPER_LINK,
        ee_site_local=facts.ee_site_local,
        link_colliders=tuple((_usd_link(body), mesh) for body, mesh in facts.collision_meshes),
    )
    physics = PhysicsDesc(control_dt=1.0 / spec.control_hz, substeps=spec.physics_substeps, cone="elliptic",
                          impratio=10.0)
    return SceneDescription(tuple(prims), robot_desc, tuple(_camera(c) for c in spec.cameras), physics,
                            tuple(holder_parts), INGREDIENTS)


def parking_pose(spec: SceneSpec, ingredient: str) -> np.ndarray:
    """Where an absent slice waits (x, y, z, qw, qx, qy, qz): flat on the shelf under the table."""
    i = INGREDIENTS.index(ingredient)
    ing = spec.ingredients[ingredient]
    x, y = spec.table.center_xy
    return np.array([x - 0.1 + 0.2 * i, y, -PARKING_DEPTH + ing.thickness / 2 + 1e-4,
                     np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0])


def layout_poses(spec: SceneSpec, desc: SceneDescription, layout: Layout) -> dict[str, np.ndarray]:
    """Env-local poses (x, y, z, qx, qy, qz, qw) of every prim a layout moves: holder parts, plate, slices."""
    poses: dict[str, np.ndarray] = {}
    holder_shift = np.asarray(layout.holder_xy) - np.asarray(spec.holder.center_xy)
    for name in desc.holder_parts:
        p = desc.prim(name)
        poses[name] = np.array([p.pos[0] + holder_shift[0], p.pos[1] + holder_shift[1], p.pos[2], *IDENTITY])
    for name in ("plate", "plate_collider"):
        poses[name] = np.array([layout.plate_xy[0], layout.plate_xy[1], desc.prim(name).pos[2], *IDENTITY])
    for name in desc.ingredients:
        pose = layout.ingredient_poses[name]
        pose = parking_pose(spec, name) if pose is None else np.asarray(pose, float)
        poses[name] = np.array([*pose[:3], *wxyz_to_xyzw(pose[3:])])
    return poses
