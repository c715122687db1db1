"""USB across a sleep: the devices the guest enumerated before it (sysfs ``/sys/bus/usb/devices``,
each with its interfaces' drivers) are there after the wake with the same drivers, and an
input event sent by the host (QMP ``input-send-event``) reaches the guest's evdev node of the
tablet and of the keyboard within USB_INPUT_S."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from harness.checks.peripherals.monitor import guest_output, qmp
from harness.checks.verdict import CheckResult, CycleEvidence
from harness.errors import HarnessError
from harness.machines.devices import USB_KEYBOARD_ID, USB_TABLET_ID
from harness.machines.protocol import Machine

# Input reaches a guest that is awake within milliseconds; the bound covers a TCG guest whose
# USB hub is still re-enumerating its ports after the wake.
USB_INPUT_S = 15.0

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


def parse_usb(listing: str) -> dict[str, tuple[str, str]]:
    """``BUSID|PRODUCT|DRIVERS`` lines: busid -> (product, drivers)."""
    devices = {}
    for line in listing.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            devices[parts[0]] = (parts[1], parts[2])
    return devices


def usb_before(machine: Machine, facts: dict[str, str]) -> None:
    facts["usb.devices"] = guest_output(machine, USB_LIST).strip()


def usb_after(machine: Machine, before: dict[str, str], facts: dict[str, str]) -> None:
    facts["usb.devices"] = guest_output(machine, USB_LIST).strip()
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
                    qmp(machine, "input-send-event", {"events": events})
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
