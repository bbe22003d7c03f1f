"""The sandwich scene, declared once as plain data. Backends (MuJoCo, Isaac Lab) render it.

Frame: metres, z up, table top at z = 0, robot base above the origin facing +x.
Nothing here knows about a simulator; keep it that way so every backend sees the same world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

RGBA = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box given by its centre and full extents."""

    name: str
    center: Vec3
    extents: Vec3
    rgba: RGBA


@dataclass(frozen=True)
class TableSpec:
    extents: Vec3 = (0.9, 0.9, 0.04)
    center_xy: tuple[float, float] = (0.15, 0.0)
    rgba: RGBA = (0.62, 0.55, 0.47, 1.0)
    friction: float = 0.8

    def box(self) -> Box:
        return Box("table", (*self.center_xy, -self.extents[2] / 2), self.extents, self.rgba)


@dataclass(frozen=True)
class IngredientSpec:
    """A slice. Local frame: x = thickness, y = width, z = height when it stands in the holder."""

    name: str
    thickness: float
    width: float
    height: float
    mass: float
    rgba: RGBA
    friction: float = 1.2

    @property
    def extents(self) -> Vec3:
        return (self.thickness, self.width, self.height)


@dataclass(frozen=True)
class HolderSpec:
    """A base plate with a pair of walls per slot; each slice stands upright in its own slot."""

    center_xy: tuple[float, float] = (0.20, 0.12)
    base_extents: Vec3 = (0.13, 0.10, 0.008)
    wall_height: float = 0.022
    wall_thickness: float = 0.005
    slot_clearance: float = 0.005  # total gap around a slice, so it drops in without jamming
    slot_x_offsets: tuple[tuple[str, float], ...] = (("cheese", -0.03), ("bread", 0.03))
    rgba: RGBA = (0.35, 0.22, 0.12, 1.0)
    friction: float = 0.6

    @property
    def top_z(self) -> float:
        return self.base_extents[2]

    def slot_offset(self, ingredient: str) -> float:
        return dict(self.slot_x_offsets)[ingredient]

    def boxes(self, ingredients: dict[str, IngredientSpec]) -> list[Box]:
        """Base and walls, centred on the holder's origin (backends move the whole body)."""
        bx, by, bz = self.base_extents
        parts = [Box("holder_base", (0.0, 0.0, bz / 2), self.base_extents, self.rgba)]
        wall = (self.wall_thickness, by, self.wall_height)
        for name, dx in self.slot_x_offsets:
            half_gap = (ingredients[name].thickness + self.slot_clearance) / 2 + self.wall_thickness / 2
            for side, sign in (("near", -1), ("far", 1)):
                parts.append(Box(f"holder_{name}_{side}", (dx + sign * half_gap, 0.0, bz + self.wall_height / 2),
                                 wall, self.rgba))
        return parts


@dataclass(frozen=True)
class PlateSpec:
    center_xy: tuple[float, float] = (0.21, -0.11)
    radius: float = 0.075
    height: float = 0.008
    rgba: RGBA = (0.96, 0.96, 0.96, 1.0)
    friction: float = 0.8

    @property
    def top_z(self) -> float:
        return self.height

    def collider(self) -> Box:
        """What the plate collides as, in its own frame: the square inscribed in its disc. Both backends' physics
        (MuJoCo 3.12 and MJWarp 3.12) let a lying slice sink into a thin cylinder, and hold it on a box (measured).
        Scripted drops land within 2 cm of the centre, well inside the square."""
        side = self.radius * math.sqrt(2.0)
        return Box("plate_collider", (0.0, 0.0, self.height / 2), (side, side, self.height), self.rgba)


@dataclass(frozen=True)
class RobotSpec:
    """The SO-101 follower. Joint order is LeRobot's so101_follower order."""

    # On a 6 cm riser: from the table the SO-101 cannot hold its jaws vertical more than ~8 cm up.
    base_pos: Vec3 = (0.0, 0.0, 0.06)
    riser_extents: Vec3 = (0.12, 0.10, 0.06)
    riser_rgba: RGBA = (0.25, 0.25, 0.27, 1.0)
    joint_names: tuple[str, ...] = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll",
                                    "gripper")
    # Radians. Arm folded up and back, out of the front camera's view of the workspace.
    home_qpos: tuple[float, ...] = (0.0, -1.6, 1.5, 1.0, 0.0, 0.0)
    servo_kp: float = 60.0  # N·m/rad, position loop of each joint
    servo_kv: float = 1.2  # N·m·s/rad
    ee_site: str = "gripperframe"
    gripper_link: str = "gripper"

    def riser(self) -> Box:
        x, y, z = self.base_pos
        return Box("robot_riser", (x + 0.02, y, z - self.riser_extents[2] / 2), self.riser_extents, self.riser_rgba)


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera. ``parent`` is ``world`` or a robot link; pos and look_at are in the parent's frame."""

    name: str
    parent: str
    pos: Vec3
    look_at: Vec3
    up: Vec3 = (0.0, 0.0, 1.0)
    fovy_deg: float = 60.0
    width: int = 224
    height: int = 224


@dataclass(frozen=True)
class JitterSpec:
    """Seeded placement noise (uniform, +/- these half-ranges)."""

    plate_xy: float = 0.015
    holder_xy: float = 0.01
    slice_slide: float = 0.006  # along the slot
    on_plate_xy: float = 0.015
    on_plate_yaw: float = 0.4


@dataclass(frozen=True)
class SceneSpec:
    table: TableSpec = TableSpec()
    holder: HolderSpec = HolderSpec()
    plate: PlateSpec = PlateSpec()
    ingredients: dict[str, IngredientSpec] = field(default_factory=lambda: {
        "cheese": IngredientSpec("cheese", thickness=0.010, width=0.055, height=0.055, mass=0.02,
                                 rgba=(1.0, 0.80, 0.10, 1.0)),
        "bread": IngredientSpec("bread", thickness=0.014, width=0.065, height=0.065, mass=0.03,
                                rgba=(0.80, 0.58, 0.33, 1.0)),
    })
    robot: RobotSpec = RobotSpec()
    cameras: tuple[CameraSpec, ...] = (
        CameraSpec("front", "world", pos=(0.50, 0.0, 0.33), look_at=(0.17, 0.0, 0.01), fovy_deg=55.0),
        # On the gripper, behind and above the jaws, looking down them (link frame: jaws extend along -z).
        CameraSpec("wrist", "gripper", pos=(0.0, 0.045, -0.02), look_at=(0.0, 0.0, -0.10), up=(0.0, 1.0, 0.0),
                   fovy_deg=75.0),
    )
    control_hz: float = 30.0
    physics_substeps: int = 15
    jitter: JitterSpec = JitterSpec()

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"no camera {name!r}; the scene has {[c.name for c in self.cameras]}")

    def with_resolution(self, width: int, height: int) -> "SceneSpec":
        return replace(self, cameras=tuple(replace(c, width=width, height=height) for c in self.cameras))


DEFAULT_SCENE = SceneSpec()
