"""Where things are in the front camera's image: calibrated once per camera setup.

Pixel regions (plate, holder and its slots, table, the jaws at rest) come from clicking on a real frame
(``eval.real_arm.click_calibration``) or from projecting the scene spec through the simulated camera
(``regions_from_scene``, how CI calibrates), and are saved as a JSON file a user can edit, with the ingredient
colours (``eval.real_arm.colours``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from eval.real_arm.colours import Colour, DetectError, HsvRange, default_colours
from leisaac_tasks.camera import CameraError, PinholeCamera
from leisaac_tasks.kinematics import ARM_JOINTS, SO101Kinematics
from leisaac_tasks.layout import Layout
from leisaac_tasks.scenarios import INGREDIENTS
from leisaac_tasks.spec import DEFAULT_SCENE, SceneSpec

Point = tuple[float, float]
Polygon = tuple[Point, ...]
BoxPx = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


# --- regions -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Regions:
    """Where things are in the front image. Coordinates are pixels of an image of ``image_size`` (w, h)."""

    image_size: tuple[int, int]
    plate: Polygon
    holder: BoxPx
    colours: dict[str, Colour] = field(default_factory=default_colours)
    holder_slots: dict[str, BoxPx] = field(default_factory=dict)  # per ingredient; the whole holder if missing
    table: Polygon | None = None  # where slices can come to rest; the whole image if missing
    gripper: BoxPx | None = None  # around the jaws at the rest pose: a slice seen here after a trial is still held
    exclude: tuple[Polygon, ...] = ()  # never look here (e.g. a busy background)

    def scaled_to(self, image_size: tuple[int, int]) -> "Regions":
        """The same regions on a frame of another resolution from the same camera."""
        (w0, h0), (w1, h1) = self.image_size, image_size
        if (w0, h0) == (w1, h1):
            return self
        if abs(w1 / h1 - w0 / h0) > 0.01 * w0 / h0:
            raise DetectError(f"frame is {w1}x{h1} but the regions were calibrated on {w0}x{h0} (another aspect "
                              f"ratio): calibrate again on a frame from this camera setting")
        sx, sy = w1 / w0, h1 / h0

        def poly(p: Polygon) -> Polygon:
            return tuple((x * sx, y * sy) for x, y in p)

        def box(b: BoxPx) -> BoxPx:
            return (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)

        return replace(self, image_size=(w1, h1), plate=poly(self.plate), holder=box(self.holder),
                       holder_slots={k: box(b) for k, b in self.holder_slots.items()},
                       table=None if self.table is None else poly(self.table),
                       gripper=None if self.gripper is None else box(self.gripper),
                       exclude=tuple(poly(p) for p in self.exclude))

    def slot(self, ingredient: str) -> BoxPx:
        return self.holder_slots.get(ingredient, self.holder)

    # JSON: plain lists, so a user can edit the file by hand.
    def to_json(self) -> dict[str, Any]:
        return {
            "image_size": list(self.image_size),
            "plate": [list(p) for p in self.plate],
            "holder": list(self.holder),
            "holder_slots": {k: list(b) for k, b in self.holder_slots.items()},
            "table": None if self.table is None else [list(p) for p in self.table],
            "gripper": None if self.gripper is None else list(self.gripper),
            "exclude": [[list(p) for p in poly] for poly in self.exclude],
            "colours": {k: [{"lo": list(r.lo), "hi": list(r.hi)} for r in c.ranges] for k, c in self.colours.items()},
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "regions") -> "Regions":
        def fail(key: str, want: str) -> DetectError:
            return DetectError(f"{source}: '{key}' must be {want}; fix the file or calibrate again "
                               f"(python -m eval.real_arm.detect calibrate --help)")

        def number_list(value: Any, n: int | None, key: str, want: str) -> list[float]:
            if not isinstance(value, list) or (n is not None and len(value) != n) or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
                raise fail(key, want)
            return [float(x) for x in value]

        def polygon(value: Any, key: str) -> Polygon:
            want = "a list of at least 3 [x, y] points (or one [x0, y0, x1, y1] box)"
            if isinstance(value, list) and len(value) == 4 and all(isinstance(x, (int, float)) for x in value):
                x0, y0, x1, y1 = (float(x) for x in value)
                return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
            if not isinstance(value, list) or len(value) < 3:
                raise fail(key, want)
            return tuple(tuple(number_list(p, 2, key, want)) for p in value)  # type: ignore[misc]

        def box(value: Any, key: str) -> BoxPx:
            x0, y0, x1, y1 = number_list(value, 4, key, "[x0, y0, x1, y1] in pixels")
            return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

        if not isinstance(data, dict):
            raise DetectError(f"{source}: expected a JSON object with image_size, plate, holder and colours; "
                              f"calibrate again (python -m eval.real_arm.detect calibrate --help)")
        for key in ("image_size", "plate", "holder"):
            if key not in data:
                raise fail(key, "present")
        w, h = number_list(data["image_size"], 2, "image_size", "[width, height] in pixels")
        if w < 8 or h < 8:
            raise fail("image_size", "[width, height] of at least 8 pixels each")
        colours = dict(default_colours())
        raw_colours = data.get("colours") or {}
        if not isinstance(raw_colours, dict):
            raise fail("colours", "an object: ingredient -> {lo: [h, s, v], hi: [h, s, v]}")
        for name, ranges in raw_colours.items():
            key = f"colours.{name}"
            want = "a list of {lo: [h, s, v], hi: [h, s, v]} ranges in OpenCV units (hue 0-179, others 0-255)"
            ranges = [ranges] if isinstance(ranges, dict) else ranges
            if not isinstance(ranges, list) or not ranges:
                raise fail(key, want)
            parsed = []
            for rng in ranges:
                if not isinstance(rng, dict) or set(rng) != {"lo", "hi"}:
                    raise fail(key, want)
                lo, hi = number_list(rng["lo"], 3, key, want), number_list(rng["hi"], 3, key, want)
                if not all(0 <= x <= 179 for x in (lo[0], hi[0])) or not all(0 <= x <= 255 for x in lo[1:] + hi[1:]):
                    raise fail(key, want)
                parsed.append(HsvRange(tuple(int(x) for x in lo), tuple(int(x) for x in hi)))  # type: ignore[arg-type]
            colours[name] = Colour(tuple(parsed))
        slots = data.get("holder_slots") or {}
        if not isinstance(slots, dict):
            raise fail("holder_slots", "an object: ingredient -> [x0, y0, x1, y1]")
        table = data.get("table")
        gripper = data.get("gripper")
        exclude = data.get("exclude") or []
        if not isinstance(exclude, list):
            raise fail("exclude", "a list of polygons")
        return cls(image_size=(int(w), int(h)), plate=polygon(data["plate"], "plate"),
                   holder=box(data["holder"], "holder"),
                   colours=colours, holder_slots={k: box(v, f"holder_slots.{k}") for k, v in slots.items()},
                   table=None if table is None else polygon(table, "table"),
                   gripper=None if gripper is None else box(gripper, "gripper"),
                   exclude=tuple(polygon(p, "exclude") for p in exclude))


def save_regions(regions: Regions, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One key a line, numbers to a tenth of a pixel: a file meant to be read and edited by hand.
    data = json.loads(json.dumps(regions.to_json()), parse_float=lambda x: round(float(x), 1))
    path.write_text("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items()) + "\n}\n")
    return path


def load_regions(path: str | Path) -> Regions:
    path = Path(path)
    if not path.is_file():
        raise DetectError(f"no regions file at {path}: calibrate once with `python -m eval.real_arm.detect calibrate "
                          f"--camera 0 --out {path}` (or `from-scene` for the simulator)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DetectError(f"{path} is not valid JSON ({exc}); fix it or calibrate again") from None
    return Regions.from_json(data, source=str(path))


def _bbox(points: np.ndarray) -> BoxPx:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return (float(x0), float(y0), float(x1), float(y1))


def _box_corners(lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def regions_from_scene(scene: SceneSpec = DEFAULT_SCENE, camera: str = "front",
                       image_size: int | tuple[int, int] | None = None, layout: Layout | None = None) -> Regions:
    """Project the plate, holder and table through a world camera of the spec.

    Without ``layout`` the nominal positions are used, grown by the spec's placement jitter, so one calibration
    covers every seeded layout (as one click calibration covers every real trial). With ``layout`` the regions
    fit that episode exactly.
    """
    cam = scene.camera(camera)
    if image_size is None:
        size = (cam.width, cam.height)
    else:
        size = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    try:
        pin = PinholeCamera.from_spec(cam, size)
    except CameraError as exc:
        raise DetectError(str(exc)) from None
    j = scene.jitter
    if layout is None:
        plate_xy, holder_xy, plate_pad, holder_pad = (np.array(scene.plate.center_xy), np.array(scene.holder.center_xy),
                                                      j.plate_xy, j.holder_xy)
    else:
        plate_xy, holder_xy, plate_pad, holder_pad = layout.plate_xy, layout.holder_xy, 0.0, 0.0

    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    radius = scene.plate.radius + plate_pad
    rim = np.stack([plate_xy[0] + radius * np.cos(angles), plate_xy[1] + radius * np.sin(angles),
                    np.full_like(angles, scene.plate.top_z)], axis=1)
    plate = tuple((float(x), float(y)) for x, y in pin.project(rim))

    tallest = max(i.height for i in scene.ingredients.values())
    bx, by, _ = scene.holder.base_extents
    pad = holder_pad + (j.slice_slide if layout is None else 0.0)
    top = scene.holder.top_z + tallest
    holder = _bbox(pin.project(_box_corners((holder_xy[0] - bx / 2 - pad, holder_xy[1] - by / 2 - pad, 0.0),
                                            (holder_xy[0] + bx / 2 + pad, holder_xy[1] + by / 2 + pad, top))))
    slots = {}
    for name in INGREDIENTS:
        ing = scene.ingredients[name]
        x = holder_xy[0] + scene.holder.slot_offset(name)
        half_x = ing.thickness / 2 + scene.holder.slot_clearance + scene.holder.wall_thickness + holder_pad
        half_y = ing.width / 2 + pad
        low, high = scene.holder.top_z, scene.holder.top_z + ing.height
        slots[name] = _bbox(pin.project(_box_corners((x - half_x, holder_xy[1] - half_y, low),
                                                     (x + half_x, holder_xy[1] + half_y, high))))

    # The jaws at rest, and a slice hanging from them (grasped by its top edge).
    pad = SO101Kinematics(scene.robot).point(np.array(scene.robot.home_qpos[:ARM_JOINTS]))
    gripper = _bbox(pin.project(_box_corners(pad - [tallest / 2, tallest / 2, tallest], pad + [tallest / 2] * 3)))

    # The table: every pixel whose ray meets the table top inside its extents.
    rays = pin.rays()
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -pin.pos[2] / rays[..., 2]
    hit = pin.pos[:2] + t[..., None] * rays[..., :2]
    (cx, cy), (ex, ey) = scene.table.center_xy, scene.table.extents[:2]
    on_table = (t > 0) & (np.abs(hit[..., 0] - cx) <= ex / 2) & (np.abs(hit[..., 1] - cy) <= ey / 2)
    table = None
    if on_table.any():
        ys, xs = np.nonzero(on_table)
        hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32))[:, 0]
        table = tuple((float(x), float(y)) for x, y in hull)
    return Regions(image_size=size, plate=plate, holder=holder, colours=default_colours(scene), holder_slots=slots,
                   table=table, gripper=gripper)
