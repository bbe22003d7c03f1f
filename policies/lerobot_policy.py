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
import sys
from pathlib import Path
from typing import Any

import numpy as np

from leisaac_tasks.spec import DEFAULT_SCENE
from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, lerobot_to_sim, sim_to_lerobot
from policies.base import Abilities, PolicyError
from policies.lerobot_hub import (IMAGE_PREFIX, STATE_KEY, ACTION_KEY, ROBOT_TYPE, LANGUAGE_BLIND_TYPES,
                                  SPEC_OPTIONS, LeRobotLoadError, config_hub_needs, processor_hub_needs, localise)

CHECKPOINT_FILES: tuple[str, ...] = ("config.json", "model.safetensors", "policy_preprocessor.json",
                                     "policy_postprocessor.json")
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
        # LeRobot samples noise from torch's global generator (no generator argument), so two of these stepping
        # in one process would change each other's episodes: the vectorized runner refuses them.
        self.abilities = Abilities(cameras=observation_cameras(cfg.input_features, spec),
                                   language_blind=cfg.type in LANGUAGE_BLIND_TYPES, global_torch_rng=True)
        self.image_shapes = {cam: tuple(cfg.input_features[IMAGE_PREFIX + cam].shape)
                             for cam in self.abilities.cameras}

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
        for cam in self.abilities.cameras:
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
