"""Ingredient colours for outcome detection: HSV ranges from the scene spec's RGBA under a model of shading and
highlights (``default_colours``), or sampled by clicking on a real slice (``colour_from_click``).

OpenCV HSV units throughout: hue 0-179, saturation and value 0-255. Images are RGB uint8 arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from leisaac_tasks.scenarios import INGREDIENTS
from leisaac_tasks.spec import DEFAULT_SCENE, SceneSpec


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
