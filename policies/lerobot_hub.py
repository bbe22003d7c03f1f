"""LeRobot's feature keys for this benchmark, and the Hugging Face Hub pieces some LeRobot policies fetch at load time
(a VLM, a tokenizer), looked up offline: a local folder, ``--models DIR`` (copies laid out by repo id) or the Hugging
Face cache. A missing one is one error naming it and the fix. Shared by loading (lerobot_policy) and building
(lerobot_init) LeRobot policies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
