"""A PNG of an HTML page as a real browser draws it (headless Chromium), to check the
report by eye or in a test.

    salmon report --run-dir runs/default --out runs/default/report --screenshot report.png

Needs a Chromium binary (`apt-get install chromium` on Debian); `find_chromium` returns
None where there is none, and `screenshot` then says so in one line.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from salmon.errors import SalmonError

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, BINARIES) if p), None)


def parse_size(size: str) -> tuple[int, int]:
    """'1200x3000' -> (1200, 3000)."""
    try:
        w, h = (int(x) for x in size.lower().split("x"))
    except ValueError:
        raise SalmonError(f"--screenshot-size {size}: expected WIDTHxHEIGHT, e.g. 1200x3000") from None
    if not (100 <= w <= 8000 and 100 <= h <= 30000):
        raise SalmonError(f"--screenshot-size {size}: width 100-8000 and height 100-30000 pixels")
    return w, h


def screenshot(html_path: str | Path, png_path: str | Path, size: str = "1200x3000", timeout: float = 120) -> Path:
    """Draw `html_path` in headless Chromium at `size` (the page's top WIDTHxHEIGHT pixels)."""
    browser = find_chromium()
    if browser is None:
        raise SalmonError("no Chromium found for --screenshot (install it: apt-get install chromium)")
    width, height = parse_size(size)
    src, png = Path(html_path).resolve(), Path(png_path).resolve()
    if not src.exists():
        raise SalmonError(f"{src}: no such page to draw")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no state from other runs
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={png}",
               src.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SalmonError(f"chromium took over {timeout:.0f} s to draw {src}") from None
    if proc.returncode != 0 or not png.exists():
        raise SalmonError(f"chromium could not draw {src}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return png
