"""How a sleeping guest is brought back: woken from RAM by the host, by the RTC or by a key,
relaunched (S4, a power loss), or left to restore itself; each waits until the guest's agent
and ssh answer again."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from harness.errors import GuestFault, HarnessError, SetupError, StateUnsupported, WakeTimeout
from harness.machines.protocol import Machine, PlatformRecords, Signal
from harness.progress import waiting
from harness.transitions.marks import Marks


class Wake(Protocol):
    @property
    def keeps_vm_process(self) -> bool:
        """The same VM process runs before and after, so host-side connections survive."""
        ...

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        """Bring the sleeping guest back until its agent and ssh answer."""
        ...


def require_signal(
    machine: PlatformRecords, signal: Signal, marks: Marks, timeout: float, stage: str
) -> None:
    with waiting(f"{stage} ({signal.value})", timeout):
        event = machine.wait_signal(signal, marks.events, timeout)
    if event is None:
        raise WakeTimeout(
            stage,
            f"no {signal.value} signal within {timeout:.0f}s; console: {machine.serial_tail()}",
        )


def _require_console(
    machine: PlatformRecords, pattern: str, marks: Marks, timeout: float, stage: str
) -> None:
    with waiting(f"{stage} (console: {pattern})", timeout):
        said = machine.console.wait_for(re.compile(pattern), marks.console, timeout)
    if said is None:
        raise WakeTimeout(
            stage,
            f"the guest never printed '{pattern}' within "
            f"{timeout:.0f}s; console: {machine.serial_tail()}",
        )


def wait_guest_ready(machine: Machine, timeout: float, timings: dict[str, float]) -> None:
    try:
        with waiting("resume (agent, ssh)", timeout):
            ready = machine.wait_ready("resume", timeout)
    except GuestFault:
        raise  # named already (a panic, a stalled CPU): not a timeout
    except HarnessError as exc:
        raise WakeTimeout("resume", str(exc)) from exc
    timings.update({f"resume_{k}": v for k, v in ready.items()})


@dataclass(frozen=True)
class SystemWakeup:
    """Host wake from RAM: QMP system_wakeup (libvirt: dompmwakeup)."""

    keeps_vm_process: ClassVar[bool] = True

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        machine.wake_from_ram()
        require_signal(machine, Signal.WOKEN, marks, machine.timeouts.wake, "wake")
        wait_guest_ready(machine, machine.timeouts.agent, timings)


@dataclass(frozen=True, kw_only=True)
class AwaitPlatformWake:
    """A wake source inside the platform (the RTC alarm, ``after_seconds`` after the request):
    the host does nothing but wait."""

    after_seconds: float
    keeps_vm_process: ClassVar[bool] = True

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        limit = self.after_seconds + machine.timeouts.wake
        require_signal(machine, Signal.WOKEN, marks, limit, "rtc-wake")
        wait_guest_ready(machine, machine.timeouts.agent, timings)


@dataclass(frozen=True)
class SendKey:
    """Wake from suspend-to-idle with a key press (i8042 wakeup enabled by the request)."""

    key: str = "shift"
    keeps_vm_process: ClassVar[bool] = True

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        machine.send_key(self.key)
        _require_console(machine, r"PM: suspend exit", marks, machine.timeouts.wake, "wake")
        wait_guest_ready(machine, machine.timeouts.agent, timings)


@dataclass(frozen=True)
class Relaunch:
    """S4 resume: start the VM again on the same disks; the kernel loads its image."""

    keeps_vm_process: ClassVar[bool] = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        relaunch_and_wait(machine, timings)


KERNEL_BANNER = "Linux version "  # a kernel's first console line


def relaunch_and_wait(machine: Machine, timings: dict[str, float]) -> None:
    """Power on, wait for the resumed guest, and time the part of the wait that the resume
    kernel's own clock does not count: from the launch to its first line (QEMU starting, the
    firmware, the kernel decompressing itself), as ``relaunch_to_kernel``."""
    since = machine.console.mark()
    launched = time.monotonic()
    machine.power_on()
    wait_guest_ready(machine, machine.timeouts.resume, timings)
    first = next(
        (t for t, line in machine.console.seen_since(since) if KERNEL_BANNER in line), None
    )
    if first is not None:
        timings["relaunch_to_kernel"] = first - launched


@dataclass(frozen=True)
class PowerLossRelaunch:
    """Hybrid sleep's second ending: power is lost while in RAM; the disk image must serve."""

    keeps_vm_process: ClassVar[bool] = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        machine.power_cut()
        relaunch_and_wait(machine, timings)


@dataclass(frozen=True)
class AwaitGuestResume:
    """The guest comes back by itself (hibernation modes reboot and test_resume), proven by
    the kernel line ``pattern``."""

    pattern: str = r"hibernation: hibernation exit|PM: hibernation exit"
    keeps_vm_process: ClassVar[bool] = True

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        _require_console(machine, self.pattern, marks, machine.timeouts.resume, "resume")
        wait_guest_ready(machine, machine.timeouts.resume, timings)


# A wake source's own bound: QEMU emits WAKEUP from its main loop as soon as a device asks for
# the wake, before any guest code runs, so a source that wakes does so within a second even
# under TCG; the bound leaves an order of magnitude of room for a loaded host.
WAKE_SOURCE_S = 15.0
# The keyboards a host key press may reach, by QOM type. QEMU gives an unaddressed key to the
# keyboard whose input handler was activated last (a USB or virtio keyboard over the PS/2 one).
KEYBOARD_TYPES = {"usb": "usb-kbd", "virtio": "virtio-keyboard-pci"}
PERIPHERALS = ("/machine/peripheral", "/machine/peripheral-anon")


def keyboards_present(machine: Machine) -> set[str]:
    """Which of KEYBOARD_TYPES' keyboards the VM has (its -device list, read from QOM)."""
    listing = "\n".join(machine.hmp(f"qom-list {path}") for path in PERIPHERALS)
    return {k for k, t in KEYBOARD_TYPES.items() if f"(child<{t}>)" in listing}


def _press_key(machine: Machine) -> None:
    machine.send_key("shift")


def _press_power_button(machine: Machine) -> None:
    machine.hmp("system_powerdown")


@dataclass(frozen=True, kw_only=True)
class WakeSource:
    """A device or button the host acts on to wake a guest in S3. ``keyboard`` is the one a
    key press must reach (``ps2`` when no other keyboard may take it; "" for a button);
    ``cannot_wake`` is QEMU's own reason when its model of the source has no wake path."""

    name: str
    action: str
    press: Callable[[Machine], None]
    keyboard: str = ""
    cannot_wake: str = ""

    def check_present(self, machine: Machine) -> None:
        """A key press must reach this source's keyboard and no other: a SetupError names
        the -device the case needs otherwise."""
        if not self.keyboard:
            return
        present = keyboards_present(machine)
        if self.keyboard == "ps2" and present:
            others = ", ".join(KEYBOARD_TYPES[k] for k in sorted(present))
            raise SetupError(
                f"{self.name}: the VM also has {others}, which would take the key press: "
                "run this case on a guest without it"
            )
        if self.keyboard != "ps2" and present != {self.keyboard}:
            raise SetupError(
                f"{self.name}: the VM must have exactly this keyboard "
                f"(-device {KEYBOARD_TYPES[self.keyboard]}), it has "
                f"{', '.join(KEYBOARD_TYPES[k] for k in sorted(present)) or 'none'}"
            )


PS2_KEYBOARD = WakeSource(
    name="PS/2 keyboard (i8042)",
    action="a key press (QMP send-key)",
    press=_press_key,
    keyboard="ps2",
)
USB_KEYBOARD = WakeSource(
    name="USB keyboard (usb-kbd on qemu-xhci)",
    action="a key press (QMP send-key)",
    press=_press_key,
    keyboard="usb",
    cannot_wake="QEMU's xHCI model answers a remote wake-up only on the bus "
    "(hcd-xhci.c xhci_wakeup: port link state U3 -> Resume and a port status change event) "
    "and never asks the machine to wake (no qemu_system_wakeup_request)",
)
VIRTIO_KEYBOARD = WakeSource(
    name="virtio keyboard (virtio-keyboard-pci)",
    action="a key press (QMP send-key)",
    press=_press_key,
    keyboard="virtio",
    cannot_wake="QEMU's virtio-input model only queues the event for the driver "
    "(virtio-input-hid.c virtio_input_handle_event -> virtio_input_send) and never asks the "
    "machine to wake (no qemu_system_wakeup_request)",
)
POWER_BUTTON = WakeSource(
    name="ACPI power button",
    action="a power button press (QMP system_powerdown)",
    press=_press_power_button,
    cannot_wake="QEMU's ACPI model only sets PWRBTN_STS and raises an SCI "
    "(hw/acpi/core.c acpi_pm1_evt_power_down) and never asks the machine to wake "
    "(no qemu_system_wakeup_request); the press waits for the next wake",
)


@dataclass(frozen=True)
class PressWakeSource:
    """Wake from S3 by a source other than the host's system_wakeup, proven by the platform's
    WAKEUP within WAKE_SOURCE_S. A source that does not wake in that bound is a FAIL naming
    it; one whose QEMU model has no wake path (``cannot_wake``) is UNSUPPORTED with QEMU's
    reason, once system_wakeup has brought the guest back, so that it is left as it was."""

    source: WakeSource
    bound_s: float = WAKE_SOURCE_S
    keeps_vm_process: ClassVar[bool] = True

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        source = self.source
        source.check_present(machine)
        pressed = time.monotonic()
        source.press(machine)
        with waiting(f"wake by the {source.name} ({Signal.WOKEN.value})", self.bound_s):
            event = machine.wait_signal(Signal.WOKEN, marks.events, self.bound_s)
        if event is not None:
            timings["source_to_wakeup"] = time.monotonic() - pressed
            wait_guest_ready(machine, machine.timeouts.agent, timings)
            return
        silent = f"no WAKEUP within {self.bound_s:.0f}s of {source.action}"
        if not source.cannot_wake:
            raise WakeTimeout(
                "wake",
                f"the {source.name} did not wake the guest: {silent}; "
                f"console: {machine.serial_tail()}",
            )
        machine.wake_from_ram()
        require_signal(machine, Signal.WOKEN, marks, machine.timeouts.wake, "wake")
        wait_guest_ready(machine, machine.timeouts.agent, timings)
        raise StateUnsupported(
            f"the {source.name} cannot wake an S3 guest on this QEMU: {source.cannot_wake}; "
            f"{silent}, and system_wakeup then woke the guest"
        )
