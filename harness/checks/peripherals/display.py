"""The display across a sleep: the guest fills its framebuffer (``/dev/fb0``) with one grey,
and a QMP screendump must show it (a band at the bottom of the screen, below fbcon's text)
within DISPLAY_S; once before the sleep, and after the wake with another grey."""

from __future__ import annotations

import re
import time
from pathlib import Path

from harness.checks.peripherals.monitor import guest_output, qmp
from harness.checks.verdict import CheckResult, CycleEvidence
from harness.errors import HarnessError
from harness.machines.devices import DISPLAY_DEVICES, DISPLAY_DRIVERS, DISPLAY_ID
from harness.machines.protocol import Machine

DISPLAY_S = 15.0  # the guest's fbdev flushes a damaged band within a frame or so
BAND_ROWS = 64  # the band looked at, at the bottom of the screen (fbcon writes at the top)
# The band's grey before the sleep and after the wake: neither is a colour of the console's
# palette (0x00, 0x55, 0xaa, 0xff in each channel), so no text fbcon draws is taken for it.
GREY_BEFORE, GREY_AFTER = 0x3C, 0xC3
SHOWN_FRACTION = 0.9  # of the band's pixels, the rest left to a cursor or a line of text

# The framebuffer's geometry and driver: ``STRIDE WIDTH,HEIGHT BPP DRIVER`` or ``none``.
FB_GEOMETRY = r"""
f=/sys/class/graphics/fb0
if [ -e /dev/fb0 ] && [ -e $f/stride ]; then
  echo "$(cat $f/stride) $(cat $f/virtual_size) $(cat $f/bits_per_pixel) \
$(basename "$(readlink $f/device/driver)" 2>/dev/null)"
else echo none; fi
"""


def display_name(display: str) -> str:
    """``std VGA (VGA display0, bochs-drm)``: how a failure names the display."""
    label = {"std": "std VGA", "virtio-gpu": "virtio-gpu", "qxl": "QXL"}[display]
    return f"{label} ({DISPLAY_DEVICES[display]} {DISPLAY_ID}, {DISPLAY_DRIVERS[display]})"


def parse_ppm(data: bytes) -> tuple[int, int, bytes]:
    """A binary PPM (P6, 8 bits, as QEMU's screendump writes): width, height, RGB bytes."""
    match = re.match(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    if not match or match.group(3) != b"255":
        raise ValueError("not an 8-bit binary PPM")
    width, height = int(match.group(1)), int(match.group(2))
    return width, height, data[match.end() : match.end() + width * height * 3]


def band_shown(ppm: bytes, grey: int, width: int) -> float:
    """The fraction of the bottom band's pixels (left ``width`` columns, a few rows in from
    its edges) that are ``grey`` in the screendump ``ppm``."""
    screen_w, screen_h, pixels = parse_ppm(ppm)
    columns = min(width, screen_w)
    pixel = bytes([grey]) * 3
    rows = range(max(0, screen_h - BAND_ROWS + 8), max(0, screen_h - 8))
    matched = sum(
        pixels[(y * screen_w) * 3 : (y * screen_w + columns) * 3].count(pixel) for y in rows
    )
    total = columns * len(rows)
    return matched / total if total else 0.0


def _draw_until_shown(machine: Machine, grey: int, facts: dict[str, str], phase: str) -> None:
    geometry = guest_output(machine, FB_GEOMETRY).strip()
    facts[f"display.{phase}_fb"] = geometry
    if geometry == "none":
        return
    stride, size, bpp = geometry.split()[:3]
    width = int(size.split(",")[0])
    if bpp != "32":
        facts[f"display.{phase}_shown"] = f"framebuffer at {bpp} bits per pixel, not 32"
        return
    # The band goes at the bottom of what the screen shows (the framebuffer may be taller).
    shot = Path(machine.runtime_dir) / f"screen-{phase}.ppm"
    screen_h = parse_ppm(_screendump(machine, shot))[1]
    # The whole visible screen, from the framebuffer's start, made in the guest (megabytes
    # not sent over ssh) and written by ONE write() (dd gathers the pipe into one block): the
    # DRM fbdev marks what a write covers as damage to flush to the device, and a QXL screen
    # shows only a few of a run of small writes, while one write reaches every display.
    # The band at the bottom is what the check looks at.
    screen_bytes = int(stride) * screen_h
    draw = (
        f"head -c {screen_bytes} /dev/zero | tr '\\000' '\\{grey:03o}' "
        f"| dd of=/dev/fb0 bs={screen_bytes} count=1 iflag=fullblock status=none"
    )
    deadline = time.monotonic() + DISPLAY_S
    fraction, attempts = 0.0, 0
    while True:
        attempts += 1
        result = machine.run(draw)
        if not result.ok:
            facts[f"display.{phase}_shown"] = f"the guest could not draw: {result.stderr[-200:]}"
            return
        fraction = band_shown(_screendump(machine, shot), grey, width)
        if fraction >= SHOWN_FRACTION or time.monotonic() >= deadline:
            break
    facts[f"display.{phase}_shown"] = "yes" if fraction >= SHOWN_FRACTION else "no"
    facts[f"display.{phase}_band"] = f"{fraction:.2f} after {attempts} draws"


def _screendump(machine: Machine, path: Path) -> bytes:
    """The display's screen now, as a PPM (QEMU writes the file)."""
    path.unlink(missing_ok=True)
    qmp(machine, "screendump", {"filename": str(path), "device": DISPLAY_ID})
    if not path.is_file():
        raise HarnessError(f"screendump of {DISPLAY_ID} wrote no {path.name}")
    return path.read_bytes()


def display_before(machine: Machine, facts: dict[str, str], display: str) -> None:
    facts["display.name"] = display
    _draw_until_shown(machine, GREY_BEFORE, facts, "before")


def display_after(
    machine: Machine, before: dict[str, str], facts: dict[str, str], display: str
) -> None:
    facts["display.name"] = display
    _draw_until_shown(machine, GREY_AFTER, facts, "after")


def display_updates(ev: CycleEvidence) -> CheckResult:
    """What the guest draws reaches the screen (a screendump) after the wake as before it."""
    display = ev.after.get("display.name") or ev.before.get("display.name", "")
    name = display_name(display) if display in DISPLAY_DEVICES else "display"
    phases = (("before", ev.before, "before the sleep"), ("after", ev.after, "after the wake"))
    data = {
        f"{phase}_{key}": facts.get(f"display.{phase}_{key}")
        for phase, facts, _ in phases
        for key in ("fb", "shown", "band")
    }
    problems = []
    for phase, facts, when in phases:
        if error := facts.get("display.error"):
            problems.append(f"not measured {when}: {error}")
            continue
        fb = facts.get(f"display.{phase}_fb", "")
        shown = facts.get(f"display.{phase}_shown", "")
        if fb == "none":
            problems.append(f"no framebuffer in the guest {when}")
        elif shown == "no":
            band = facts.get(f"display.{phase}_band", "")
            problems.append(
                f"the screen did not show what the guest drew {when} within "
                f"{DISPLAY_S:.0f}s (band {band})"
            )
        elif shown != "yes":
            problems.append(f"{when}: {shown or 'not measured'}")
    if problems:
        return CheckResult("display_updates", False, f"{name}: {'; '.join(problems)}", data)
    return CheckResult(
        "display_updates",
        True,
        f"{name}: the screen showed what the guest drew, before the sleep and after the wake",
        data,
    )
