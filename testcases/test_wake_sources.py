"""Wake sources besides system_wakeup and the RTC: a key press on a PS/2, USB or virtio
keyboard, and the ACPI power button, each waking a guest in S3, proven by the platform's
WAKEUP within its bound (docs/devices.md, "Wake sources").

On QEMU 7.2 only the PS/2 keyboard wakes an S3 guest: its model asks the machine to wake on
every key while the keyboard scans. QEMU's xHCI, virtio-input and ACPI power button models have
no such path, so those cases are UNSUPPORTED with QEMU's reason (a QEMU that wakes on them
passes). The PS/2 case is also shown failing: a keyboard the guest told to stop scanning does
not wake it, and the FAIL names the keyboard within the bound.

The USB and virtio keyboards are devices of their own cases' guests (each a cold boot), run
with S3S4_WAKE_SOURCES=all; the USB one needs a guest with USB drivers (--guest-profile
devices).
"""

import os
from collections.abc import Callable

import pytest

from harness.checks.verdict import Verdict
from harness.cycle.faults import BEFORE_REQUEST, Fault
from harness.errors import SetupError
from harness.machines.protocol import Machine
from harness.plugin import PowerCycle, expect_pass
from harness.transitions.catalogue import (
    S3_KEY_PS2,
    S3_KEY_USB,
    S3_KEY_VIRTIO,
    S3_POWER_BUTTON,
)
from harness.transitions.wakes import WAKE_SOURCE_S

USB_KEYBOARD_ARGS = ("-device", "qemu-xhci,id=wake-xhci", "-device", "usb-kbd,bus=wake-xhci.0")
VIRTIO_KEYBOARD_ARGS = ("-device", "virtio-keyboard-pci")
BY_HAND = pytest.mark.skipif(
    os.environ.get("S3S4_WAKE_SOURCES") != "all",
    reason="a cold boot each beyond CI's share: S3S4_WAKE_SOURCES=all runs them",
)


def _stop_ps2_scanning(machine: Machine) -> None:
    """Hand the PS/2 keyboard's port to serio_raw and send the keyboard 0xF5 (disable
    scanning), as a driver that leaves the keyboard off would: QEMU's PS/2 keyboard then drops
    key presses, the wake request with them."""
    result = machine.run(
        "modprobe serio_raw && echo -n serio_raw > /sys/bus/serio/devices/serio0/drvctl && "
        "udevadm settle --timeout=30 && printf '\\365' > /dev/serio_raw0"
    )
    if not result.ok:
        raise SetupError(f"cannot stop the PS/2 keyboard's scanning: {result.stderr.strip()}")


PS2_SCANNING_OFF = Fault(
    "PS/2 keyboard told to stop scanning (0xF5 through serio_raw) before the sleep",
    _stop_ps2_scanning,
    point=BEFORE_REQUEST,
)


@pytest.mark.s3
def test_wake_by_ps2_key(power_cycle: PowerCycle) -> None:
    """A key press on the PS/2 keyboard wakes the guest from S3: WAKEUP within the bound."""
    series = power_cycle(S3_KEY_PS2)
    expect_pass(series)
    assert series.last.evidence.timings["source_to_wakeup"] < WAKE_SOURCE_S


@pytest.mark.s3
def test_ps2_key_that_does_not_wake_is_named(power_cycle: PowerCycle) -> None:
    """The PS/2 keyboard told to stop scanning: no WAKEUP, a FAIL naming the keyboard."""
    series = power_cycle(S3_KEY_PS2, faults=[PS2_SCANNING_OFF])
    assert series.verdict is Verdict.FAIL, series.reason
    assert (
        f"the PS/2 keyboard (i8042) did not wake the guest: no WAKEUP within "
        f"{WAKE_SOURCE_S:.0f}s of a key press" in series.reason
    ), series.reason


def _unsupported_or_pass(series_reason: str, verdict: Verdict, qemu_function: str) -> None:
    """On a QEMU whose model cannot wake from the source: UNSUPPORTED naming QEMU's code, the
    guest back through system_wakeup; on one that can: PASS."""
    if verdict is Verdict.PASS:
        return
    assert verdict is Verdict.UNSUPPORTED, series_reason
    assert "cannot wake an S3 guest on this QEMU" in series_reason, series_reason
    assert qemu_function in series_reason, series_reason
    assert "system_wakeup then woke the guest" in series_reason, series_reason


@pytest.mark.s3
def test_wake_by_power_button(power_cycle: PowerCycle) -> None:
    """The ACPI power button (system_powerdown) on a guest in S3."""
    series = power_cycle(S3_POWER_BUTTON)
    _unsupported_or_pass(series.reason, series.verdict, "acpi_pm1_evt_power_down")


def _guest_with(guest_factory: Callable[..., Machine], name: str, args: tuple[str, ...]) -> Machine:
    machine = guest_factory(name, args)
    machine.boot()
    return machine


@BY_HAND
@pytest.mark.s3
def test_wake_by_usb_key(power_cycle: PowerCycle, guest_factory: Callable[..., Machine]) -> None:
    """A key press on a USB keyboard (usb-kbd on qemu-xhci), its remote wakeup enabled."""
    machine = _guest_with(guest_factory, "usb-keyboard", USB_KEYBOARD_ARGS)
    if not machine.run("modinfo -n usbhid xhci_pci").ok:
        pytest.skip("the guest image has no USB drivers: run with --guest-profile devices")
    driven = machine.run("grep -q 'QEMU USB Keyboard' /proc/bus/input/devices")
    assert driven.ok, "the guest's xhci_pci and usbhid drivers did not bind the USB keyboard"
    series = power_cycle(S3_KEY_USB, machine=machine)
    _unsupported_or_pass(series.reason, series.verdict, "xhci_wakeup")


@BY_HAND
@pytest.mark.s3
def test_wake_by_virtio_key(power_cycle: PowerCycle, guest_factory: Callable[..., Machine]) -> None:
    """A key press on a virtio keyboard (virtio-keyboard-pci), its wakeup enabled."""
    machine = _guest_with(guest_factory, "virtio-keyboard", VIRTIO_KEYBOARD_ARGS)
    driven = machine.run("grep -q 'QEMU Virtio Keyboard' /proc/bus/input/devices")
    assert driven.ok, "the guest's virtio_input driver did not bind the virtio keyboard"
    series = power_cycle(S3_KEY_VIRTIO, machine=machine)
    _unsupported_or_pass(series.reason, series.verdict, "virtio_input_handle_event")
