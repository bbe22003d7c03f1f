"""Captioned renders of randomized sandwich scenes: generic vision-language data with no task instructions in it.

    python -m training.captions --out data/captions --n 2000 --image-size 96

Each scene draws a scenario (cheese/bread in the holder, on the plate or absent) and a layout seed from the env's
own samplers, sometimes lays an absent slice flat on the table instead, and poses the arm somewhere between its
folded home pose and a reach over the workspace, gripper open or closed. The caption is written from what the
simulator then holds (slice poses, gripper joint, gripper position, which objects the cameras actually see by a
segmentation render), so it is true for the image. Captions only describe: objects, colours, positions; no verbs
of a task. Left/right are as seen from the front camera (the plate is on the left, the holder on the right).

Writes ``<out>/images.npz`` (uint8 ``front``/``wrist``, (N, 3, S, S)), ``<out>/captions.jsonl`` (one scene a line:
text, the full facts, the facts the text states) and ``<out>/meta.json`` (settings, render speed).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede any mujoco import; headless machines have no display

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from eval.config_cli import defaults_from, from_args  # noqa: E402
from leisaac_tasks.backends.mujoco.segmentation import OBJECTS, SegmentingSim  # noqa: E402
# The layout's own lying-flat rotation, so a slice on the table lies exactly as one on the plate does.
from leisaac_tasks.layout import LIE_FLAT, Layout, quat_mul, sample_layout, yaw_quat  # noqa: E402
from leisaac_tasks.scenarios import INGREDIENTS, Scenario, scenario_set  # noqa: E402
from leisaac_tasks.spec import DEFAULT_SCENE, RobotSpec, SceneSpec  # noqa: E402
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW  # noqa: E402

CAMERAS: tuple[str, ...] = ("front", "wrist")
GRIPPER_OPEN_RAD = 0.35  # gripper joint above this reads as "open" (closed ~ -0.17, fully open ~ 1.75)
LOW_M, HIGH_M = 0.07, 0.17  # gripper-site height buckets: low / mid / high
# Words of a task instruction; captions must never contain them (the pretraining is instruction-free).
INSTRUCTION_WORDS: tuple[str, ...] = ("pick", "put", "place it", "do not", "don't", "move", "grab", "take")


class CaptionError(ValueError):
    pass


@dataclass(frozen=True)
class CaptionConfig:
    out: Path
    n: int = 2000
    image_size: int = 96
    render_size: int = 224  # the demos' default: both go through the same resize_images to the model's size
    seed: int = 0
    table_slice_prob: float = 0.25  # an absent slice lies flat on the table instead
    near_home_prob: float = 0.15  # arm close to its folded home pose rather than reaching
    include_extra_scenario: bool = True  # (–,P) too: more variety for a caption set
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise CaptionError(f"--n must be at least 1, got {self.n}")
        if self.image_size < 8 or self.render_size < self.image_size:
            raise CaptionError(f"need 8 <= --image-size <= --render-size, got {self.image_size} and "
                               f"{self.render_size}")


# --- arm poses --------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def reach_pool(robot: RobotSpec = RobotSpec()) -> np.ndarray:
    """(K, 5) arm configurations with the jaws down over a grid of reaches and heights, in the pan = 0 plane.

    IK costs ~0.1 s, so it runs once per process; each scene then pans, rolls, jitters and blends one of these
    with the home pose, which covers the workspace with poses an arm would really take (random joint angles
    mostly point the wrist camera at the sky).
    """
    from leisaac_tasks.kinematics import SO101Kinematics

    kin = SO101Kinematics(robot)
    home = np.array(robot.home_qpos[:5])
    pool = [kin.solve(np.array([reach, 0.0, height]), np.array([0.0, 1.0, 0.0]), home).qpos
            for reach in (0.13, 0.19, 0.25, 0.31) for height in (0.05, 0.12, 0.20)]
    return np.array(pool)


def sample_arm(rng: np.random.Generator, pool: np.ndarray, robot: RobotSpec, near_home_prob: float) -> np.ndarray:
    """Six joint positions (radians): home blended toward a random reach, panned, rolled, jittered; gripper set."""
    home = np.array(robot.home_qpos[:5])
    blend = rng.uniform(0.0, 0.3) if rng.random() < near_home_prob else rng.uniform(0.35, 1.0)
    arm = home + blend * (pool[rng.integers(len(pool))] - home)
    arm[0] = rng.uniform(-1.0, 1.0)  # pan sweeps from the holder side to the plate side
    arm[1:4] += rng.normal(0.0, 0.08, 3)
    arm[4] += rng.uniform(-1.2, 1.2)
    gripper = rng.uniform(0.6, 1.6) if rng.random() < 0.5 else rng.uniform(-0.17, 0.1)
    return np.clip(np.append(arm, gripper), JOINT_LOW, JOINT_HIGH)


# --- scene facts ------------------------------------------------------------------------------------------
def _front_direction(offset: np.ndarray) -> str:
    """Dominant direction of a table offset as the front camera sees it (it looks along -x: +y is its right)."""
    dx, dy = offset
    if abs(dy) >= abs(dx):
        return "right" if dy > 0 else "left"
    return "front" if dx > 0 else "behind"


def relation(xy: np.ndarray, layout: Layout, spec: SceneSpec, over_ok: bool) -> str:
    """Where a table point is relative to the plate and holder, canonical: 'above:plate', 'left:holder', 'between'."""
    xy = np.asarray(xy[:2], float)
    holder_half = np.array(spec.holder.base_extents[:2]) / 2 + 0.01
    if over_ok and np.hypot(*(xy - layout.plate_xy)) <= spec.plate.radius:
        return "above:plate"
    if over_ok and np.all(np.abs(xy - layout.holder_xy) <= holder_half):
        return "above:holder"
    lo, hi = sorted((layout.plate_xy[1], layout.holder_xy[1]))
    if lo < xy[1] < hi and abs(xy[0] - (layout.plate_xy[0] + layout.holder_xy[0]) / 2) < 0.05:
        return "between"
    landmarks = {"plate": layout.plate_xy, "holder": layout.holder_xy}
    name = min(landmarks, key=lambda k: np.hypot(*(xy - landmarks[k])))
    return f"{_front_direction(xy - landmarks[name])}:{name}"


def placement_of(pose: np.ndarray, layout: Layout, spec: SceneSpec) -> str:
    """'holder' | 'plate' | 'table' | 'absent', read from a slice's pose (not from the scenario it was meant to be)."""
    x, y, z = pose[:3]
    t = spec.table
    if abs(x - t.center_xy[0]) > t.extents[0] / 2 or abs(y - t.center_xy[1]) > t.extents[1] / 2:
        return "absent"  # parked on the shelf outside every camera's view
    if np.all(np.abs(pose[:2] - layout.holder_xy) <= np.array(spec.holder.base_extents[:2]) / 2) \
            and z > spec.holder.top_z:
        return "holder"
    if np.hypot(*(pose[:2] - layout.plate_xy)) <= spec.plate.radius and z > spec.plate.top_z:
        return "plate"
    return "table"


@dataclass
class SceneFacts:
    """Everything a caption may say, canonical and JSON-ready. Lists are sorted (plate: bottom to top)."""

    placement: dict[str, str]
    holder: list[str]
    plate: list[str]
    table: dict[str, str]  # slice -> relation
    gripper_open: bool
    gripper_place: str
    gripper_height: str
    gripper_in_front_view: bool
    wrist_sees: list[str]
    hidden_front: list[str]  # present slices the front camera cannot see

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_facts(poses: dict[str, np.ndarray], qpos: np.ndarray, ee: np.ndarray, seen: dict[str, set[str]],
               layout: Layout, spec: SceneSpec) -> SceneFacts:
    placement = {n: placement_of(poses[n], layout, spec) for n in INGREDIENTS}
    on = lambda where: [n for n in INGREDIENTS if placement[n] == where]  # noqa: E731
    height = "low" if ee[2] < LOW_M else "high" if ee[2] > HIGH_M else "mid"
    return SceneFacts(
        placement=placement,
        holder=on("holder"),
        plate=sorted(on("plate"), key=lambda n: poses[n][2]),
        table={n: relation(poses[n][:2], layout, spec, over_ok=False) for n in on("table")},
        gripper_open=bool(qpos[5] > GRIPPER_OPEN_RAD),
        gripper_place=relation(ee[:2], layout, spec, over_ok=True),
        gripper_height=height,
        gripper_in_front_view="gripper" in seen["front"],
        wrist_sees=[o for o in OBJECTS if o in seen["wrist"]],
        hidden_front=[n for n in INGREDIENTS if placement[n] != "absent" and n not in seen["front"]],
    )


# --- captions ---------------------------------------------------------------------------------------------
_A = {"cheese": ("a yellow cheese slice", "a slice of yellow cheese", "a yellow slice of cheese"),
      "bread": ("a tan bread slice", "a slice of tan bread", "a light brown bread slice")}
_THE = {"cheese": ("the yellow cheese slice", "the cheese slice", "the slice of cheese"),
        "bread": ("the tan bread slice", "the bread slice", "the slice of bread"),
        "plate": ("the white plate", "the round white plate", "the plate"),
        "holder": ("the holder", "the brown holder", "the slotted holder")}
_DIRECTION = {"left": ("to the left of", "left of"), "right": ("to the right of", "right of"),
              "front": ("in front of", "nearer the camera than"), "behind": ("behind", "farther back than")}
_HEIGHT = {"low": ("low, near the table", "down close to the table"), "mid": ("at mid height", "halfway up"),
           "high": ("raised high", "high above the table")}


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[rng.integers(len(options))]


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _where(rng: np.random.Generator, rel: str) -> str:
    if rel == "between":
        return _pick(rng, ("between the plate and the holder", "between the white plate and the holder"))
    side, landmark = rel.split(":")
    if side == "above":
        return f"{_pick(rng, ('above', 'over'))} {_pick(rng, _THE[landmark])}"
    return f"{_pick(rng, _DIRECTION[side])} {_pick(rng, _THE[landmark])}"


def write_caption(facts: SceneFacts, rng: np.random.Generator) -> tuple[str, dict[str, Any]]:
    """A caption true for ``facts``, and the facts it states (the truth test for retrieval compares those).

    Containers are always described exactly ("only", "empty"), so the text fixes every slice's placement without
    naming an absent one. Some clauses are optional; what a caption leaves out it does not state.
    """
    clauses: list[str] = []
    stated: dict[str, Any] = {"holder": facts.holder, "plate": facts.plate}

    h = facts.holder
    if not h:
        clauses.append(_pick(rng, ("the holder is empty", "nothing stands in the holder", "the holder holds no slice")))
    elif len(h) == 1:
        a = _pick(rng, _A[h[0]])
        clauses.append(_pick(rng, (f"only {a} stands in the holder", f"{_pick(rng, _THE['holder'])} holds just {a}",
                                   f"{a} stands alone in the holder")))
    else:
        pair = f"{_pick(rng, _A['cheese'])} and {_pick(rng, _A['bread'])}"
        clauses.append(_pick(rng, (f"{pair} stand in the holder", f"{_pick(rng, _THE['holder'])} holds {pair}")))

    p, plate = facts.plate, _pick(rng, _THE["plate"])
    if not p:
        clauses.append(_pick(rng, (f"{plate} is empty", f"nothing lies on {plate}", f"{plate} is bare")))
    elif len(p) == 1:
        a = _pick(rng, _A[p[0]])
        clauses.append(_pick(rng, (f"only {a} lies on {plate}", f"{plate} holds just {a}",
                                   f"{a} lies alone on {plate}")))
    else:
        bottom, top = _pick(rng, _A[p[0]]), _pick(rng, _A[p[1]])
        clauses.append(_pick(rng, (f"{top} lies on top of {bottom} on {plate}",
                                   f"{plate} holds {bottom} with {top} on top",
                                   f"on {plate}, {top} is stacked on {bottom}")))

    for name, rel in facts.table.items():
        clauses.append(_pick(rng, (f"{_pick(rng, _A[name])} lies flat on the table, {_where(rng, rel)}",
                                   f"{_where(rng, rel)}, {_pick(rng, _A[name])} lies on the table")))
    if facts.table or rng.random() < 0.3:
        stated["table"] = facts.table
        if not facts.table:
            clauses.append(_pick(rng, ("nothing else lies on the table", "the rest of the table is clear")))

    state = _pick(rng, ("open",) if facts.gripper_open else ("closed", "shut"))
    place = _where(rng, facts.gripper_place)
    subject = _pick(rng, ("the gripper", "the robot's gripper", "the arm's gripper"))
    stated.update(gripper_open=facts.gripper_open, gripper_place=facts.gripper_place)
    if rng.random() < 0.7:
        stated["gripper_height"] = facts.gripper_height
        height = _pick(rng, _HEIGHT[facts.gripper_height])
        clauses.append(_pick(rng, (f"{subject} is {state}, {height}, {place}", f"{subject} is {state} and {place}, "
                                   f"{height}", f"the {state} gripper hangs {place}, {height}")))
    else:
        clauses.append(_pick(rng, (f"{subject} is {state}, {place}", f"the {state} gripper is {place}")))
    if not facts.gripper_in_front_view:
        stated["gripper_in_front_view"] = False
        clauses.append(_pick(rng, ("the front camera cannot see the gripper", "the gripper is out of the front view")))

    if rng.random() < 0.7:
        stated["wrist_sees"] = facts.wrist_sees
        if facts.wrist_sees:
            seen = _and([_pick(rng, _THE[o]) for o in facts.wrist_sees])
            clauses.append(_pick(rng, (f"the wrist camera sees {seen}", f"the wrist view shows {seen}")))
        else:
            clauses.append(_pick(rng, ("the wrist camera sees none of the objects", "the wrist view shows no object")))
    if facts.hidden_front:
        stated["hidden_front"] = facts.hidden_front
        hidden = _and([_pick(rng, _THE[n]) for n in facts.hidden_front])
        clauses.append(_pick(rng, (f"the front camera cannot see {hidden}",
                                   f"{hidden} is hidden from the front camera")))

    # Clause order and joints vary so that the order carries no meaning.
    order = rng.permutation(len(clauses))
    text = _pick(rng, ("; ", ". ", ", and ")).join(clauses[i] for i in order)
    return text, stated


def table_pose(rng: np.random.Generator, name: str, layout: Layout, spec: SceneSpec,
               taken: list[np.ndarray]) -> np.ndarray | None:
    """A slice lying flat on free table in front of the robot, clear of plate, holder and other slices."""
    ing = spec.ingredients[name]
    clear = ing.width / 2 + 0.02
    holder_half = np.array(spec.holder.base_extents[:2]) / 2 + clear
    for _ in range(50):
        xy = np.array([rng.uniform(0.10, 0.34), rng.uniform(-0.24, 0.24)])
        if np.hypot(*(xy - layout.plate_xy)) < spec.plate.radius + clear or \
                np.all(np.abs(xy - layout.holder_xy) < holder_half) or \
                any(np.hypot(*(xy - t)) < 0.08 for t in taken):
            continue
        quat = quat_mul(yaw_quat(rng.uniform(-np.pi, np.pi)), LIE_FLAT)
        return np.array([*xy, ing.thickness / 2 + 1e-4, *quat])
    return None


def draw_scene(rng: np.random.Generator, index: int, cfg: CaptionConfig, spec: SceneSpec,
               scenarios: tuple[Scenario, ...]) -> tuple[Scenario, int, Layout]:
    scenario = scenarios[rng.integers(len(scenarios))]
    layout_seed = cfg.seed * 1_000_003 + index
    layout = sample_layout(spec, scenario, layout_seed)
    poses, taken = dict(layout.ingredient_poses), []
    for name in INGREDIENTS:
        if poses[name] is None and rng.random() < cfg.table_slice_prob:
            poses[name] = table_pose(rng, name, layout, spec, taken)
            if poses[name] is not None:
                taken.append(poses[name][:2])
    return scenario, layout_seed, Layout(scenario, layout.plate_xy, layout.holder_xy, poses)


def generate(cfg: CaptionConfig, log=print, progress: bool = True) -> dict[str, Any]:
    """Render and caption ``cfg.n`` scenes into ``cfg.out``; returns the run's meta (with the render speed)."""
    import torch
    from tqdm import tqdm

    from policies.vla.images import resize_images

    out = Path(cfg.out)
    if (out / "images.npz").exists() and not cfg.overwrite:
        raise CaptionError(f"{out} already holds a caption set; pass --overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    spec = DEFAULT_SCENE.with_resolution(cfg.render_size, cfg.render_size)
    rng = np.random.default_rng(cfg.seed)
    scenarios = scenario_set(include_extra=cfg.include_extra_scenario)

    began = time.perf_counter()
    pool = reach_pool(spec.robot)
    pool_s = time.perf_counter() - began
    renderer = SegmentingSim(spec, segment_size=cfg.image_size)
    images = {cam: np.empty((cfg.n, 3, cfg.image_size, cfg.image_size), np.uint8) for cam in CAMERAS}
    records: list[dict[str, Any]] = []
    render_began = time.perf_counter()
    try:
        for i in tqdm(range(cfg.n), desc="scenes", unit="scene", disable=not progress, dynamic_ncols=True):
            scenario, layout_seed, layout = draw_scene(rng, i, cfg, spec, scenarios)
            for _ in range(30):  # redraw the arm until it does not cut through the scene
                qpos = sample_arm(rng, pool, spec.robot, cfg.near_home_prob)
                renderer.sim.reset(layout, qpos=qpos)
                if not renderer.arm_collides():
                    break
            else:
                qpos = np.array(spec.robot.home_qpos)
                renderer.sim.reset(layout, qpos=qpos)
            sim = renderer.sim
            poses = {n: sim.ingredient_pose(n) for n in INGREDIENTS}
            ee = sim.ee_position()
            facts = read_facts(poses, sim.joint_positions(), ee, {c: renderer.seen(c) for c in CAMERAS}, layout, spec)
            text, stated = write_caption(facts, rng)
            for cam in CAMERAS:
                images[cam][i] = resize_images(torch.from_numpy(sim.render(cam).copy()), cfg.image_size).numpy()
            records.append({"index": i, "text": text, "facts": facts.to_dict(), "stated": stated,
                            "scenario": scenario.key, "layout_seed": layout_seed,
                            "qpos": np.round(sim.joint_positions(), 5).tolist(), "ee": np.round(ee, 5).tolist(),
                            "object_poses": {n: None if facts.placement[n] == "absent" else
                                             np.round(poses[n], 5).tolist() for n in INGREDIENTS}})
    finally:
        renderer.close()
    render_s = time.perf_counter() - render_began

    tmp = out / "images.tmp.npz"
    np.savez_compressed(tmp, **images)
    tmp.replace(out / "images.npz")  # a kill mid-write never leaves a torn file under the real name
    with open(out / "captions.jsonl", "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    meta = {"format": "chefmate-captions/1", "config": {k: str(v) if isinstance(v, Path) else v
                                                        for k, v in asdict(cfg).items()},
            "cameras": list(CAMERAS), "n": cfg.n, "image_size": cfg.image_size,
            "render_seconds": round(render_s, 3), "scenes_per_second": round(cfg.n / render_s, 2),
            "pose_pool_seconds": round(pool_s, 3), "total_seconds": round(time.perf_counter() - began, 3)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    log(f"wrote {cfg.n} scenes to {out}: {meta['scenes_per_second']} scenes/s rendered at {cfg.render_size}² "
        f"and resized to {cfg.image_size}² ({render_s:.1f} s, plus {pool_s:.1f} s for the arm pose pool)")
    return meta


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.captions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for images.npz, captions.jsonl, meta.json")
    p.add_argument("--n", type=int, help="number of scenes (default %(default)s)")
    p.add_argument("--image-size", type=int, help="square images saved, pixels: the preset's image_size")
    p.add_argument("--render-size", type=int, help="square render before resizing (default %(default)s, as the demos)")
    p.add_argument("--seed", type=int)
    p.add_argument("--table-slice-prob", type=float, help="chance an absent slice lies on the table")
    p.add_argument("--overwrite", action="store_true", help="replace an existing caption set in --out")
    defaults_from(p, CaptionConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        generate(from_args(CaptionConfig, a))
    except CaptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
