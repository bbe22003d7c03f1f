"""Calibrating the regions and colours by clicking on a real frame: a scriptable state machine
(``ClickCalibration``) and the OpenCV window that drives it (``calibrate_by_clicking``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from eval.real_arm.colours import Colour, DetectError, colour_from_click, default_colours
from eval.real_arm.regions import BoxPx, Point, Regions
from leisaac_tasks.scenarios import INGREDIENTS
from leisaac_tasks.spec import DEFAULT_SCENE, SceneSpec


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
