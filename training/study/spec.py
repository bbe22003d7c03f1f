"""The study spec: a YAML file read into dataclasses that hold every default. A bad spec is one clear error,
raised before anything runs.

    name: seed_diagnosis
    preset: small
    data:
      seed: {recipe: seed, episodes: 150}
    tunings:
      seed_lora: {lora_rank: 32}
      gr00t_default: {}
    seeds: [0, 1, 2]

Every section and field is listed in the dataclasses below; see studies/seed_diagnosis.yaml and studies/smoke.yaml.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from policies.vla.tuning import TuneConfig, TuningError


class SpecError(ValueError):
    pass


BASE_DATA = "base"  # the base model's demos live beside the data conditions, under this name


@dataclass(frozen=True)
class DataSpec:
    """A training-data condition: a demo recipe (``chefmate-generate --recipe``), its datasets mixed."""

    name: str
    recipe: str
    episodes: int = 100  # kept demos per dataset of the recipe
    max_steps: int = 0  # this condition's fine-tuning steps; 0: finetune.max_steps


@dataclass(frozen=True)
class TuningSpec:
    name: str
    tune: TuneConfig = field(default_factory=TuneConfig)


@dataclass(frozen=True)
class BackboneSpec:
    """Generic vision pretraining shared by every fine-tune (captioned scenes, CLIP-style)."""

    captions: int = 3000
    steps: int = 2000
    batch_size: int = 64


@dataclass(frozen=True)
class BaseSpec:
    """The base model every fine-tune starts from, as GR00T fine-tunes start from N1.5's pretrained action head:
    the pretrained backbone plus an action head trained with GR00T's default tuning on ``recipe`` demos. The
    ``generic`` recipe has one instruction that names no slice, so the base can move and grasp but has learnt no
    word of the task. ``episodes: 0`` = no base: fine-tunes start the action head from random weights, and an
    adapters-only tuning (the seed's LoRA) then has no pretrained head to adapt."""

    recipe: str = "generic"
    episodes: int = 0  # kept demos per dataset of the recipe
    steps: int = 2000
    batch_size: int = 32


@dataclass(frozen=True)
class FinetuneSpec:
    max_steps: int = 6000
    batch_size: int = 32
    learning_rate: float = 1e-4
    save_steps: int = 1000
    compile: bool = False  # chefmate-finetune --compile: CUDA graphs, several times the steps/s on a GPU


@dataclass(frozen=True)
class EvalSpec:
    families: tuple[str, ...] = ("paraphrase", "object_swap", "negation", "empty", "nonsense", "absent_object")
    scenarios: tuple[str, ...] = ()  # () = the eight seed cells
    layout_seeds: int = 5  # per (cell, instruction)
    # Evaluation layouts are held out: demos use layout seeds 0, 1, 2, ...; the grid starts here.
    seed_offset: int = 100_000
    max_steps: int = 360
    backend: str = "mujoco"
    num_envs: int = 0  # > 0: a vectorized backend (isaaclab on a GPU)


@dataclass(frozen=True)
class ResourceSpec:
    """What each Ray task declares. Fractions of a GPU let several fine-tunes share one card."""

    finetune_gpus: float = 0.25
    eval_gpus: float = 0.25
    cpus_per_task: float = 1.0
    # Processes each demos unit steps its MuJoCo envs in (4 envs each; the datasets come out the same for any
    # number). The unit declares that many CPUs, so the recipes' demos share a many-core box with the backbone.
    demo_workers: int = 1


@dataclass(frozen=True)
class StudySpec:
    name: str
    data: tuple[DataSpec, ...]
    tunings: tuple[TuningSpec, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    preset: str = "small"
    image_size: int = 96
    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    base: BaseSpec = field(default_factory=BaseSpec)
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    evaluation: EvalSpec = field(default_factory=EvalSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    competence_gate: float = 0.9  # success_act a tuning must reach on its own data's (cell, instruction) pairs
    diagnose_seeds: int = 1  # rendered frames per matrix cell for diagnose's probes
    baseline_tuning: str = "gr00t_default"  # effects of tuning are read against this one

    def training(self, data: str, tuning: str, seed: int) -> dict[str, Any]:
        """What defines one fine-tune's training, as its checkpoint records it (config.json: ``run`` and ``tune``):
        a finished run whose record differs was trained for another version of the spec."""
        d = next(x for x in self.data if x.name == data)
        f = self.finetune
        return {"max_steps": d.max_steps or f.max_steps, "batch_size": f.batch_size, "learning_rate": f.learning_rate,
                "seed": seed, "tune": next(t.tune for t in self.tunings if t.name == tuning).to_dict()}

    def run_ids(self) -> list[tuple[str, str, int]]:
        # Seed-major: every condition's first seed is queued before any replicate, so a sitting cut short still
        # holds one complete data x tuning table.
        return [(d.name, t.name, s) for s in self.seeds for d in self.data for t in self.tunings]


def _build(cls: type, raw: Any, where: str) -> Any:
    """A dataclass from a mapping, refusing unknown keys and values of the wrong type, naming where."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping of fields, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    values = {}
    for key, value in raw.items():
        default = getattr(cls, key, None) if not isinstance(getattr(cls, key, None), property) else None
        if isinstance(default, tuple):
            if not isinstance(value, list):
                raise SpecError(f"{where}.{key} must be a list, got {value!r}")
            value = tuple(value)
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise SpecError(f"{where}.{key} must be true or false, got {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise SpecError(f"{where}.{key} must be a number, got {value!r}")
            value = type(default)(value) if isinstance(default, float) else value
        values[key] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from None


def parse_spec(raw: Any, source: str = "spec") -> StudySpec:
    from training.demos.recipes import RECIPES
    from policies.vla.config import PRESETS

    if not isinstance(raw, dict):
        raise SpecError(f"{source} must be a YAML mapping with name, data and tunings")
    sections = {"backbone": BackboneSpec, "base": BaseSpec, "finetune": FinetuneSpec, "evaluation": EvalSpec,
                "resources": ResourceSpec}
    allowed = {f.name for f in dataclasses.fields(StudySpec)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SpecError(f"{source}: unknown section(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    for key in ("name", "data", "tunings"):
        if key not in raw:
            raise SpecError(f"{source}: missing {key!r}")
    if not isinstance(raw["data"], dict) or not raw["data"]:
        raise SpecError(f"{source}: data must map condition names to {{recipe, episodes}}")
    if not isinstance(raw["tunings"], dict) or not raw["tunings"]:
        raise SpecError(f"{source}: tunings must map names to tune flags, e.g. seed_lora: {{lora_rank: 32}}")
    data = []
    for name, body in raw["data"].items():
        d = _build(DataSpec, {"name": name, **(body or {})}, f"data.{name}")
        if d.recipe not in RECIPES:
            raise SpecError(f"data.{name}.recipe {d.recipe!r} is not a recipe; choose one of {', '.join(RECIPES)}")
        if d.episodes < 1:
            raise SpecError(f"data.{name}.episodes must be at least 1")
        if d.max_steps < 0:
            raise SpecError(f"data.{name}.max_steps must be 0 (finetune.max_steps) or more")
        if name == BASE_DATA:
            raise SpecError(f"data.{name}: {BASE_DATA!r} names the base model's demos; call this condition "
                            f"something else")
        data.append(d)
    tunings = []
    for name, body in raw["tunings"].items():
        try:
            tune = _build(TuneConfig, body, f"tunings.{name}")
        except TuningError as exc:
            raise SpecError(f"tunings.{name}: {exc}") from None
        tunings.append(TuningSpec(name, tune))
    rest = {}
    for key, cls in sections.items():
        if key in raw:
            rest[key] = _build(cls, raw[key], key)
    for key in ("seeds",):
        if key in raw:
            if not isinstance(raw[key], list) or not raw[key] or not all(isinstance(s, int) for s in raw[key]):
                raise SpecError(f"{source}: seeds must be a non-empty list of integers, e.g. [0, 1, 2]")
            rest[key] = tuple(raw[key])
    for key in ("name", "preset", "image_size", "competence_gate", "diagnose_seeds", "baseline_tuning"):
        if key in raw:
            rest[key] = raw[key]
    spec = StudySpec(data=tuple(data), tunings=tuple(tunings), **rest)
    if spec.base.recipe not in RECIPES:
        raise SpecError(f"base.recipe {spec.base.recipe!r} is not a recipe; choose one of {', '.join(RECIPES)}")
    if spec.base.episodes < 0:
        raise SpecError(f"{source}: base.episodes must be 0 (no base) or more")
    if spec.preset not in PRESETS:
        raise SpecError(f"{source}: preset {spec.preset!r} is not one of {', '.join(PRESETS)}")
    if spec.baseline_tuning not in {t.name for t in spec.tunings}:
        spec = dataclasses.replace(spec, baseline_tuning=spec.tunings[0].name)
    if spec.resources.demo_workers < 1:
        raise SpecError(f"{source}: resources.demo_workers must be at least 1 (processes per demos unit)")
    if not 0 < spec.competence_gate <= 1:
        raise SpecError(f"{source}: competence_gate must be in (0, 1]")
    return spec


def _merged(base: dict, override: dict) -> dict:
    """``override`` over ``base``, section by section (a section's fields merge; everything else is replaced)."""
    out = dict(base)
    for key, value in override.items():
        both_sections = isinstance(value, dict) and isinstance(base.get(key), dict) and key not in ("data", "tunings")
        out[key] = {**base[key], **value} if both_sections else value
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> Any:
    """A spec file's mapping; ``extends: other.yaml`` (beside it) starts from that spec and changes only what this
    one names: a variant states its differences, not a copy of the whole spec."""
    if not path.exists():
        raise SpecError(f"no study spec at {path}; see studies/smoke.yaml for the format")
    if path.resolve() in seen:
        raise SpecError(f"{path}: extends itself through {' -> '.join(p.name for p in seen)}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not valid YAML ({exc})") from None
    if isinstance(raw, dict) and "extends" in raw:
        raw = dict(raw)
        parent = path.parent / str(raw.pop("extends"))
        raw = _merged(_read_yaml(parent, (*seen, path.resolve())), raw)
    return raw


def load_spec(path: Path) -> StudySpec:
    path = Path(path)
    return parse_spec(_read_yaml(path), str(path))


def spec_to_dict(spec: StudySpec) -> dict[str, Any]:
    out = dataclasses.asdict(spec)
    out["tunings"] = {t.name: t.tune.to_dict() for t in spec.tunings}
    out["data"] = {d.name: {"recipe": d.recipe, "episodes": d.episodes, "max_steps": d.max_steps or
                            spec.finetune.max_steps} for d in spec.data}
    return out
