"""What the command-line tools print: progress, warnings that matter, results and a final ``wrote …`` line.

The libraries under them are chatty. Inside ``quiet_libraries()`` each known source is silenced where it starts, and
inside ``library_log(path)`` the Python logging of the libraries goes to a file in the run's output folder
(``<out>/logs/libraries.log``), with warnings and errors still on the console. Neither changes what a library is
asked to do (LeRobot's dataset calls stay exactly as they are); they only decide where its messages go.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

LIBRARIES_LOG = Path("logs") / "libraries.log"
HF_BARS = "HF_DATASETS_DISABLE_PROGRESS_BARS"

# Warnings raised inside libraries we call, that we can't act on; matched by the start of the message.
KNOWN_LIBRARY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # torchvision >= 0.22 on every video decode LeRobot does with video_backend="pyav" (torchvision.io.VideoReader).
    ("The video decoding and encoding capabilities of torchvision are deprecated", UserWarning),
    # LeRobot's SuppressProgressBars switches the bars back on after each use; the variable below wins, and datasets
    # says so every time.
    ("Cannot enable progress bars: environment variable `HF_DATASETS_DISABLE_PROGRESS_BARS", UserWarning),
)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """While inside, the chatter of the video and dataset libraries is silenced at its sources. On exit the datasets
    setting and the warning filters are put back; FFmpeg's threshold stays at WARNING (it only hides INFO lines)."""
    # Hugging Face datasets draws a "Map: 100%|…" bar each time LeRobot builds an episode's table. The variable
    # outranks datasets.enable_progress_bars(), which LeRobot calls after each table; worker processes inherit it.
    # A user who set it keeps their choice.
    ours = HF_BARS not in os.environ
    if ours:
        os.environ[HF_BARS] = "1"
        _rank_bars_setting(True)
    _quiet_ffmpeg()
    try:
        with warnings.catch_warnings():
            for message, category in KNOWN_LIBRARY_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
            yield
    finally:
        if ours:
            del os.environ[HF_BARS]
            _rank_bars_setting(None)


def _rank_bars_setting(value: bool | None) -> None:
    """datasets reads the variable once, when imported, into datasets.utils.tqdm: set an imported module alike."""
    hf_tqdm = sys.modules.get("datasets.utils.tqdm")
    if hf_tqdm is None or not hasattr(hf_tqdm, HF_BARS):
        return
    setattr(hf_tqdm, HF_BARS, value)  # the module keeps the variable under its own name
    if value:
        hf_tqdm.disable_progress_bars()
    else:
        hf_tqdm.enable_progress_bars()


def _quiet_ffmpeg() -> None:
    """FFmpeg's INFO lines: x264's banner, "using cpu capabilities" and ~10 statistics lines per video encoded.

    PyAV starts with FFmpeg's logging off, but LeRobot's encoder calls ``av.logging.restore_default_callback()``
    after each video, which hands logging back to FFmpeg's own printer (straight to the terminal, at FFmpeg's
    default level, INFO). Raising that printer's threshold to WARNING drops the INFO lines and keeps warnings and
    errors; it does not touch PyAV's Python callback, which has its own level.
    """
    try:
        import av.logging
    except ImportError:  # no PyAV: nothing here encodes video
        return
    av.logging.set_libav_level(av.logging.WARNING)


@contextlib.contextmanager
def library_log(path: Path) -> Iterator[Path]:
    """While inside, INFO and above from every Python logger goes to ``path``; only warnings and errors also reach
    the console. Restores the logging setup on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # Console handlers already there (LeRobot's robot modules call logging.basicConfig(level=INFO) on import) keep
    # only warnings and errors while inside; without any, Python's fallback printer would stop once ours exists.
    consoles = {h: h.level for h in root.handlers if type(h) is logging.StreamHandler
                and getattr(h, "stream", None) in (sys.stderr, sys.stdout)}
    added: list[logging.Handler] = [to_file]
    if not root.handlers:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        consoles[console] = logging.WARNING
        added.append(console)
    level = root.level
    for handler in consoles:
        handler.setLevel(max(handler.level, logging.WARNING))
    for handler in added:
        root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    logging.getLogger(__name__).info("library messages of this run; FFmpeg's INFO lines (x264 statistics and "
                                     "banners) are dropped at the source, its warnings go to the console")
    try:
        yield path
    finally:
        root.setLevel(level)
        for handler, was in consoles.items():
            handler.setLevel(was)
        for handler in added:
            root.removeHandler(handler)
            handler.close()
