"""Propose each ingredient's outcome from the front camera: colour blobs before vs. after a trial.

The operator confirms or corrects every proposal, so a proposal carries a confidence and a one-line reason.
The regions and colours it needs are calibrated once (eval/real_arm/colours.py, regions.py and
click_calibration.py; re-exported here).

The arm itself can share the cheese's colour (the SO-101's printed parts are often yellow), so every
ingredient-coloured pixel of the ``before`` frame outside the ingredients' start regions is treated as static
clutter (the arm at rest) and ignored afterwards. Take ``after`` with the arm back at its rest pose; when the
arm is still over the table the proposals say so and carry a low confidence. Trial frames, when given, reveal
a slice that was lifted and fell back where it started.

    python -m eval.real_arm.detect from-scene --size 640x480 --out regions.json     # the simulator's camera
    python -m eval.real_arm.detect calibrate --camera 0 --out regions.json          # click on a real frame
    python -m eval.real_arm.detect propose --before b.png --after a.png --regions regions.json --scenario H,H
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from eval.real_arm.click_calibration import ClickCalibration, calibrate_by_clicking
from eval.real_arm.colours import Colour, DetectError, HsvRange, colour_from_click, default_colours
from eval.real_arm.regions import BoxPx, Point, Polygon, Regions, load_regions, regions_from_scene, save_regions
from leisaac_tasks.outcomes import Outcome
from leisaac_tasks.scenarios import INGREDIENTS, Placement, Scenario

__all__ = ["propose", "Proposal", "DetectConfig", "DetectError", "Regions", "Colour", "HsvRange", "ClickCalibration",
           "load_regions", "save_regions", "regions_from_scene", "calibrate_by_clicking", "default_colours",
           "colour_from_click", "main"]


# --- detection -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proposal:
    outcome: Outcome
    confidence: float  # 0..1: how sure the detector is; the operator confirms either way
    why: str


@dataclass(frozen=True)
class DetectConfig:
    """Thresholds, relative to the slice's own size in the image or to the image, so they suit any resolution."""

    min_blob_share: float = 1e-3  # of the image area: smaller specks are noise
    still_shift: float = 0.15  # centroid shift / slice size below which a slice has not moved ...
    still_shift_floor: float = 0.012  # ... or this share of the image width, for slivers peeking out
    still_cover: float = 0.7  # share of each mask (before, after) inside the other, one pixel grown
    near_start: float = 0.8  # distance from its start region / slice size within which a slice was pushed or tipped
    lift_rise: float = 0.35  # rise of the slice's lowest row / its height, in a trial frame, that counts as lifted
    upright: float = 0.6  # height / start height above which a blob in a trial frame is the slice standing up
    spot_empty: float = 0.05  # share of the start blob showing in a trial frame at or below which the slice left
    left_spot: float = 0.5  # ... and at or above which it is back (for a colour the arm shares)
    hidden: float = 0.35  # share of the start blob still visible, below which another slice covers it
    partly_covered: float = 0.2  # share of the start blob another slice now covers, above which centroids mislead
    change_level: int = 40  # per-channel difference that counts a pixel as changed
    arm_share: float = 0.01  # of the image area: changed pixels no slice explains, above which the arm is in view


@dataclass(frozen=True)
class Blob:
    mask: np.ndarray
    area: int
    centroid: Point
    bbox: BoxPx

    @classmethod
    def of(cls, mask: np.ndarray) -> "Blob | None":
        area = int(mask.sum())
        if area == 0:
            return None
        ys, xs = np.nonzero(mask)
        return cls(mask, area, (float(xs.mean()), float(ys.mean())), (float(xs.min()), float(ys.min()),
                                                                       float(xs.max()), float(ys.max())))

    @property
    def size(self) -> float:
        return math.sqrt(self.area)

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1] + 1


def _fill(shape: tuple[int, int], polygon: Polygon) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.array(polygon)).astype(np.int32)], 1)
    return mask.astype(bool)


def _box_mask(shape: tuple[int, int], box: BoxPx) -> np.ndarray:
    x0, y0, x1, y1 = box
    return _fill(shape, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _components(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_area]
    return [labels == k for k in sorted(keep, key=lambda k: -stats[k, cv2.CC_STAT_AREA])]


def _distance_to(mask: np.ndarray, point: Point) -> float:
    """Pixels from ``point`` to the nearest pixel of ``mask`` (0 inside it)."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return float("inf")
    return float(np.min(np.hypot(xs - point[0], ys - point[1])))


def _inside(mask: np.ndarray, point: Point) -> bool:
    x, y = int(round(point[0])), int(round(point[1]))
    return 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and bool(mask[y, x])


def _share(part: np.ndarray, whole: np.ndarray) -> float:
    total = int(whole.sum())
    return float((part & whole).sum() / total) if total else 0.0


def _check_image(image: np.ndarray, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DetectError(f"{what} must be an RGB uint8 image of shape (h, w, 3), got {image.dtype} {image.shape}")
    if shape is not None and image.shape != shape:
        raise DetectError(f"{what} is {image.shape} but the before frame is {shape}: use frames of one camera setting")
    return image


@dataclass
class _Trial:
    """What propose() derives once per trial and every ingredient's verdict reads."""

    config: DetectConfig
    shape: tuple[int, int]
    edge: int  # pixels: anti-aliased borders blend into their neighbours
    plate: np.ndarray
    gripper: np.ndarray | None
    arm_in_view: bool
    foreign: np.ndarray  # changed pixels that no slice explains


@dataclass
class _Ingredient:
    name: str
    placement: Placement
    start_region: np.ndarray
    start: Blob | None  # in ``before``
    now: Blob | None  # in ``after``
    covered: np.ndarray  # where another slice has come to lie, so this one may be hidden beneath it
    lifted_seen: bool | None  # from trial frames; None when they cannot tell
    under_other: bool = False  # only partly visible from the start, under another slice


def propose(before: np.ndarray, after: np.ndarray, regions: Regions, scenario: Scenario | str,
            frames: Sequence[np.ndarray] | None = None, config: DetectConfig = DetectConfig()) -> dict[str, Proposal]:
    """Per ingredient, the outcome the two frames suggest. ``frames`` (taken during the trial, e.g. three a
    second) let it see a slice that was lifted and fell back where it started."""
    scenario = scenario if isinstance(scenario, Scenario) else Scenario.parse(str(scenario))
    before = _check_image(before, "before")
    after = _check_image(after, "after", before.shape)
    frames = [_check_image(f, "a trial frame", before.shape) for f in (frames or ())]
    h, w = before.shape[:2]
    regions = regions.scaled_to((w, h))
    present = [n for n in INGREDIENTS if scenario.present(n)]
    missing = [n for n in present if n not in regions.colours]
    if missing:
        raise DetectError(f"the regions file has no colour for {', '.join(missing)}: add it under 'colours' "
                          f"or calibrate again")
    edge = max(1, round(min(h, w) / 100))
    allowed = np.ones((h, w), bool)
    for poly in regions.exclude:
        allowed &= ~_fill((h, w), poly)
    hsv_before, hsv_after = cv2.cvtColor(before, cv2.COLOR_RGB2HSV), cv2.cvtColor(after, cv2.COLOR_RGB2HSV)
    plate = _fill((h, w), regions.plate)
    min_area = max(3, int(config.min_blob_share * h * w))

    ingredients: dict[str, _Ingredient] = {}
    arrived: dict[str, np.ndarray] = {}  # where each colour shows now and did not before
    for name in present:
        placement = scenario.placement(name)
        region = _dilate(plate if placement == Placement.PLATE else _box_mask((h, w), regions.slot(name)), edge)
        colour = regions.colours[name]
        seen = colour.mask(hsv_before) & allowed
        start = Blob.of(seen & region)
        if start is not None and start.area < min_area:
            start = None  # a few pixels peeking out from under another slice say nothing
        # Everything else of this colour in ``before`` is clutter to ignore from now on: the arm at rest, say.
        # The arm never returns to rest to the pixel, hence the generous margin.
        clutter = _dilate(seen & ~region, 2 * edge)
        now_colour = colour.mask(hsv_after) & allowed
        arrived[name] = now_colour & ~seen
        now = _find_after(now_colour & ~clutter, start, min_area)
        # A colour the clutter shares (a yellow arm and the cheese) makes trial frames ambiguous: the arm moves.
        shared = int(clutter.sum()) >= min_area
        if not frames or start is None:
            lifted = None
        elif shared:
            lifted = _left_and_came_back(frames, colour, start, config)
        else:
            lifted = _lifted_in_frames(frames, colour, clutter | ~allowed, start, now, min_area, config)
        ingredients[name] = _Ingredient(name, placement, region, start, now, np.zeros((h, w), bool), lifted)
    for name, ing in ingredients.items():
        for other, them in ingredients.items():
            if other == name:
                continue
            ing.covered |= _dilate(arrived[other], edge)
            # A sliver beside a much larger slice is the part of this one that peeks out from under it.
            if ing.start is not None and them.start is not None and them.start.area > 2 * ing.start.area:
                ing.under_other |= bool((_dilate(ing.start.mask, 2 * edge) & them.start.mask).any())

    changed = np.abs(before.astype(np.int16) - after.astype(np.int16)).max(axis=2) > config.change_level
    explained = np.zeros((h, w), bool)
    for ing in ingredients.values():
        for blob in (ing.start, ing.now):
            if blob is not None:
                explained |= blob.mask
    table = _fill((h, w), regions.table) if regions.table else np.ones((h, w), bool)
    foreign = changed & ~_dilate(explained, 2 * edge) & table & allowed
    trial = _Trial(config, (h, w), edge, plate,
                   None if regions.gripper is None else _box_mask((h, w), regions.gripper),
                   int(foreign.sum()) > config.arm_share * h * w, foreign)

    return {name: _classify(ingredients[name], trial) if name in ingredients else
            Proposal(Outcome.ABSENT, 1.0, f"the scenario has no {name}") for name in INGREDIENTS}


def _find_after(mask: np.ndarray, start: Blob | None, min_area: int) -> Blob | None:
    """The slice in ``after``: what still overlaps its start blob (cut to half a slice around it, so an arm
    touching it is not counted), else the component closest to its size (a merged arm blob is much larger)."""
    parts = _components(mask, min_area if start is None else max(min_area, round(0.2 * start.area)))
    if not parts:
        return None
    if start is None:
        return Blob.of(parts[0])
    touching = [p for p in parts if (p & start.mask).any()]
    if touching and sum(int((p & start.mask).sum()) for p in touching) >= 0.5 * start.area:
        near = _dilate(start.mask, max(1, round(start.size / 2)))
        return Blob.of(np.logical_or.reduce(touching) & near)
    return Blob.of(min(parts, key=lambda p: abs(math.log(p.sum() / start.area))))


def _lifted_in_frames(frames: Sequence[np.ndarray], colour: Colour, ignore: np.ndarray, start: Blob,
                      end: Blob | None, min_area: int, config: DetectConfig) -> bool:
    """Whether some frame shows the slice upright and clearly higher than where it stood, and not yet where it
    ended up: a slice knocked over backwards also rises in the image, but stays there."""
    x0, _, x1, bottom = start.bbox
    for frame in frames:
        mask = colour.mask(cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)) & ~ignore
        for part in _components(mask, min_area):
            blob = Blob.of(part)
            if not 0.3 * start.area <= blob.area <= 2.0 * start.area or blob.height < config.upright * start.height:
                continue  # a sliver, two things merged, or a slice lying down
            overlaps = blob.bbox[0] <= x1 and blob.bbox[2] >= x0
            at_rest = end is not None and _share(end.mask, part) > 0.5
            if overlaps and not at_rest and bottom - blob.bbox[3] > config.lift_rise * start.height:
                return True
    return False


def _left_and_came_back(frames: Sequence[np.ndarray], colour: Colour, start: Blob,
                        config: DetectConfig) -> bool | None:
    """For a colour the arm shares: the slice's spot emptied in some frame and it was back later (it was lifted
    and fell back). None when the frames cannot tell."""
    shares = [float((colour.mask(cv2.cvtColor(f, cv2.COLOR_RGB2HSV)) & start.mask).sum() / start.area) for f in frames]
    for k, share in enumerate(shares):
        if share <= config.spot_empty and max(shares[k:], default=0.0) >= config.left_spot:
            return True
    return None


def _classify(ing: _Ingredient, trial: _Trial) -> Proposal:
    name, cfg = ing.name, trial.config
    where = "plate" if ing.placement == Placement.PLATE else "holder"
    start, now = ing.start, ing.now
    if start is None:
        return Proposal(Outcome.UNTOUCHED, 0.2, f"the {name} was not visible on its {where} before the trial (under "
                                                f"another slice? if not, check the regions and colours)")
    trust = 0.5 if trial.arm_in_view else 1.0
    note = "; the arm is still over the table" if trial.arm_in_view else ""
    lifted = bool(ing.lifted_seen)
    seen_lift = ", after being lifted" if lifted else ""
    visible = start.mask & ~ing.covered
    hidden = visible.sum() < cfg.hidden * start.area

    if now is None:
        if hidden or ing.under_other:
            return Proposal(Outcome.UNTOUCHED, 0.5, f"the {name} is out of sight under another slice where it lay")
        if lifted:
            return Proposal(Outcome.LIFTED, 0.4, f"the {name} is out of sight after being lifted: still held?{note}")
        if trial.arm_in_view:
            return Proposal(Outcome.UNTOUCHED, 0.2, f"the {name} is out of sight, perhaps behind the arm{note}")
        return Proposal(Outcome.LIFTED, 0.4, f"the {name} left its {where} and is nowhere on the table: "
                                             f"in the jaws, against the arm?")

    # Another slice may now lie on this one: its start blob counts as still there where it is now covered, and
    # centroids of what peeks out are compared only when little is covered.
    partly_covered = ing.under_other or _share(ing.covered, start.mask) >= cfg.partly_covered
    shift = math.dist(start.centroid, now.centroid)
    tolerance = max(cfg.still_shift * start.size, cfg.still_shift_floor * trial.shape[1])
    grown_start, grown_now = _dilate(start.mask, trial.edge), _dilate(now.mask, trial.edge)
    cover = min(_share(grown_start, now.mask & ~ing.covered), _share(grown_now | ing.covered, start.mask))
    still = (partly_covered or shift <= tolerance) and cover >= cfg.still_cover
    on_plate = _inside(trial.plate, now.centroid)
    in_start = _inside(ing.start_region, now.centroid)
    held = trial.gripper is not None and not in_start and _share(trial.gripper, now.mask) > 0.5
    touches_arm = trial.arm_in_view and not in_start and \
        bool((_dilate(now.mask, 2 * trial.edge + 1) & trial.foreign).any())
    size = start.size
    moved = f"shift {shift / size:.2f} slice, overlap {cover:.2f}"

    if still and not lifted:
        return Proposal(Outcome.UNTOUCHED, min(1.0, 0.5 + cover / 2) * trust,
                        f"the {name} is where it was ({moved}){note}")
    if on_plate and (ing.placement == Placement.HOLDER or lifted):
        return Proposal(Outcome.ON_PLATE, 0.9 * trust, f"the {name} lies on the plate{seen_lift}{note}")
    if held:
        return Proposal(Outcome.LIFTED, 0.7 * trust, f"the {name} hangs where the jaws rest: still held")
    if touches_arm:
        return Proposal(Outcome.LIFTED, 0.4, f"the {name} is off its {where} and touches the arm: probably held")
    if lifted:
        return Proposal(Outcome.DROPPED, 0.7 * trust, f"the {name} fell back {'into' if in_start else 'off'} its "
                                                      f"{where} after being lifted ({moved}){note}")
    if in_start:
        return Proposal(Outcome.MOVED, 0.7 * trust, f"the {name} shifted within its {where} ({moved}){note}")
    gap = _distance_to(ing.start_region, now.centroid) / size
    if gap > cfg.near_start:
        return Proposal(Outcome.DROPPED, 0.6 * trust, f"the {name} came to rest {gap:.1f} slice-widths off its "
                                                      f"{where}{note}")
    return Proposal(Outcome.MOVED, 0.6 * trust, f"the {name} lies just off its {where}: pushed or tipped{note}")


# --- command line ------------------------------------------------------------------------------------------
def _read_rgb(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DetectError(f"cannot read an image from {path}: give a PNG or JPEG file")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _grab_frame(camera: str) -> np.ndarray:
    cap = cv2.VideoCapture(int(camera) if camera.isdigit() else camera)
    try:
        for _ in range(5):  # the first frames of many webcams are dark while exposure settles
            ok, frame = cap.read()
        if not cap.isOpened() or not ok:
            raise DetectError(f"could not read a frame from camera {camera!r}: check the index or /dev/video path")
    finally:
        cap.release()
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.real_arm.detect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # keeps the examples
    sub = parser.add_subparsers(dest="command", required=True)
    cal = sub.add_parser("calibrate", help="click the plate and holder on a front-camera frame")
    src = cal.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", help="OpenCV camera index or device path, e.g. 0 or /dev/video2")
    src.add_argument("--image", help="a saved front-camera frame")
    cal.add_argument("--out", required=True)
    sc = sub.add_parser("from-scene", help="project the regions from the scene spec (the simulator's camera)")
    sc.add_argument("--size", default="224x224", help="WIDTHxHEIGHT of the frames, e.g. 640x480")
    sc.add_argument("--out", required=True)
    pr = sub.add_parser("propose", help="propose outcomes from a before and an after frame")
    pr.add_argument("--before", required=True)
    pr.add_argument("--after", required=True)
    pr.add_argument("--regions", required=True)
    pr.add_argument("--scenario", required=True, help="e.g. 'H,H' or 'P,-'")
    args = parser.parse_args(argv)
    try:
        if args.command == "calibrate":
            image = _grab_frame(args.camera) if args.camera else _read_rgb(args.image)
            print(f"wrote {save_regions(calibrate_by_clicking(image), args.out)}")
        elif args.command == "from-scene":
            try:
                w, h = (int(v) for v in args.size.lower().split("x"))
            except ValueError:
                raise DetectError(f"--size {args.size!r}: write WIDTHxHEIGHT, e.g. 640x480") from None
            print(f"wrote {save_regions(regions_from_scene(image_size=(w, h)), args.out)}")
        else:
            proposals = propose(_read_rgb(args.before), _read_rgb(args.after), load_regions(args.regions),
                                args.scenario)
            for name, p in proposals.items():
                print(f"{name}: {p.outcome.value} ({p.confidence:.2f}) {p.why}")
    except (DetectError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
