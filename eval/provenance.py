"""What made a run: OUT/run.json records the command line, library versions, git commit and each policy's spec.

Reports read it back to show the exact command and to label language-blind controls without rebuilding a policy.
"""

from __future__ import annotations

import json
import platform
import shlex
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from policies.base import Policy

MANIFEST_NAME = "run.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
# The libraries whose versions can change a result.
VERSIONED_PACKAGES = ("torch", "lerobot", "mujoco", "transformers", "numpy")


def package_versions() -> dict[str, str]:
    """Installed distribution versions, read from package metadata so nothing heavy is imported."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """HEAD of the checkout, with ``-dirty`` when tracked files differ; None outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def environment(argv: list[str]) -> dict[str, Any]:
    """The command line and the software it ran on, without any policy."""
    return {
        "command": shlex.join(argv),
        "argv": list(argv),
        "cwd": str(Path.cwd()),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def policy_spec(policy: Policy) -> dict[str, Any]:
    return {
        "language_blind": policy.abilities.language_blind,
        "privileged": policy.abilities.privileged,
        "cameras": list(policy.abilities.cameras),
    }


def write_manifest(out_dir: Path, argv: list[str], policies: dict[str, Policy]) -> Path:
    """Write OUT/run.json. ``argv`` is the full command line (e.g. ``sys.argv``); ``policies`` maps each
    policy spec, as it appears in the CSV's ``policy`` column, to the policy built from it."""
    manifest = {**environment(argv), "policies": {spec: policy_spec(p) for spec, p in policies.items()}}
    earlier = read_manifest(out_dir)
    if earlier is not None:  # a --resume: the rows so far came from the first command; keep it, log this one
        invocation = {k: manifest[k] for k in ("command", "git_commit", "timestamp")}
        manifest = {**earlier, "policies": {**earlier.get("policies", {}), **manifest["policies"]},
                    "resumes": [*earlier.get("resumes", []), invocation]}
    path = Path(out_dir) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """RUN_DIR/run.json, or None when the run predates manifests."""
    path = Path(run_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        manifest = exc
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is not a run manifest ({manifest}); delete it, or rerun eval/run_matrix.py "
                         f"to write a fresh one")
    return manifest
