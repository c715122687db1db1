"""Faults of a guest's USB devices, display and balloon (``--usb``, ``--display``,
``--balloon``), each shown failing its check (harness.checks.peripherals) naming the device."""

from __future__ import annotations

from harness.cycle.faults import AFTER_WAKE, ASLEEP, BEFORE_REQUEST, Fault
from harness.errors import SetupError
from harness.machines.devices import DISPLAY_DRIVERS, USB_KEYBOARD_ID
from harness.machines.protocol import Machine

# The guest's balloon devices (virtio device id 5) handed back by their driver.
UNBIND_BALLOON = r"""
d=/sys/bus/virtio/drivers/virtio_balloon
found=""
for v in "$d"/virtio*; do
  [ -e "$v" ] || continue
  found=1; echo "${v##*/}" > "$d/unbind" || exit 1
done
[ -n "$found" ] || { echo "no device bound to virtio_balloon" >&2; exit 1; }
"""

# The display's devices handed back by the guest's DRM driver (its name as sysfs has it):
# the framebuffer goes with it, and nothing the guest draws reaches the screen.
UNBIND_DISPLAY = r"""
found=""
for d in /sys/bus/*/drivers/DRIVER; do
  for v in "$d"/*; do
    [ -e "$v/driver" ] || continue
    found=1; echo "${v##*/}" > "$d/unbind" || exit 1
  done
done
[ -n "$found" ] || { echo "no device bound to DRIVER" >&2; exit 1; }
"""


def _device_del(machine: Machine, device: str) -> None:
    said = machine.hmp(f"device_del {device}").strip()
    if said:
        raise SetupError(f"fault injection 'device_del {device}' failed: {said}")


def usb_keyboard_removed() -> Fault:
    """The USB keyboard unplugged (``device_del``) while the guest sleeps."""
    return Fault(
        f"USB keyboard ({USB_KEYBOARD_ID}) removed while the guest sleeps",
        lambda machine: _device_del(machine, USB_KEYBOARD_ID),
        ASLEEP,
    )


def display_driver_unbound(display: str) -> Fault:
    """The guest's DRM driver of ``display`` unbound right after the wake, before the display
    check draws: the display no longer shows anything the guest draws."""
    driver = DISPLAY_DRIVERS[display]
    return Fault(
        f"the guest's {driver} driver unbound from the display after the wake",
        lambda machine: _run_or_fail(machine, UNBIND_DISPLAY.replace("DRIVER", driver)),
        AFTER_WAKE,
    )


def balloon_driver_unbound() -> Fault:
    """The guest's virtio_balloon driver unbound from the balloon before the sleep request:
    the guest sends no more statistics."""
    return Fault(
        "the guest's virtio_balloon driver unbound before the sleep",
        lambda machine: _run_or_fail(machine, UNBIND_BALLOON),
        BEFORE_REQUEST,
    )


def _run_or_fail(machine: Machine, command: str) -> None:
    result = machine.run(command)
    if not result.ok:
        raise SetupError(f"fault injection failed: {result.stderr.strip()[-300:]}")
