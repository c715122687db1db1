"""Debian's chromium, headless, for the tests of the HTML pages: the DOM after the page's
script ran, and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zlib
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


def png_rows(png: Path, limit: int | None = None) -> list[list[tuple[int, int, int]]]:
    """The RGB pixels of an 8-bit RGB or RGBA PNG (what chromium writes), row by row: the
    first ``limit`` rows, or all."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    chunks: dict[bytes, bytes] = {}
    at = 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        chunks[kind] = chunks.get(kind, b"") + data[at + 8 : at + 8 + length]
        at += 12 + length
    header = chunks[b"IHDR"]
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    assert header[8] == 8 and header[9] in (2, 6) and not header[12], "an unexpected PNG layout"
    step = 3 if header[9] == 2 else 4
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * step
    rows: list[list[tuple[int, int, int]]] = []
    previous = bytearray(stride)
    for y in range(min(height, limit or height)):
        start = y * (stride + 1)
        method = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            corner = previous[i - step] if i >= step else 0
            line[i] = (line[i] + _predict(method, left, previous[i], corner)) & 0xFF
        rows.append([(line[x], line[x + 1], line[x + 2]) for x in range(0, stride, step)])
        previous = line
    return rows


def _predict(kind: int, left: int, up: int, corner: int) -> int:
    if kind == 0:
        return 0
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    guess = left + up - corner  # Paeth
    near = min(
        (abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner)
    )
    return near[2]
