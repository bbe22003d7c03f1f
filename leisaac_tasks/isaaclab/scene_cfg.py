"""SceneDescription -> Isaac Lab 3.0 scene and simulation configs. Imports ``isaaclab``: GPU machines only.

Kit-less by default: Newton's MuJoCo-Warp solver at the spec's physics rate (15 substeps inside one 30 Hz sim
step) and the Newton Warp ray-traced camera renderer. ``PRESETS`` names the optional Isaac Sim PhysX / RTX
configuration for machines that have Isaac Sim; nothing here requires it.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import isaaclab.sim as sim_utils
from isaaclab.actuators import ImplicitActuatorCfg
from isaaclab.assets import ArticulationCfg, AssetBaseCfg, RigidObjectCfg
from isaaclab.scene import InteractiveSceneCfg
from isaaclab.sensors import CameraCfg
from isaaclab.sim.spawners.materials import UsdPhysicsRigidBodyMaterialCfg
from isaaclab.utils import configclass

from leisaac_tasks.isaaclab.description import Prim, SceneDescription
from leisaac_tasks.isaaclab.usd_edits import author_contact, author_hull_colliders

ENV_SPACING = 2.0  # Newton keeps envs in separate worlds; spacing only matters to a viewer


@dataclass(frozen=True)
class BackendPreset:
    """Which physics and renderer ``launch_simulation`` gets (``physics`` is its launcher key)."""

    physics: str
    renderer: str


PRESETS: dict[str, BackendPreset] = {
    "newton": BackendPreset("newton_mjwarp", "newton_warp"),  # kit-less; the tested configuration
    # Needs Isaac Sim (Kit) and an RTX GPU; untested here. Pass preset="isaacsim_rtx" to IsaacLabVecEnv.
    "isaacsim_rtx": BackendPreset("isaacsim_physx", "isaac_rtx"),
}


def _prim(fields: dict) -> Prim:
    """A Prim back from the plain dict a configclass field holds."""
    return Prim(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


@configclass
class SliceCfg(RigidObjectCfg):
    """A rigid object whose colliders get the description's MuJoCo contact attributes."""

    condim: int = 3
    solref: tuple | None = None
    solimp: tuple | None = None

    def _post_spawn(self, stage) -> None:
        author_contact(stage, self.spawn.spawn_path or self.prim_path, self.condim, self.solref, self.solimp)


@configclass
class SO101WithPadsCfg(ArticulationCfg):
    """The SO-101 USD plus the MJCF's collision meshes and jaw pads, authored before the envs are cloned."""

    pads: tuple = ()  # Prim fields as dicts
    link_colliders: tuple = ()  # (USD link, part) pairs: RobotDesc.link_colliders

    def _post_spawn(self, stage) -> None:
        super()._post_spawn(stage)
        root = self.spawn.spawn_path or self.prim_path
        made = author_hull_colliders(stage, root, self.link_colliders)
        if made != len(self.link_colliders):
            raise RuntimeError(f"expected {len(self.link_colliders)} collision meshes in the SO-101 USD, found {made}")
        for fields in self.pads:
            pad = _prim(fields)
            path = f"{root}/{pad.parent}/{pad.name}"
            _shape_cfg(pad, rigid=False).func(path, _shape_cfg(pad, rigid=False), translation=pad.pos,
                                              orientation=pad.quat)
            author_contact(stage, path, pad.condim, pad.solref, pad.solimp)


def _shape_cfg(p: Prim, rigid: bool = True) -> sim_utils.ShapeCfg:
    common = dict(
        visual_material=sim_utils.PreviewSurfaceCfg(diffuse_color=tuple(p.rgba[:3])),
        collision_props=sim_utils.CollisionPropertiesCfg() if p.collides else None,
        physics_material=(UsdPhysicsRigidBodyMaterialCfg(static_friction=p.friction, dynamic_friction=p.friction)
                          if p.collides else None),
        visible=p.visible,
    )
    if rigid:
        common["rigid_props"] = sim_utils.RigidBodyPropertiesCfg(kinematic_enabled=p.body != "dynamic")
        common["mass_props"] = sim_utils.MassCfg(mass=p.mass if p.mass is not None else 1.0)
    if p.shape == "cylinder":
        return sim_utils.CylinderCfg(radius=p.size[0] / 2, height=p.size[2], axis="Z", **common)
    return sim_utils.CuboidCfg(size=tuple(p.size), **common)


def _robot_cfg(desc: SceneDescription) -> SO101WithPadsCfg:
    from isaaclab_so101.assets import SO101_CFG

    r = desc.robot
    spawn = SO101_CFG.spawn.copy()
    # The USD carries its own fixed world joint; a second one from fix_root_link makes Newton's USD import
    # fail ("Cannot merge joint ... into a D6 joint"), so leave it unset (probe_isaaclab_kitless.py).
    spawn.articulation_props.fix_root_link = None
    names = list(r.joint_names)
    per_joint = lambda values: dict(zip(names, (float(v) for v in values)))  # noqa: E731
    d = r.drive
    return SO101WithPadsCfg(
        prim_path="{ENV_REGEX_NS}/Robot",
        spawn=spawn,
        init_state=ArticulationCfg.InitialStateCfg(pos=tuple(r.root_pos), rot=tuple(r.root_quat),
                                                   joint_pos=per_joint(r.home_usd)),
        actuators={"servos": ImplicitActuatorCfg(
            joint_names_expr=names, stiffness=per_joint(d.stiffness), damping=per_joint(d.damping),
            viscous_friction=per_joint(d.viscous_friction), friction=per_joint(d.friction),
            armature=per_joint(d.armature), effort_limit_sim=per_joint(d.effort_limit))},
        pads=tuple(asdict(p) for p in desc.prims if p.parent),  # plain data: configclass copies its fields
        link_colliders=r.link_colliders,
    )


def _camera_cfg(desc: SceneDescription, name: str) -> CameraCfg:
    from isaaclab_newton.renderers import NewtonWarpRendererCfg

    cam = desc.camera(name)
    parent = "{ENV_REGEX_NS}" if cam.parent == "world" else "{ENV_REGEX_NS}/Robot/" + cam.parent
    return CameraCfg(
        prim_path=f"{parent}/{name}_cam", height=cam.height, width=cam.width, data_types=["rgb"],
        # A camera on a moving link must re-read its pose every frame.
        update_latest_camera_pose=cam.parent != "world",
        spawn=sim_utils.PinholeCameraCfg(focal_length=cam.focal_length_cm, clipping_range=(0.01, 10.0)),
        offset=CameraCfg.OffsetCfg(pos=tuple(cam.pos), rot=tuple(cam.quat), convention="opengl"),
        renderer_cfg=NewtonWarpRendererCfg(),
    )


def build_scene_cfg(desc: SceneDescription, num_envs: int, cameras: tuple[str, ...]) -> InteractiveSceneCfg:
    entities: dict[str, object] = {
        "light": AssetBaseCfg(prim_path="/World/Light", spawn=sim_utils.DistantLightCfg(intensity=3000.0)),
        "robot": _robot_cfg(desc),
    }
    for p in desc.prims:
        if p.parent:
            continue  # pads ride the robot
        entities[p.name] = SliceCfg(
            prim_path="{ENV_REGEX_NS}/" + p.name, spawn=_shape_cfg(p), condim=p.condim, solref=p.solref,
            solimp=p.solimp,
            init_state=RigidObjectCfg.InitialStateCfg(pos=tuple(p.pos), rot=tuple(p.quat)))
    for name in cameras:
        entities[f"{name}_camera"] = _camera_cfg(desc, name)
    cls = configclass(type("SandwichSceneCfg", (InteractiveSceneCfg,),
                           {"__annotations__": {k: type(v) for k, v in entities.items()}, **entities}))
    return cls(num_envs=num_envs, env_spacing=ENV_SPACING)


def use_box_box_collider(kind: str) -> None:
    """Pick MJWarp's box-box collider for every SolverMuJoCo built after this call.

    MJWarp sends box-box pairs (slices, pads, plate, table, holder) through its GJK/EPA convex path unless the
    NATIVECCD disable flag is set; MuJoCo C always uses its analytic box-box collider. On the GJK/EPA path a slice
    stacked on another on the plate sank through the 8 mm plate collider to the table top (13-16 mm down, in the
    stacking cells of the seed grid; cf. mujoco_warp issues #1526 and #1430). Newton doesn't expose the flag, so
    the model conversion is wrapped to add it.
    """
    import mujoco
    from newton.solvers import SolverMuJoCo

    original = getattr(SolverMuJoCo._convert_to_mjc, "__wrapped__", SolverMuJoCo._convert_to_mjc)
    if kind == "ccd":
        SolverMuJoCo._convert_to_mjc = original
        return

    @functools.wraps(original)
    def convert(self, model, *args, disableflags: int = 0, **kwargs):
        return original(self, model, *args, disableflags=disableflags | mujoco.mjtDisableBit.mjDSBL_NATIVECCD,
                        **kwargs)

    SolverMuJoCo._convert_to_mjc = convert


def build_sim_cfg(desc: SceneDescription, device: str = "cuda:0") -> sim_utils.SimulationCfg:
    from isaaclab_newton.physics import MJWarpSolverCfg, NewtonCfg

    ph = desc.physics
    use_box_box_collider(ph.box_box)
    # One sim step = one control period; Newton runs the spec's physics substeps inside it (one CUDA graph).
    # ls_iterations 100: at 50 MJWarp reported line-search limits in pinches, where MuJoCo (CPU) converges.
    solver = MJWarpSolverCfg(njmax=600, nconmax=120, cone=ph.cone, impratio=ph.impratio, integrator="euler",
                             iterations=100, ls_iterations=100)
    return sim_utils.SimulationCfg(dt=ph.control_dt, device=device,
                                   physics=NewtonCfg(solver_cfg=solver, num_substeps=ph.substeps))
