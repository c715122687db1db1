"""The checks that follow a guest's USB devices, display and balloon (``--usb``,
``--display``, ``--balloon``; harness.machines.devices) across a sleep.

Each needs the host to act on its device through QEMU's monitor (an input event, a screendump,
the balloon's statistics), so each is a step the cycle runs on the host before the sleep
request and after the wake, its facts put into the evidence under ``usb.*``, ``display.*`` and
``balloon.*``, and a pure check that judges them. A step never raises: what it could not do is
a fact the check reports. A guest without these devices gets no step and no check.

- USB: the USB devices the guest enumerated before the sleep (sysfs ``/sys/bus/usb/devices``,
  each with the drivers of its interfaces) are there after the wake with the same drivers, and
  an input event sent by the host (QMP ``input-send-event`` to the tablet and to the keyboard)
  reaches the guest's evdev node of each, within USB_INPUT_S.
- Display: the guest fills its framebuffer (``/dev/fb0``) with one grey, and a QMP screendump
  must show it (a band at the bottom of the screen, below fbcon's text) within DISPLAY_S; once
  before the sleep, and after the wake with another grey.
- Balloon: with the balloon's statistics polled every BALLOON_POLL_S, the guest's statistics
  arrive again (``guest-stats``'s ``last-update`` advances) within BALLOON_S of the wake.
"""

from __future__ import annotations

import concurrent.futures
import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checks.verdict import CheckResult, CycleEvidence
from harness.errors import HarnessError
from harness.machines.config import QemuConfig
from harness.machines.devices import (
    BALLOON_ID,
    DISPLAY_DEVICES,
    DISPLAY_DRIVERS,
    DISPLAY_ID,
    USB_KEYBOARD_ID,
    USB_TABLET_ID,
    DeviceProfile,
)
from harness.machines.protocol import Machine

# Input reaches a guest that is awake within milliseconds; the bound covers a TCG guest whose
# USB hub is still re-enumerating its ports after the wake.
USB_INPUT_S = 15.0
DISPLAY_S = 15.0  # the guest's fbdev flushes a damaged band within a frame or so
BALLOON_POLL_S = 2  # guest-stats-polling-interval: the guest is asked this often
BALLOON_S = 15.0  # several polling intervals, for a TCG guest resuming its devices
BAND_ROWS = 64  # the band looked at, at the bottom of the screen (fbcon writes at the top)
# The band's grey before the sleep and after the wake: neither is a colour of the console's
# palette (0x00, 0x55, 0xaa, 0xff in each channel), so no text fbcon draws is taken for it.
GREY_BEFORE, GREY_AFTER = 0x3C, 0xC3
SHOWN_FRACTION = 0.9  # of the band's pixels, the rest left to a cursor or a line of text

# QEMU's product strings of the USB devices, and the devices the host names them by.
USB_PRODUCTS = {
    "QEMU USB Tablet": f"usb-tablet {USB_TABLET_ID}",
    "QEMU USB Keyboard": f"usb-kbd {USB_KEYBOARD_ID}",
}

# Every USB device with its interfaces' drivers: ``BUSID|PRODUCT|DRIVER DRIVER``.
USB_LIST = r"""
for d in /sys/bus/usb/devices/*; do
  [ -f "$d/product" ] || continue
  b=${d##*/}; drv=""
  for i in "$d/$b":*; do
    [ -e "$i/driver" ] && drv="$drv $(basename "$(readlink "$i/driver")")"
  done
  echo "$b|$(cat "$d/product")|${drv# }"
done
"""

# One event read from the evdev node of each USB input device (by its input name), bounded;
# ``tablet=BYTES keyboard=BYTES`` (24 bytes: one event; "none": no such input device).
USB_READ = r"""
r() {
  n=""
  for e in /sys/class/input/event*; do
    case "$(cat "$e/device/name" 2>/dev/null)" in *"$2"*) n=${e##*/};; esac
  done
  if [ -z "$n" ]; then echo "$1=none"; return; fi
  echo "$1=$(timeout BOUND dd if=/dev/input/$n bs=24 count=1 status=none | wc -c)"
}
r tablet "USB Tablet" & r keyboard "USB Keyboard" & wait
"""

# The framebuffer's geometry and driver: ``STRIDE WIDTH,HEIGHT BPP DRIVER`` or ``none``.
FB_GEOMETRY = r"""
f=/sys/class/graphics/fb0
if [ -e /dev/fb0 ] && [ -e $f/stride ]; then
  echo "$(cat $f/stride) $(cat $f/virtual_size) $(cat $f/bits_per_pixel) \
$(basename "$(readlink $f/device/driver)" 2>/dev/null)"
else echo none; fi
"""


@dataclass(frozen=True)
class Step:
    """One device's host-side steps and its check."""

    name: str
    before: Callable[[Machine, dict[str, str]], None]
    after: Callable[[Machine, dict[str, str], dict[str, str]], None]
    check: Callable[[CycleEvidence], CheckResult]


class PeripheralWatch:
    """The steps of a machine's USB devices, display and balloon (none without them)."""

    def __init__(self, devices: DeviceProfile) -> None:
        self.devices = devices
        self.steps: list[Step] = []
        if devices.usb:
            self.steps.append(Step("usb", usb_before, usb_after, usb_healthy))
        if devices.display:
            before = functools.partial(display_before, display=devices.display)
            after = functools.partial(display_after, display=devices.display)
            self.steps.append(Step("display", before, after, display_updates))
        if devices.balloon:
            self.steps.append(Step("balloon", balloon_before, balloon_after, balloon_stats))

    @classmethod
    def of(cls, machine: object) -> PeripheralWatch:
        config = getattr(machine, "config", None)
        return cls(config.devices if isinstance(config, QemuConfig) else DeviceProfile())

    @property
    def checks(self) -> list[Callable[[CycleEvidence], CheckResult]]:
        return [step.check for step in self.steps]

    def before(self, machine: Machine, evidence: CycleEvidence) -> None:
        for step in self.steps:
            _guarded(
                step.name, evidence.before, functools.partial(step.before, machine, evidence.before)
            )

    def after(self, machine: Machine, evidence: CycleEvidence) -> None:
        for step in self.steps:
            run = functools.partial(step.after, machine, evidence.before, evidence.after)
            _guarded(step.name, evidence.after, run)


def _guarded(name: str, facts: dict[str, str], run: Callable[[], None]) -> None:
    started = time.monotonic()
    try:
        run()
    except (HarnessError, OSError, ValueError) as exc:  # a screendump unreadable, too
        facts[f"{name}.error"] = str(exc)[:300]
    facts[f"{name}.seconds"] = f"{time.monotonic() - started:.2f}"


def _qmp(machine: Machine, command: str, arguments: dict[str, Any] | None = None) -> Any:
    """A QMP command: the direct QEMU backend's (the only one these devices are given to)."""
    qmp = getattr(machine, "qmp", None)
    if qmp is None:
        raise HarnessError(f"{command}: this backend has no QMP monitor")
    return qmp(command, arguments)


# -- USB ----------------------------------------------------------------------------------------


def parse_usb(listing: str) -> dict[str, tuple[str, str]]:
    """``BUSID|PRODUCT|DRIVERS`` lines: busid -> (product, drivers)."""
    devices = {}
    for line in listing.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            devices[parts[0]] = (parts[1], parts[2])
    return devices


def usb_before(machine: Machine, facts: dict[str, str]) -> None:
    facts["usb.devices"] = _run(machine, USB_LIST).strip()


def usb_after(machine: Machine, before: dict[str, str], facts: dict[str, str]) -> None:
    facts["usb.devices"] = _run(machine, USB_LIST).strip()
    facts.update(usb_input(machine))


def usb_input(machine: Machine) -> dict[str, str]:
    """Events from the host to the tablet and the keyboard until the guest has read one from
    each (or USB_INPUT_S): the guest's reader may open its node after the first events."""
    script = USB_READ.replace("BOUND", str(int(USB_INPUT_S)))
    sent: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(1, "usb-read") as pool:
        reading = pool.submit(machine.run, script, USB_INPUT_S + 30)
        deadline = time.monotonic() + USB_INPUT_S
        position = 0
        while not reading.done() and time.monotonic() < deadline:
            position = (position + 1) % 2
            for device, events in (
                (USB_TABLET_ID, _tablet_move(position)),
                (USB_KEYBOARD_ID, _key_tap("shift")),
            ):
                try:
                    # No "device": that names a display console; the events go to the
                    # keyboard QEMU activated last (the USB one over PS/2) and to the only
                    # absolute pointer, the tablet.
                    _qmp(machine, "input-send-event", {"events": events})
                    sent.setdefault(device, "sent")
                except HarnessError as exc:
                    sent[device] = str(exc)[:200]
            with _quietly():
                reading.result(timeout=0.5)
        result = reading.result()
    facts = dict(line.split("=", 1) for line in result.stdout.split() if "=" in line)
    out = {f"usb.input.{k}": v for k, v in facts.items()}
    out.update({f"usb.sent.{k}": v for k, v in sent.items()})
    return out


class _quietly:
    """A wait on a future that may time out, the timeout not being an error."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, traceback: object) -> bool:
        return kind is concurrent.futures.TimeoutError


def _tablet_move(position: int) -> list[dict[str, Any]]:
    # Two positions in turn: the input core drops a move to where the pointer already is.
    x = 8000 if position else 24000
    return [
        {"type": "abs", "data": {"axis": "x", "value": x}},
        {"type": "abs", "data": {"axis": "y", "value": x}},
    ]


def _key_tap(key: str) -> list[dict[str, Any]]:
    qcode = {"type": "qcode", "data": key}
    return [
        {"type": "key", "data": {"down": True, "key": qcode}},
        {"type": "key", "data": {"down": False, "key": qcode}},
    ]


def usb_healthy(ev: CycleEvidence) -> CheckResult:
    """The USB devices enumerated before the sleep are there after it, bound to the same
    drivers, and an input event from the host reaches the tablet's and the keyboard's nodes."""
    before = parse_usb(ev.before.get("usb.devices", ""))
    after = parse_usb(ev.after.get("usb.devices", ""))
    data = {"before": before, "after": after}
    problems = []
    if error := ev.before.get("usb.error"):
        problems.append(f"not read before the sleep: {error}")
    if error := ev.after.get("usb.error"):
        problems.append(f"not read after the wake: {error}")
    inputs = [product for product, _ in before.values() if product in USB_PRODUCTS]
    if not problems and len(inputs) < len(USB_PRODUCTS):
        missing = sorted(set(USB_PRODUCTS) - set(inputs))
        problems.append(f"{', '.join(missing)} not enumerated before the sleep")
    for busid, (product, drivers) in sorted(before.items()):
        name = f"{product} ({USB_PRODUCTS.get(product, 'USB')} at {busid})"
        if busid not in after or after[busid][0] != product:
            problems.append(f"{name} gone after the wake")
        elif after[busid][1] != drivers:
            was, now = drivers or "nothing", after[busid][1] or "nothing"
            problems.append(f"{name} bound to {now} after the wake, to {was} before")
    for role, device, product in (
        ("tablet", USB_TABLET_ID, "QEMU USB Tablet"),
        ("keyboard", USB_KEYBOARD_ID, "QEMU USB Keyboard"),
    ):
        read = ev.after.get(f"usb.input.{role}")
        if read is None or read == "24":
            continue
        sent = ev.after.get(f"usb.sent.{device}", "not sent")
        how = "" if sent == "sent" else f"; input-send-event: {sent}"
        what = "no input device" if read == "none" else f"no event within {USB_INPUT_S:.0f}s"
        problems.append(f"{product} ({USB_PRODUCTS[product]}): {what} in the guest{how}")
    if problems:
        return CheckResult("usb_healthy", False, "xHCI: " + "; ".join(problems), data)
    listed = ", ".join(
        f"{product} ({busid}, {drivers or 'no driver'})"
        for busid, (product, drivers) in sorted(after.items())
        if product in USB_PRODUCTS
    )
    return CheckResult(
        "usb_healthy", True, f"xHCI: {listed} still bound; tablet and key events read", data
    )


# -- display ------------------------------------------------------------------------------------


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
    geometry = _run(machine, FB_GEOMETRY).strip()
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
    # not sent over ssh) and written by plain write()s, each of which the DRM fbdev marks as
    # damage to flush to the device; the band at the bottom is what the check looks at.
    draw = f"head -c {int(stride) * screen_h} /dev/zero | tr '\\000' '\\{grey:03o}' > /dev/fb0"
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
    _qmp(machine, "screendump", {"filename": str(path), "device": DISPLAY_ID})
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


# -- balloon ------------------------------------------------------------------------------------

BALLOON_PATH = f"/machine/peripheral/{BALLOON_ID}"


def _last_update(machine: Machine) -> int:
    stats = _qmp(machine, "qom-get", {"path": BALLOON_PATH, "property": "guest-stats"})
    return int(stats.get("last-update", 0)) if isinstance(stats, dict) else 0


def _poll_stats(machine: Machine) -> None:
    _qmp(
        machine,
        "qom-set",
        {"path": BALLOON_PATH, "property": "guest-stats-polling-interval", "value": BALLOON_POLL_S},
    )


def _wait_update(machine: Machine, since: int) -> tuple[int, float]:
    """The balloon's last-update once it is past ``since`` (or as it is at BALLOON_S), and the
    seconds waited."""
    started = time.monotonic()
    while True:
        last = _last_update(machine)
        waited = time.monotonic() - started
        if last > since or waited >= BALLOON_S:
            return last, waited
        time.sleep(0.5)  # a poll of QEMU's own value, at a fraction of the polling interval


def balloon_before(machine: Machine, facts: dict[str, str]) -> None:
    _poll_stats(machine)
    last, waited = _wait_update(machine, 0)
    facts["balloon.last_update"] = str(last)
    facts["balloon.waited_s"] = f"{waited:.1f}"


def balloon_after(machine: Machine, before: dict[str, str], facts: dict[str, str]) -> None:
    # After S4 this is a new QEMU process: its polling is set afresh (a no-op after S3).
    _poll_stats(machine)
    since = max(_last_update(machine), int(before.get("balloon.last_update", "0") or 0))
    facts["balloon.since"] = str(since)
    last, waited = _wait_update(machine, since)
    facts["balloon.last_update"] = str(last)
    facts["balloon.waited_s"] = f"{waited:.1f}"


def balloon_stats(ev: CycleEvidence) -> CheckResult:
    """The guest's balloon statistics update after the wake as they did before the sleep."""
    name = f"virtio-balloon-pci {BALLOON_ID} (virtio_balloon)"
    before, after = ev.before, ev.after
    data = {k: {"before": before.get(k), "after": after.get(k)} for k in ("balloon.last_update",)}
    problems = []
    if error := before.get("balloon.error"):
        problems.append(f"not read before the sleep: {error}")
    elif before.get("balloon.last_update", "0") == "0":
        problems.append(f"no guest statistics before the sleep within {BALLOON_S:.0f}s")
    if error := after.get("balloon.error"):
        problems.append(f"not read after the wake: {error}")
    elif not problems:
        since, last = after.get("balloon.since", "0"), after.get("balloon.last_update", "0")
        if int(last or 0) <= int(since or 0):
            problems.append(
                f"guest statistics stopped: last-update stayed at {since} for "
                f"{BALLOON_S:.0f}s after the wake (polled every {BALLOON_POLL_S}s)"
            )
    if problems:
        return CheckResult("balloon_stats", False, f"{name}: {'; '.join(problems)}", data)
    waited = after.get("balloon.waited_s", "?")
    return CheckResult(
        "balloon_stats", True, f"{name}: guest statistics updated {waited}s after the wake", data
    )


def _run(machine: Machine, script: str) -> str:
    result = machine.run(script)
    if not result.ok:
        raise HarnessError(f"exited {result.exit_status}: {result.stderr.strip()[-200:]}")
    return result.stdout
