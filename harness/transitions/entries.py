"""What proves a sleep was entered: a platform signal QEMU or libvirt saw, or the guest
kernel's own console line where the platform sees nothing. While waiting, a refusal from the
request, a guest that locked up, or one that resumed at once ends the wait with its cause."""

from __future__ import annotations

import concurrent.futures
import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from harness.errors import (
    AgentCommandError,
    GuestFault,
    GuestLockedUp,
    HarnessError,
    StateUnsupported,
    SuspendNotEntered,
)
from harness.guest.console.diagnosis import (
    GUEST_SAYS_RESUMED,
    DeviceRefusal,
    find_device_refusal,
    other_state_entered,
    state_label,
)
from harness.machines.pci_identity import pci_identity
from harness.machines.protocol import Machine, Signal
from harness.machines.vcpu_lockup import LockupWatch
from harness.progress import waiting
from harness.transitions.marks import Marks

WAIT_SLICE = 0.5  # a wait for entry also looks at the request's answer this often


# The request's answer, where it gives one: the agent answers a suspend request only to refuse it.
Answer: TypeAlias = "concurrent.futures.Future[object] | None"


class Entry(Protocol):
    def wait(self, machine: Machine, marks: Marks, answer: Answer, description: str) -> None:
        """Return once the sleep state is proven entered; raise SuspendNotEntered otherwise."""
        ...


EntryWait = Callable[[Any, Machine, Marks, Answer, str], None]


def _shown_as_wait(wait: EntryWait) -> EntryWait:
    """An entry's wait, reported (if it lasts) as the wait for suspend-entry, bounded by the
    entry's ``limit``."""

    @functools.wraps(wait)
    def shown(entry: Any, machine: Machine, marks: Marks, answer: Answer, description: str) -> None:
        with waiting(f"suspend-entry ({description})", getattr(machine.timeouts, entry.limit)):
            wait(entry, machine, marks, answer, description)

    return shown


@dataclass(frozen=True, kw_only=True)
class PlatformEntry:
    """Entry proven by what the platform sees: one signal, then optionally more (S4: power-off),
    each within the ``limit`` named in Timeouts."""

    signals: tuple[Signal, ...]
    limit: str = "suspend_entry"
    kernel_state: str = ""  # the suspend state the guest kernel must announce (deep, shallow)

    @_shown_as_wait
    def wait(self, machine: Machine, marks: Marks, answer: Answer, description: str) -> None:
        limit = getattr(machine.timeouts, self.limit)
        deadline = time.monotonic() + limit
        first, *rest = self.signals
        watch = machine.lockup_watch()
        while machine.wait_signal(first, marks.events, WAIT_SLICE) is None:
            check_answer(answer, description)
            check_state_entered(machine, marks, self.kernel_state, description)
            check_device_refused(machine, marks, description)
            check_not_locked_up(watch, description)
            said = machine.console.lines_since(marks.console)
            resumed = [line for line in said if GUEST_SAYS_RESUMED.search(line)]
            if resumed:
                refused, evidence = named_refusal(machine, marks)
                raise SuspendNotEntered(
                    "suspend-entry",
                    f"{description}: the guest kernel reports it slept and "
                    f"resumed ('{resumed[0].strip()}') but the platform never saw {first.value}"
                    + (f" after {refused}" if refused else ""),
                    evidence=evidence,
                )
            if time.monotonic() > deadline:
                raise SuspendNotEntered(
                    "suspend-entry",
                    f"{description} was sent but no {first.value} signal came "
                    f"within {limit:.0f}s; console: {machine.serial_tail()}",
                )
        for signal in rest:
            if (
                machine.wait_signal(
                    signal, marks.events, max(0.0, deadline - time.monotonic()) + limit
                )
                is None
            ):
                raise SuspendNotEntered(
                    f"{first.value}-then-{signal.value}",
                    f"no {signal.value} within {limit:.0f}s after "
                    f"{first.value}; console: {machine.serial_tail()}",
                )


@dataclass(frozen=True, kw_only=True)
class ConsoleEntry:
    """Entry proven by the guest kernel's own console line (QEMU sees nothing for s2idle)."""

    pattern: str
    limit: str = "suspend_entry"
    kernel_state: str = ""  # the suspend state the guest kernel must announce (s2idle)

    @_shown_as_wait
    def wait(self, machine: Machine, marks: Marks, answer: Answer, description: str) -> None:
        limit = getattr(machine.timeouts, self.limit)
        deadline = time.monotonic() + limit
        pattern = re.compile(self.pattern)
        watch = machine.lockup_watch()
        while machine.console.wait_for(pattern, marks.console, WAIT_SLICE) is None:
            check_answer(answer, description)
            check_state_entered(machine, marks, self.kernel_state, description)
            check_device_refused(machine, marks, description)
            check_not_locked_up(watch, description)
            if time.monotonic() > deadline:
                raise SuspendNotEntered(
                    "suspend-entry",
                    f"{description} was sent but the guest never printed "
                    f"'{self.pattern}' within {limit:.0f}s; console: {machine.serial_tail()}",
                )


@dataclass(frozen=True, kw_only=True)
class ExplainedEntry:
    """``inner``'s wait; where it ends in SuspendNotEntered, ``cause`` may name the real cause
    instead (a subclass's second look at what the guest said)."""

    inner: Entry

    def wait(self, machine: Machine, marks: Marks, answer: Answer, description: str) -> None:
        try:
            self.inner.wait(machine, marks, answer, description)
        except SuspendNotEntered as exc:
            named = self.cause(machine, marks, description)
            if named is None:
                raise
            raise named from exc

    def cause(self, machine: Machine, marks: Marks, description: str) -> HarnessError | None:
        """The error that names why the entry was not seen, or None to keep the entry's own."""
        return None


def check_state_entered(machine: Machine, marks: Marks, asked: str, description: str) -> None:
    """A guest whose kernel announces another suspend state than the one asked for (its
    mem_sleep default is s2idle, so a request for S3 idles instead) will never show the
    asked state's proof: its own console line is the verdict, at once."""
    if not asked:
        return
    entered = other_state_entered(machine.console.lines_since(marks.console), asked)
    if entered is None:
        return
    state, line = entered
    # A device that refused the asked state is why a guest falls back to another
    # (systemd-sleep tries its next SuspendState): it is named with the verdict.
    refused, evidence = named_refusal(machine, marks)
    raise SuspendNotEntered(
        "suspend-entry",
        f"{description} was sent, but the guest kernel entered {state_label(state)} instead "
        f"of {state_label(asked)} ('{line}')" + (f" after {refused}" if refused else ""),
        evidence={**evidence, "entered_state": state, "asked_state": asked},
    )


def check_device_refused(machine: Machine, marks: Marks, description: str) -> None:
    """A device whose driver refused to freeze ends a hibernation at once (the kernel thaws
    everything and returns; nothing falls back to another state): the kernel's line naming
    it is the verdict. A refused suspend is named with what the guest does next (it may
    fall back to another state), by the checks that see that."""
    refusal = find_device_refusal(machine.console.lines_since(marks.console))
    if refusal is not None and refusal.action == "freeze":
        refused, evidence = named_refusal(machine, marks)
        raise SuspendNotEntered(
            "suspend-entry", f"{description} was sent, but {refused}", evidence=evidence
        )


def named_refusal(machine: Machine, marks: Marks) -> tuple[str, dict[str, str]]:
    """The first device the console says refused to sleep since ``marks``, described with
    what it is (QEMU's view of its PCI address), and the evidence naming it; ("", {})."""
    refusal = find_device_refusal(machine.console.lines_since(marks.console))
    if refusal is None:
        return "", {}
    evidence = {"refused_device": refusal.name, "refused_action": refusal.action}
    return refusal.describe(device_identity(machine, refusal)), evidence


def device_identity(machine: Machine, refusal: DeviceRefusal) -> str:
    """What the refusing device is, by QEMU's list of PCI devices; "" if QEMU cannot say."""
    try:
        return pci_identity(machine.hmp("info pci"), refusal.device)
    except HarnessError:
        return ""


def check_not_locked_up(watch: LockupWatch, description: str) -> None:
    """A guest that locked up on its way to sleep will not get there: say so now."""
    if lockup := watch.check():
        raise GuestLockedUp("suspend-entry", f"{description} was sent, then {lockup}")


def check_answer(answer: concurrent.futures.Future[object] | None, description: str) -> None:
    """The agent only answers a suspend request to refuse it: turn that into the verdict."""
    if answer is None or not answer.done():
        return
    try:
        answer.result(timeout=0)
    except StateUnsupported:
        raise
    except AgentCommandError as exc:
        if "not supported" in exc.desc:
            raise StateUnsupported(f"{description}: {exc.desc}") from exc
        raise GuestFault("request", str(exc)) from exc
    except concurrent.futures.CancelledError:
        return
    except HarnessError as exc:
        raise GuestFault("request", str(exc)) from exc
