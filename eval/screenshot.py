"""A PNG of an HTML page as headless Chromium renders it: for checking the report draws, and for the README.

    python -m eval.screenshot reports/html/report.html reports/html_report.png --width 1200 --height 2600 --scale 0.6
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "install it with `apt-get install -y --no-install-recommends chromium`"


class ScreenshotError(RuntimeError):
    pass


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2000, timeout_s: float = 120) -> Path:
    """Render ``page`` in a fresh, offline-quiet profile and save the top ``width`` x ``height`` of it.

    Make the window as tall as the page: a ``#fragment`` scroll was seen to capture a blank viewport.
    """
    chromium = find_chromium()
    if chromium is None:
        raise ScreenshotError(f"no Chromium on PATH; {INSTALL_HINT}")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    url = Path(page).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={width},{height}", url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if not png.is_file():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ScreenshotError(f"chromium exited {done.returncode} without writing {png}: {tail}")
    return png


def trim_bottom(image: Image.Image, margin: int = 24) -> Image.Image:
    """Drop the empty page background below the last content, keeping a small margin."""
    background = Image.new(image.mode, image.size, image.getpixel((image.width - 1, image.height - 1)))
    box = ImageChops.difference(image, background).getbbox()
    return image if box is None else image.crop((0, 0, image.width, min(image.height, box[3] + margin)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("page", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=2000)
    p.add_argument("--scale", type=float, default=1.0, help="resize the trimmed screenshot by this factor")
    a = p.parse_args(argv)
    try:
        path = screenshot(a.page, a.png, a.width, a.height)
    except (ScreenshotError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with Image.open(path) as shot:
        image = trim_bottom(shot.convert("RGB"))
    if a.scale != 1.0:
        image = image.resize((round(image.width * a.scale), round(image.height * a.scale)), Image.Resampling.LANCZOS)
    image.save(path, optimize=True)
    print(f"wrote {path} ({image.width}x{image.height}, {path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
