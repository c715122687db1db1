"""How a sleeping guest is brought back: woken from RAM by the host, by the RTC or by a key,
relaunched (S4, a power loss), or left to restore itself; each waits until the guest's agent
and ssh answer again."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import ClassVar, Protocol

from harness.errors import GuestFault, HarnessError, WakeTimeout
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
