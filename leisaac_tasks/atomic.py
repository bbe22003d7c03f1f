"""Files that a kill -9 can never leave half-written: write beside the target, then rename over it."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old content or the new, never a torn file (a rename within one folder is atomic)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
