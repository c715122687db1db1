"""Debian's chromium, headless, for the tests of the HTML pages: the DOM after the page's
script ran, and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

TIMEOUT_S = 120  # a cold chromium start on a loaded 2-core host takes seconds, not minutes
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1")  # fmt: skip


def _run(*args: str) -> str:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium not found: run ./run setup (installs Debian's chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def chromium_dom(url: str) -> str:
    """The page's DOM once its scripts ran."""
    return _run("--dump-dom", url)


def chromium_screenshot(url: str, png: Path, width: int = 1280, height: int = 1600) -> Path:
    """A PNG of the page's first ``width`` x ``height`` pixels."""
    _run(f"--screenshot={png}", f"--window-size={width},{height}", url)
    assert png.is_file() and png.stat().st_size > 0, f"chromium wrote no screenshot to {png}"
    return png
