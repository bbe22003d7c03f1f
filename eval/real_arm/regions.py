"""Where things are in the front camera's image, and what colour they are: calibrated once per camera setup.

- Pixel regions (plate, holder and its slots, table, the jaws at rest) come from clicking on a real frame
  (``calibrate_by_clicking``) or from projecting the scene spec through the simulated camera
  (``regions_from_scene``, how CI calibrates), and are saved as a JSON file a user can edit.
- Ingredient colours are HSV ranges derived from the spec's RGBA under a model of shading and highlights
  (``default_colours``), or sampled by clicking on the real slices.

OpenCV HSV units throughout: hue 0-179, saturation and value 0-255. Images are RGB uint8 arrays.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from leisaac_tasks.kinematics import ARM_JOINTS, SO101Kinematics
from leisaac_tasks.layout import Layout
from leisaac_tasks.scenarios import INGREDIENTS
from leisaac_tasks.spec import DEFAULT_SCENE, CameraSpec, SceneSpec

Point = tuple[float, float]
Polygon = tuple[Point, ...]
BoxPx = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


class DetectError(ValueError):
    """Bad regions file, bad images or no GUI: the message names the problem and the fix."""


# --- colours -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HsvRange:
    """Inclusive OpenCV HSV bounds; ``lo[0] > hi[0]`` is a hue band that wraps through red."""

    lo: tuple[int, int, int]
    hi: tuple[int, int, int]

    def mask(self, hsv: np.ndarray) -> np.ndarray:
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        (h0, s0, v0), (h1, s1, v1) = self.lo, self.hi
        hue = (h >= h0) & (h <= h1) if h0 <= h1 else (h >= h0) | (h <= h1)
        return hue & (s >= s0) & (s <= s1) & (v >= v0) & (v <= v1)


@dataclass(frozen=True)
class Colour:
    """How an ingredient can look: the union of a few HSV ranges (its body, its washed-out highlights)."""

    ranges: tuple[HsvRange, ...]

    def mask(self, hsv: np.ndarray) -> np.ndarray:
        return np.logical_or.reduce([r.mask(hsv) for r in self.ranges])


MAX_HUE_HALF_WIDTH = 8.0  # OpenCV hue units (2 degrees each)
MIN_SATURATION_SHARE = 0.6  # of the ingredient's own saturation: keeps out the pale table
MIN_VALUE_SHARE = 0.4  # of its own brightness: faces turned away from the light are darker
SHADING = np.linspace(MIN_VALUE_SHARE, 1.5, 23)  # brightness factors, shadowed faces to highlights
BRIGHT_VALUE = 229  # a channel clipped at 255 means value 255; allow for blending at edges


def _shades(rgba: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """HSV (OpenCV units, float) of the colour under each SHADING factor, and which of those clip at white.

    Clipping is why a brightly lit tan slice turns yellow: its red channel saturates first."""
    rgb = np.outer(SHADING, np.asarray(rgba[:3], float))
    clipped = rgb.max(axis=1) > 1.0
    hsv = cv2.cvtColor(np.clip(rgb, 0, 1).astype(np.float32)[None], cv2.COLOR_RGB2HSV)[0].astype(float)
    return hsv * [0.5, 255.0, 255.0], clipped


def _shades_at_one(rgba: Sequence[float]) -> tuple[float, float, float]:
    h, s, v = cv2.cvtColor(np.array([[rgba[:3]]], np.float32), cv2.COLOR_RGB2HSV)[0, 0]
    return float(h) / 2.0, float(s) * 255.0, float(v) * 255.0


@dataclass
class _Box:
    """A range being derived, with the hues and saturations its shading samples really have."""

    owner: str
    h: list[float]  # lo, hi; may run past 0 or 180 before wrapping
    h_seen: tuple[float, float]
    s_seen: tuple[float, float]
    s_lo: float
    v_lo: float
    s_hi: float = 255.0

    def range(self) -> HsvRange:
        return HsvRange((math.ceil(self.h[0]) % 180, math.ceil(self.s_lo), math.ceil(self.v_lo)),
                        (math.floor(self.h[1]) % 180, math.floor(self.s_hi), 255))


def _separate(a: _Box, b: _Box) -> None:
    """Make two ingredients' ranges disjoint: by hue where their shades' hues differ, else by saturation."""
    k = 180.0 * round((sum(a.h_seen) - sum(b.h_seen)) / 360.0)  # turn b by whole circles to lie near a
    bh, b_seen = [b.h[0] + k, b.h[1] + k], (b.h_seen[0] + k, b.h_seen[1] + k)
    if not (a.h[0] <= bh[1] and bh[0] <= a.h[1] and a.s_lo <= b.s_hi and b.s_lo <= a.s_hi):
        return
    if a.h_seen[1] < b_seen[0]:
        cut = (a.h_seen[1] + b_seen[0]) / 2
        a.h[1], b.h[0] = min(a.h[1], cut - 0.01), max(bh[0], cut + 0.01) - k
    elif b_seen[1] < a.h_seen[0]:
        cut = (b_seen[1] + a.h_seen[0]) / 2
        b.h[1], a.h[0] = min(bh[1], cut - 0.01) - k, max(a.h[0], cut + 0.01)
    else:
        pale, vivid = (a, b) if a.s_seen[1] < b.s_seen[0] else (b, a)
        middle = (pale.s_seen[1] + vivid.s_seen[0]) / 2
        pale.s_hi, vivid.s_lo = min(pale.s_hi, middle - 1), max(vivid.s_lo, middle)


def default_colours(scene: SceneSpec = DEFAULT_SCENE) -> dict[str, Colour]:
    """Each ingredient's look, derived from its spec RGBA under a range of lighting (SHADING).

    - Body: hue within at most halfway to the nearest other saturated scene colour on either side (the tan
      bread and the brown holder are 3 hue units apart), saturation and value above a share of its own.
    - Highlights: where a channel clips the hue drifts (tan towards yellow); a second range covers that drift.
    Two ingredients' ranges that still meet are cut apart halfway between their shades: by hue where those
    differ in hue (bright bread stops short of cheese yellow), else by saturation.
    """
    surfaces = {"table": scene.table.rgba, "holder": scene.holder.rgba, "plate": scene.plate.rgba,
                "riser": scene.robot.riser_rgba, **{n: i.rgba for n, i in scene.ingredients.items()}}
    boxes: list[_Box] = []
    for name in INGREDIENTS:
        h, s, v = _shades_at_one(surfaces[name])
        below = above = 2 * MAX_HUE_HALF_WIDTH
        for other, rgba in surfaces.items():
            oh, os_, _ = _shades_at_one(rgba)
            if other == name or os_ < MIN_SATURATION_SHARE * s:
                continue  # a pale colour is kept out by saturation, not hue
            up = (oh - h) % 180.0
            above, below = min(above, up), min(below, 180.0 - up)
        boxes.append(_Box(name, [h - min(MAX_HUE_HALF_WIDTH, below / 2), h + min(MAX_HUE_HALF_WIDTH, above / 2)],
                          (h, h), (s, s), MIN_SATURATION_SHARE * s, MIN_VALUE_SHARE * v))
        hsv, clipped = _shades(surfaces[name])
        if clipped.any():
            drift = (hsv[clipped, 0] - h + 90.0) % 180.0 - 90.0  # signed hue drift from the body
            seen = (float(hsv[clipped, 1].min()), float(hsv[clipped, 1].max()))
            boxes.append(_Box(name, [h + drift.min() - 1, h + drift.max() + 1], (h + drift.min(), h + drift.max()),
                              seen, MIN_SATURATION_SHARE * seen[0], BRIGHT_VALUE))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a.owner != b.owner:
                _separate(a, b)
    return {name: Colour(tuple(b.range() for b in boxes if b.owner == name)) for name in INGREDIENTS}


def colour_from_click(image: np.ndarray, x: float, y: float) -> Colour:
    """The colour of the object under a click: grow a region of gently changing colour from the clicked pixel
    (so it follows shading across the slice), then take its hue spread and its lower saturation and value,
    with margins."""
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
    h, w = hsv.shape[:2]
    seed = (min(max(int(round(x)), 0), w - 1), min(max(int(round(y)), 0), h - 1))
    grown = np.zeros((h + 2, w + 2), np.uint8)
    cv2.floodFill(hsv.copy(), grown, seed, 0, (2, 12, 25), (2, 12, 25),
                  4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    pixels = hsv[grown[1:-1, 1:-1].astype(bool)].astype(float)
    centre = float(hsv[seed[1], seed[0], 0])
    drift = (pixels[:, 0] - centre + 90.0) % 180.0 - 90.0
    lo_h, hi_h = centre + np.percentile(drift, 1) - 2, centre + np.percentile(drift, 99) + 2
    s_lo, v_lo = np.percentile(pixels[:, 1], 1), np.percentile(pixels[:, 2], 1)
    return Colour((HsvRange((math.floor(lo_h) % 180, math.floor(0.85 * s_lo), math.floor(MIN_VALUE_SHARE * v_lo / 0.8)),
                            (math.ceil(hi_h) % 180, 255, 255)),))


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


# --- projection from the scene spec ------------------------------------------------------------------------
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
            raise DetectError(f"camera {cam.name!r} rides on {cam.parent!r}, so it has no fixed view to calibrate; "
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
            raise DetectError("a scene point lies behind the camera; check the camera spec's pos and look_at")
        w, h = self.size
        return np.stack([w / 2 - 0.5 + self.focal * cam[:, 0] / depth,
                         h / 2 - 0.5 - self.focal * cam[:, 1] / depth], axis=1)

    def rays(self) -> np.ndarray:
        """World-frame ray directions through every pixel centre, (h, w, 3)."""
        w, h = self.size
        u, v = np.meshgrid(np.arange(w) + 0.5 - w / 2, h / 2 - (np.arange(h) + 0.5))
        local = np.stack([u / self.focal, v / self.focal, -np.ones_like(u, dtype=float)], axis=-1)
        return local @ self.axes


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
    pin = PinholeCamera.from_spec(cam, size)
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


# --- calibration by clicking -------------------------------------------------------------------------------
@dataclass
class ClickCalibration:
    """The click-by-click state behind ``calibrate_by_clicking``, free of any window so it can be scripted.

    Steps: points around the plate's rim (three or more); two opposite corners of the holder with the slices
    standing in it; optionally two corners around the jaws at the rest pose and a slice's height below them
    (where a slice still held after a trial shows up); optionally clicks on each ingredient to sample its
    colour, one per face that looks different (a lit top, a shaded front). ``next_step`` (Enter) ends a step or
    skips an optional one.
    """

    image: np.ndarray  # RGB
    scene: SceneSpec = DEFAULT_SCENE
    step: int = 0
    plate: list[Point] = field(default_factory=list)
    holder: list[Point] = field(default_factory=list)
    gripper: list[Point] = field(default_factory=list)
    colours: dict[str, Colour] = field(default_factory=dict)

    @property
    def steps(self) -> tuple[str, ...]:
        return ("plate", "holder", "gripper", *(f"colour:{n}" for n in INGREDIENTS))

    @property
    def finished(self) -> bool:
        return self.step >= len(self.steps)

    @property
    def prompt(self) -> str:
        if self.finished:
            return "done: press any key to save"
        name = self.steps[self.step]
        if name == "plate":
            return f"click 3+ points around the plate rim, then Enter ({len(self.plate)} so far)"
        if name == "holder":
            return "click two opposite corners of the holder, slices included (Enter when done)"
        if name == "gripper":
            return "click two corners around the resting jaws and a slice below them, or Enter to skip"
        ingredient = name.split(":")[1]
        clicks = len(self.colours[ingredient].ranges) if ingredient in self.colours else 0
        return (f"click the {ingredient} (each lit face once) to sample its colour, then Enter ({clicks} so far; "
                f"none keeps the default)")

    def click(self, x: float, y: float) -> None:
        if self.finished:
            return
        name = self.steps[self.step]
        if name == "plate":
            self.plate.append((float(x), float(y)))
        elif name in ("holder", "gripper"):
            setattr(self, name, (getattr(self, name) + [(float(x), float(y))])[-2:])
        else:
            ingredient = name.split(":")[1]
            sampled = colour_from_click(self.image, x, y).ranges
            self.colours[ingredient] = Colour(self.colours[ingredient].ranges + sampled
                                              if ingredient in self.colours else sampled)

    def next_step(self) -> None:
        """Enter: move on, if this step has what it needs (a colour step may be skipped)."""
        name = self.steps[self.step] if not self.finished else ""
        if name == "plate" and len(self.plate) < 3:
            return
        if name == "holder" and len(self.holder) < 2:
            return
        if name == "gripper" and len(self.gripper) == 1:
            return  # one corner of two: finish the box (or click again to move it)
        self.step += 1

    def regions(self) -> Regions:
        if self.step < 2:
            raise DetectError("calibration stopped before the plate and holder were both marked; run it again")
        h, w = self.image.shape[:2]

        def box(corners: list[Point]) -> BoxPx:
            (x0, y0), (x1, y1) = corners
            return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

        return Regions(image_size=(w, h), plate=tuple(self.plate), holder=box(self.holder),
                       colours={**default_colours(self.scene), **self.colours},
                       gripper=box(self.gripper) if len(self.gripper) == 2 else None)

    def draw(self) -> np.ndarray:
        """The frame with what has been marked so far and the prompt, BGR for cv2.imshow."""
        canvas = cv2.cvtColor(self.image, cv2.COLOR_RGB2BGR)
        if self.plate:
            cv2.polylines(canvas, [np.array(self.plate, np.int32)], len(self.plate) > 2, (255, 255, 255), 1)
        for corners, colour in ((self.holder, (0, 0, 255)), (self.gripper, (255, 0, 0))):
            for x, y in corners:
                cv2.circle(canvas, (int(x), int(y)), 3, colour, -1)
            if len(corners) == 2:
                cv2.rectangle(canvas, tuple(int(v) for v in corners[0]), tuple(int(v) for v in corners[1]), colour, 1)
        cv2.putText(canvas, self.prompt, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 2)
        cv2.putText(canvas, self.prompt, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        return canvas


def calibrate_by_clicking(image: np.ndarray, scene: SceneSpec = DEFAULT_SCENE,
                          window: str = "ChefMate: calibrate the front camera") -> Regions:
    """Open a window on ``image`` (RGB) and let the user click the plate rim, the holder and the colours."""
    state = ClickCalibration(np.ascontiguousarray(image), scene)
    try:
        cv2.namedWindow(window, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise DetectError("this OpenCV build has no GUI (opencv-python-headless): `pip install opencv-python` for "
                          "click calibration, or write the regions JSON by hand from `from-scene`") from None
    cv2.setMouseCallback(window, lambda event, x, y, *_: state.click(x, y) if event == cv2.EVENT_LBUTTONDOWN else None)
    try:
        while True:
            cv2.imshow(window, state.draw())
            key = cv2.waitKey(30) & 0xFF
            if key in (13, 10):
                state.next_step()
            elif key == 27:
                break
            if state.finished and key not in (255, 13, 10):
                break
    finally:
        cv2.destroyWindow(window)
    return state.regions()
