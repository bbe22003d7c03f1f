"""LeRobot policies (ACT, Diffusion, SmolVLA, pi0, GR00T, ...) behind the benchmark's Policy protocol.

``--policies lerobot:PATH`` loads a pretrained-policy folder as LeRobot 0.6 saves it (config.json,
model.safetensors, policy_preprocessor.json, policy_postprocessor.json and their state files) through LeRobot's own
factory, with its pre- and post-processors. Each step builds LeRobot's observation (``observation.images.<camera>``,
``observation.state`` in LeRobot units, ``task`` = the instruction), runs ``select_action`` (the policy's own action
queue) and converts the action back to sim radians.

SmolVLA, pi0 and GR00T also need pieces that LeRobot fetches from the Hugging Face Hub at load time (a VLM, a
tokenizer). Those are looked up, in order, as a local folder, under ``?models=DIR`` (copies laid out by repo id, as
``hf download REPO --local-dir DIR/REPO`` writes them) and in the Hugging Face cache; a missing one is one error that
names it and the fix, before anything heavy is built.

    python -m policies.lerobot_policy init act OUT_DIR [--image-size 96] [--dataset DIR]   # policies/lerobot_init.py
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leisaac_tasks.spec import DEFAULT_SCENE
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, lerobot_to_sim, sim_to_lerobot
from policies.base import PolicyError

CHECKPOINT_FILES: tuple[str, ...] = ("config.json", "model.safetensors", "policy_preprocessor.json",
                                     "policy_postprocessor.json")
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
ROBOT_TYPE = "so101_follower"
# These read images and state only; the report shows them as language-blind controls.
LANGUAGE_BLIND_TYPES = frozenset({"act", "diffusion", "vqbet", "tdmpc"})
# Config fields that LeRobot passes to ``from_pretrained`` as a Hub repo id (or a local folder).
HUB_CONFIG_FIELDS: dict[str, str] = {"vlm_model_name": "VLM backbone and processor",
                                     "base_model_path": "GR00T base model"}
# GR00T's Eagle tokenizer assets: LeRobot's processor reads them from HF_LEROBOT_HOME/<repo> (never a custom path);
# these are the files lerobot.policies.groot.utils.ensure_eagle_cache_ready would fetch.
EAGLE_ASSETS = ("vocab.json", "merges.txt", "added_tokens.json", "chat_template.json", "special_tokens_map.json",
                "config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
                "tokenizer_config.json")
SPEC_OPTIONS = ("models", "device")


class LeRobotLoadError(ValueError):
    """A LeRobot checkpoint can't be loaded or built here; the message names what is missing and the fix."""


@dataclass(frozen=True)
class HubNeed:
    """One piece a policy loads by Hub repo id: where the id is configured, and what it is for."""

    repo_id: str
    what: str
    config_field: str | None = None  # redirected by setting this config attribute to a local folder
    step: str | None = None  # or by overriding this preprocessor step's ``param``
    param: str | None = None
    lerobot_home: bool = False  # GR00T's Eagle assets: only HF_LEROBOT_HOME/<repo> works
    cache_only: bool = False  # loaded by Hub id with no way to redirect it: only the Hugging Face cache works


def resolve_hub_copy(repo_id: str, models: Path | None, cache_only: bool = False) -> Path | None:
    """A local copy of ``repo_id``: the id itself as a folder, MODELS/<repo_id>, or a Hugging Face cache snapshot."""
    as_path = Path(repo_id).expanduser()
    if as_path.is_dir() and not cache_only:
        return as_path.resolve()
    if models is not None and (models / repo_id).is_dir() and not cache_only:
        return (models / repo_id).resolve()
    from huggingface_hub import snapshot_download

    try:  # local_files_only never touches the network
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id
        return None


def eagle_assets_dir(repo_id: str) -> Path:
    from lerobot.utils.constants import HF_LEROBOT_HOME

    return HF_LEROBOT_HOME / repo_id


def missing_hub_error(who: str, missing: list[HubNeed], models: Path | None, models_flag: str) -> LeRobotLoadError:
    from huggingface_hub.constants import HF_HUB_CACHE

    by_repo: dict[str, list[HubNeed]] = {}
    for need in missing:
        by_repo.setdefault(need.repo_id, []).append(need)
    parts, fixes = [], []
    for repo_id, group in by_repo.items():
        what = ", ".join(dict.fromkeys(n.what for n in group))
        if any(n.lerobot_home for n in group):
            where = eagle_assets_dir(repo_id)
            parts.append(f"{repo_id} ({what}; LeRobot reads it only from {where})")
            fixes.append(f"`hf download {repo_id} --local-dir {where}`")
        elif any(n.cache_only for n in group):
            parts.append(f"{repo_id} ({what})")
            fixes.append(f"`hf download {repo_id}` (LeRobot loads it by Hub id, so it must be in the Hugging Face "
                         f"cache: copy that cache to {HF_HUB_CACHE} or point HF_HUB_CACHE at it)")
        else:
            parts.append(f"{repo_id} ({what})")
            fixes.append(f"`hf download {repo_id} --local-dir MODELS/{repo_id}`")
    searched = f"not under {models}, " if models else ""
    then = f"; copy MODELS here and pass {models_flag}" if any(
        not (n.lerobot_home or n.cache_only) for n in missing) else ""
    return LeRobotLoadError(
        f"{who} needs {'; '.join(parts)} from the Hugging Face Hub, and this machine has no copy ({searched}not a "
        f"local folder, not in the Hugging Face cache {HF_HUB_CACHE}) and can't download it. On a machine with "
        f"internet run {' and '.join(fixes)}{then}")


def config_hub_needs(cfg: Any) -> list[HubNeed]:
    needs = [HubNeed(str(getattr(cfg, f)), what, config_field=f)
             for f, what in HUB_CONFIG_FIELDS.items() if getattr(cfg, f, None)]
    if getattr(cfg, "tokenizer_assets_repo", None):
        needs.append(HubNeed(cfg.tokenizer_assets_repo, "GR00T's Eagle tokenizer assets", lerobot_home=True))
    return needs


def processor_hub_needs(checkpoint: Path) -> list[HubNeed]:
    """Tokenizers named inside the saved preprocessor (SmolVLA, pi0): ``tokenizer_name`` of any step."""
    steps = json.loads((checkpoint / "policy_preprocessor.json").read_text()).get("steps", [])
    return [HubNeed(step["config"]["tokenizer_name"], "tokenizer", step=step.get("registry_name"),
                    param="tokenizer_name")
            for step in steps if (step.get("config") or {}).get("tokenizer_name")]


def localise(needs: list[HubNeed], models: Path | None, who: str, models_flag: str
             ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Point every need at a local copy: returns (config field -> path, preprocessor overrides), or raises one
    error listing all that are missing."""
    fields: dict[str, str] = {}
    overrides: dict[str, dict[str, str]] = {}
    missing: list[HubNeed] = []
    for need in needs:
        if need.lerobot_home:
            if not all((eagle_assets_dir(need.repo_id) / f).exists() for f in EAGLE_ASSETS):
                missing.append(need)
            continue
        local = resolve_hub_copy(need.repo_id, models, need.cache_only)
        if local is None:
            missing.append(need)
        elif need.cache_only:
            continue  # LeRobot finds it in the cache by its id
        elif need.config_field:
            fields[need.config_field] = str(local)
        elif need.step and need.param:
            overrides.setdefault(need.step, {})[need.param] = str(local)
    if missing:
        raise missing_hub_error(who, missing, models, models_flag)
    return fields, overrides


def check_checkpoint_dir(path: Path) -> None:
    if not path.is_dir():
        raise LeRobotLoadError(f"lerobot:{path}: no such folder; pass a LeRobot pretrained-policy folder (the "
                               f"pretrained_model/ of a lerobot-train checkpoint, or `python -m "
                               f"policies.lerobot_policy init act DIR`)")
    missing = [f for f in CHECKPOINT_FILES if not (path / f).exists()]
    if missing:
        raise LeRobotLoadError(f"lerobot:{path} is not a LeRobot pretrained policy: {', '.join(missing)} "
                               f"missing. Point at the folder holding {', '.join(CHECKPOINT_FILES)} (a "
                               f"lerobot-train checkpoint's pretrained_model/; older checkpoints need LeRobot's "
                               f"processor migration script)")


def parse_spec(arg: str) -> tuple[Path, dict[str, str]]:
    """``PATH`` or ``PATH?models=DIR&device=cpu``."""
    path, _, query = arg.partition("?")
    if not path:
        raise LeRobotLoadError("the lerobot policy needs a folder: --policies lerobot:PATH (a LeRobot "
                               "pretrained-policy folder), optionally lerobot:PATH?models=DIR&device=cpu")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or key not in SPEC_OPTIONS:
            raise LeRobotLoadError(f"lerobot:{arg}: unknown option {item!r}; options are "
                                   f"{', '.join(k + '=...' for k in SPEC_OPTIONS)} after a '?', joined by '&'")
        options[key] = value
    return Path(path).expanduser(), options


def observation_cameras(input_features: dict[str, Any], spec: str) -> tuple[str, ...]:
    """``observation.images.front`` -> ``front``; every camera must be one the scene renders."""
    scene_cameras = [c.name for c in DEFAULT_SCENE.cameras]
    cameras = tuple(k.removeprefix(IMAGE_PREFIX) for k in input_features if k.startswith(IMAGE_PREFIX))
    unknown = [c for c in cameras if c not in scene_cameras]
    if unknown:
        raise LeRobotLoadError(f"{spec} reads cameras {', '.join(unknown)}, which the scene doesn't have; "
                               f"the benchmark renders {', '.join(scene_cameras)} (observation.images.<name>). "
                               f"Train on datasets with those names, or rename the features in config.json and "
                               f"policy_preprocessor.json")
    return cameras


class LeRobotPolicy:
    """A LeRobot pretrained policy. The action queue and any sampling noise are LeRobot's own; ``reset`` clears the
    queue and seeds torch from the episode seed, so an episode replays exactly."""

    privileged = False
    # LeRobot samples noise from torch's global generator (no generator argument), so two of these stepping
    # in one process would change each other's episodes: the vectorized runner refuses them.
    uses_global_torch_rng = True

    @classmethod
    def from_spec(cls, arg: str, **kwargs: Any) -> "LeRobotPolicy":
        path, options = parse_spec(arg)
        models = Path(options["models"]).expanduser() if "models" in options else None
        return cls(path, models=models, device=options.get("device", "auto"), **kwargs)

    def __init__(self, checkpoint: str | Path, models: Path | None = None, device: str = "auto"):
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        from policies.vla.runtime import resolve_device

        self.checkpoint = Path(checkpoint)
        spec = f"lerobot:{self.checkpoint}"
        check_checkpoint_dir(self.checkpoint)
        self.device = resolve_device(device)
        try:
            cfg = PreTrainedConfig.from_pretrained(str(self.checkpoint))
        except Exception as exc:  # draccus: unknown type, bad field
            raise LeRobotLoadError(f"{spec}/config.json can't be read by LeRobot "
                                   f"{_lerobot_version()} ({type(exc).__name__}: {exc}); was it saved by another LeRobot "
                                   f"version? Re-save it with this one") from exc
        self.type = cfg.type
        for feature, shape in ((STATE_KEY, (6,)), (ACTION_KEY, (6,))):
            found = (cfg.input_features if feature == STATE_KEY else cfg.output_features).get(feature)
            if found is None or tuple(found.shape) != shape:
                raise LeRobotLoadError(f"{spec}: {feature} is {'missing' if found is None else tuple(found.shape)}, "
                                       f"the SO-101 needs a 6-vector (5 joints in degrees + gripper 0-100); train "
                                       f"on an SO-101 dataset")
        self.cameras = observation_cameras(cfg.input_features, spec)
        self.image_shapes = {cam: tuple(cfg.input_features[IMAGE_PREFIX + cam].shape) for cam in self.cameras}
        self.language_blind = cfg.type in LANGUAGE_BLIND_TYPES

        models_flag = f"'lerobot:{self.checkpoint}?models=MODELS'"
        fields, overrides = localise(config_hub_needs(cfg) + processor_hub_needs(self.checkpoint), models,
                                     f"{spec} ({cfg.type})", models_flag)
        for field, local in fields.items():
            setattr(cfg, field, local)
        cfg.device = str(self.device)
        cfg.pretrained_path = self.checkpoint
        overrides["device_processor"] = {"device": str(self.device)}
        self.model = get_policy_class(cfg.type).from_pretrained(str(self.checkpoint), config=cfg)
        self.model.eval()
        # GR00T's factory branch replaces these overrides with its own (LeRobot 0.6), so GR00T keeps its saved device.
        self.preprocessor, self.postprocessor = make_pre_post_processors(
            cfg, pretrained_path=str(self.checkpoint), preprocessor_overrides=overrides)
        self.name = f"lerobot:{self.checkpoint.name}"
        self.instruction = ""
        self._torch = torch

    @property
    def done(self) -> bool:
        return False  # a learned policy never declares itself finished; the episode runs to max_steps

    def reset(self, instruction: str, seed: int) -> None:
        self.instruction = instruction
        self.model.reset()  # empties the action queue (and Diffusion's observation history)
        self.preprocessor.reset()
        self.postprocessor.reset()
        self._torch.manual_seed(seed)  # Diffusion/flow noise comes from torch's global generator

    def observation_batch(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        """LeRobot's inference frame: images resized to the config's (C, H, W), state in LeRobot units, the task."""
        import cv2
        from lerobot.policies.utils import prepare_observation_for_inference

        frame: dict[str, np.ndarray] = {}
        for cam in self.cameras:
            _, height, width = self.image_shapes[cam]
            image = observation[cam]
            if image.shape[:2] != (height, width):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            frame[IMAGE_PREFIX + cam] = np.ascontiguousarray(image)
        frame[STATE_KEY] = sim_to_lerobot(observation["state"]).astype(np.float32)
        return prepare_observation_for_inference(frame, self.device, task=self.instruction, robot_type=ROBOT_TYPE)

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        with self._torch.inference_mode():
            batch = self.preprocessor(self.observation_batch(observation))
            action = self.postprocessor(self.model.select_action(batch))
        values = action.detach().float().cpu().numpy().reshape(-1)
        if values.shape != (6,) or not np.all(np.isfinite(values)):
            raise PolicyError(f"{self.name} returned the action {values.tolist()}, not 6 finite joint targets; check "
                              f"that the checkpoint was trained on SO-101 data (6 action values)")
        # LeRobot units -> radians; the servos' calibrated range bounds a real arm the same way
        return np.clip(lerobot_to_sim(values), JOINT_LOW, JOINT_HIGH).astype(np.float32)


def _lerobot_version() -> str:
    from importlib.metadata import version

    return version("lerobot")


HELP_EXAMPLES = """commands:
  init TYPE OUT_DIR [--image-size N] [--dataset DIR] [--set FIELD=VALUE ...] [--models DIR]
          build a LeRobot policy with random weights, shaped for this benchmark; `init --help` explains each option.
          Evaluate it with `python eval/run_matrix.py --policies lerobot:OUT_DIR`.

examples:
  python -m policies.lerobot_policy init act runs/act_random --image-size 96
  python -m policies.lerobot_policy init diffusion runs/dp --dataset datasets/seed/cheese --set n_action_steps=8
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "init":
        from policies.lerobot_init import main as init_main

        return init_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m policies.lerobot_policy", description=__doc__,
                                     epilog=HELP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s init {act,diffusion,smolvla,pi0,groot} OUT_DIR [options]")
    parser.add_argument("command", choices=["init"], help="what to do (see below)")
    parser.parse_args(argv[:1])  # --help prints the commands and examples; no or another command is an error
    return 2


if __name__ == "__main__":
    sys.exit(main())
