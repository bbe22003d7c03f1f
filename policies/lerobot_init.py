"""Build a LeRobot policy from its config, with random weights, shaped for this benchmark's env; save it where
``--policies lerobot:OUT_DIR`` loads it.

    python -m policies.lerobot_policy init act runs/act_random --image-size 96
    python -m policies.lerobot_policy init diffusion runs/dp_random --dataset datasets/seed/cheese
    python -m policies.lerobot_policy init act runs/act_tiny --set dim_model=64 --set chunk_size=10

Features: ``observation.images.front``/``.wrist`` (3, S, S), ``observation.state`` and ``action`` (6, LeRobot units).
Normalisation statistics:
- state and action: from ``--dataset DIR`` (a v3 demo dataset from ``chefmate-generate``; LeRobot's
  own meta/stats.json), or else neutral ones from the joint limits in ``leisaac_tasks.units``: min/max = the limits,
  mean = their midpoint, std = range / sqrt(12), the spread of a uniform draw over the range;
- images: ImageNet's mean and std, as ``lerobot-train`` uses by default (``dataset.use_imagenet_stats``).
Vision backbones start random (``pretrained_backbone_weights=None``): nothing is downloaded. SmolVLA, pi0 and GR00T
need their pretrained VLM/tokenizer from the Hugging Face Hub: give local copies with ``--models DIR`` (laid out as
DIR/<repo id>) or in the Hugging Face cache (pi0's tokenizer only there: LeRobot loads it by its Hub id).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from leisaac_tasks.dataset import CAMERAS, DatasetError, check_dataset
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, sim_to_lerobot
from policies.lerobot_hub import (ACTION_KEY, IMAGE_PREFIX, STATE_KEY, HubNeed, LeRobotLoadError, config_hub_needs,
                                  localise)

INIT_TYPES: tuple[str, ...] = ("act", "diffusion", "smolvla", "pi0", "groot")
# pi0's processor factory loads this tokenizer by Hub id (LeRobot hard-codes it), so only the HF cache serves it.
PI0_TOKENIZER = "google/paligemma-3b-pt-224"
RANDOM_BACKBONE = {"act": {"pretrained_backbone_weights": None}, "diffusion": {"pretrained_backbone_weights": None}}
INIT_RECORD = "chefmate_init.json"


def env_features(image_size: int) -> dict[str, Any]:
    from lerobot.configs.types import FeatureType, PolicyFeature

    feats = {IMAGE_PREFIX + cam: PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size)) for cam in CAMERAS}
    feats[STATE_KEY] = PolicyFeature(FeatureType.STATE, (6,))
    feats[ACTION_KEY] = PolicyFeature(FeatureType.ACTION, (6,))
    return feats


def neutral_joint_stats() -> dict[str, np.ndarray]:
    low, high = sim_to_lerobot(JOINT_LOW), sim_to_lerobot(JOINT_HIGH)
    return {"min": low, "max": high, "mean": (low + high) / 2, "std": (high - low) / math.sqrt(12)}


def image_stats() -> dict[str, np.ndarray]:
    from lerobot.datasets.factory import IMAGENET_STATS

    stats = {k: np.array(v) for k, v in IMAGENET_STATS.items()}
    return {**stats, "min": np.zeros((3, 1, 1)), "max": np.ones((3, 1, 1))}


def dataset_joint_stats(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """State and action statistics of a demo dataset, as LeRobot computed them when it wrote meta/stats.json."""
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    from leisaac_tasks.v3_files import check_demo_features

    info = check_dataset(root)
    check_demo_features(root, info, "lerobot init")
    stats = LeRobotDatasetMetadata(repo_id=f"chefmate/{root.name}", root=root).stats or {}
    missing = [k for k in (STATE_KEY, ACTION_KEY) if k not in stats]
    if missing:
        raise DatasetError(f"{root}/meta/stats.json has no statistics for {', '.join(missing)}; regenerate the "
                           f"dataset with `chefmate-generate`")
    return {k: {s: np.asarray(v) for s, v in stats[k].items()} for k in (STATE_KEY, ACTION_KEY)}


def normalisation_stats(dataset: Path | None) -> dict[str, dict[str, np.ndarray]]:
    joints = dataset_joint_stats(dataset) if dataset else {STATE_KEY: neutral_joint_stats(),
                                                             ACTION_KEY: neutral_joint_stats()}
    return {**joints, **{IMAGE_PREFIX + cam: image_stats() for cam in CAMERAS}}


def init_hub_needs(cfg: Any) -> list[HubNeed]:
    needs = config_hub_needs(cfg)
    if cfg.type == "pi0":
        needs.append(HubNeed(PI0_TOKENIZER, "PaliGemma tokenizer, loaded by Hub id", cache_only=True))
    return needs


def init_policy(policy_type: str, out: Path, image_size: int = 96, dataset: Path | None = None,
                overrides: dict[str, Any] | None = None, models: Path | None = None) -> Path:
    """Write a random-weight ``policy_type`` with the env's features to ``out``; returns ``out``."""
    from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors

    if policy_type not in INIT_TYPES:
        raise LeRobotLoadError(f"unknown policy type {policy_type!r}; init builds {', '.join(INIT_TYPES)}")
    if out.exists() and any(out.iterdir()):
        raise LeRobotLoadError(f"{out} exists and is not empty; choose a new OUT_DIR (nothing was written)")
    stats = normalisation_stats(dataset)  # reject a bad dataset before building anything
    feats = env_features(image_size)
    kwargs = {**RANDOM_BACKBONE.get(policy_type, {}), "device": "cpu", **(overrides or {})}
    try:
        cfg = make_policy_config(policy_type, **kwargs)
    except TypeError as exc:  # an unknown --set field
        raise LeRobotLoadError(f"--set: {exc}; see the fields of LeRobot's {policy_type} config") from exc
    cfg.input_features = {k: f for k, f in feats.items() if k != ACTION_KEY}
    cfg.output_features = {ACTION_KEY: feats[ACTION_KEY]}
    fields, _ = localise(init_hub_needs(cfg), models, f"lerobot init {policy_type}", "--models MODELS")
    for field, local in fields.items():
        setattr(cfg, field, local)
    try:
        policy = get_policy_class(policy_type)(cfg)  # what make_policy does once the features are known
    except ValueError as exc:  # LeRobot's own config validation, e.g. a crop larger than the image
        raise LeRobotLoadError(f"LeRobot rejects this {policy_type} config: {exc}") from exc
    preprocessor, postprocessor = make_pre_post_processors(cfg, dataset_stats=stats)
    out.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(out)
    preprocessor.save_pretrained(out)
    postprocessor.save_pretrained(out)
    record = {"type": policy_type, "image_size": image_size, "weights": "random",
              "stats": str(dataset) if dataset else "neutral: joint limits (leisaac_tasks.units) + ImageNet images",
              "overrides": overrides or {}}
    (out / INIT_RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return out


def _parse_set(items: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise LeRobotLoadError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set dim_model=64")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare string such as a backbone name
        overrides[key] = tuple(value) if isinstance(value, list) else value
    return overrides


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m policies.lerobot_policy init", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("type", choices=INIT_TYPES)
    p.add_argument("out", type=Path)
    p.add_argument("--image-size", type=int, default=96, help="square camera input the policy expects")
    p.add_argument("--dataset", type=Path, help="a demo dataset whose state/action statistics to normalise with")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a LeRobot config field (JSON value), repeatable: --set dim_model=64 --set chunk_size=10")
    p.add_argument("--models", type=Path, help="local copies of Hub models, as MODELS/<repo id> (SmolVLA, GR00T)")
    a = p.parse_args(argv)
    try:
        out = init_policy(a.type, a.out, a.image_size, a.dataset, _parse_set(a.set), a.models)
    except (LeRobotLoadError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote a random-weight LeRobot {a.type} to {out}; evaluate it with --policies lerobot:{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
