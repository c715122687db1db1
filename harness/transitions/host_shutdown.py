"""A host's shutdown of a guest that sleeps on its power key, reported as what the guest did.

``virsh shutdown`` without ``--mode`` follows libvirt's order: the guest agent's
``guest-shutdown`` where the domain has an agent (the harness's domains do), the ACPI power
button otherwise. Through the agent the guest powers off although logind would have put it to
sleep on the power key; through the power button (``--mode acpi``) logind does what
HandlePowerKey says, and a guest that suspends or hibernates was never shut off. Which path
the guest took is read from its own words: qemu-ga logs each shutdown it is asked for
("guest-shutdown called, mode: powerdown") and logind each press of the power key ("Power key
pressed"), and a watcher started before the request copies both to the kernel log, so that
the console keeps them after the guest is gone.
"""

from __future__ import annotations

import concurrent.futures
import shlex
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import GuestFault
from harness.machines.protocol import Machine, Signal
from harness.transitions.catalogue import S3_NEEDS, S4_EVENTS, S4_NEEDS, S4_RECORDS
from harness.transitions.guests_service import AgentStopped
from harness.transitions.host import host_of
from harness.transitions.logind import DID_INSTEAD, HostShutdown, LogindConfigured
from harness.transitions.marks import Marks
from harness.transitions.parts import Transition
from harness.transitions.requests import Request
from harness.transitions.wakes import Relaunch, wait_guest_ready

# The event in which the entry records what the host's shutdown did; the checks read it.
SHUTDOWN_WITNESSED = "SHUTDOWN_WITNESSED"
GUEST_SAID_TAG = "s3s4-shutdown-path"
AGENT_SHUTDOWN = "guest-shutdown called"  # qemu-ga's own log line for guest-shutdown
POWER_KEY_PRESSED = "Power key pressed"  # logind's, for the ACPI power button
# Both logs copied to the kernel log line by line as they are written. The watcher starts
# from the second it was asked for, not from whenever journalctl has opened the journal
# (seconds later under TCG, after the request may have been sent).
WATCH_SHUTDOWN_PATH = (
    "since=$(date +%s) && setsid -f sh -c "
    + shlex.quote(
        'journalctl -f --since="@$1" -o cat -t qemu-ga -t systemd-logind | while read -r line; '
        f'do echo "<5>{GUEST_SAID_TAG}: $line" > /dev/kmsg; done'
    )
    + ' watcher "$since" </dev/null >/dev/null 2>&1'
)


@dataclass(frozen=True)
class PlainShutdown:
    """``virsh shutdown`` with no ``--mode``: libvirt chooses (the agent first)."""

    description: ClassVar[str] = "virsh shutdown (no --mode: libvirt's default order)"

    def send(self, machine: Machine) -> None:
        host_of(machine).shutdown("default")


@dataclass(frozen=True, kw_only=True)
class ShutdownWitnessed:
    """A host shutdown's entry: the domain powered off, or hibernated (written its image and
    powered off), recorded with libvirt's state and the guest's own words about the path it
    took, for the checks to judge after the relaunch. A guest that suspended to RAM instead is
    a FAIL at once: it sleeps in RAM, and nothing relaunches it."""

    def wait(
        self,
        machine: Machine,
        marks: Marks,
        answer: concurrent.futures.Future[object] | None,
        description: str,
    ) -> None:
        limit = machine.timeouts.suspend_entry
        wanted = (*DID_INSTEAD, Signal.POWERED_OFF.value)
        event = machine.events.wait_for_signal(wanted, marks.events, limit)
        if event is None:
            raise GuestFault(
                "shutdown",
                f"{description}: the guest neither powered off nor slept within {limit:.0f}s; "
                f"console: {machine.serial_tail()}",
            )
        host = host_of(machine)
        if Signal.SUSPENDED.value in event.signals:
            state = host.note_state(description)
            raise GuestFault(
                "shutdown",
                f"{description}: the guest {DID_INSTEAD[Signal.SUSPENDED.value]}, not shut off "
                f"({event.name}; libvirt's state {state}): its power key is handled as sleep",
            )
        if Signal.HIBERNATED.value in event.signals:
            off = machine.events.wait_for_signal(
                (Signal.POWERED_OFF.value,), marks.events, machine.timeouts.hibernate
            )
            if off is None:
                raise GuestFault(
                    "shutdown",
                    f"{description}: the guest began to hibernate ({event.name}) and did not "
                    f"power off within {machine.timeouts.hibernate:.0f}s",
                )
        state = host.note_state(description)
        said = [
            line.split(f"{GUEST_SAID_TAG}: ", 1)[1].strip()
            for line in machine.console.lines_since(marks.console)
            if f"{GUEST_SAID_TAG}: " in line
        ]
        machine.events.append(
            SHUTDOWN_WITNESSED,
            {"asked": description, "did": event.name, "state": state, "guest_said": said},
        )


@dataclass(frozen=True)
class FreshStart:
    """Back from a shutdown: ``virsh start``, a cold boot, waited for within the boot limit."""

    keeps_vm_process: ClassVar[bool] = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        machine.power_on()
        wait_guest_ready(machine, machine.timeouts.boot, timings)


def _watched(then: Request, power_key: str) -> LogindConfigured:
    return LogindConfigured(
        then=then, settings=(("HandlePowerKey", power_key),), prepare=WATCH_SHUTDOWN_PATH
    )


VIRSH_SHUTDOWN_DEFAULT_POWERKEY_SUSPEND = Transition(
    id="virsh-shutdown-default-powerkey-suspend",
    needs=S3_NEEDS,
    request=_watched(PlainShutdown(), "suspend"),
    entry=ShutdownWitnessed(),
    wake=FreshStart(),
    expected_events=(Signal.POWERED_OFF,),
)
VIRSH_SHUTDOWN_ACPI_POWERKEY_HIBERNATE = Transition(
    id="virsh-shutdown-acpi-powerkey-hibernate",
    needs=S4_NEEDS,
    request=_watched(HostShutdown("acpi"), "hibernate"),
    entry=ShutdownWitnessed(),
    wake=Relaunch(),
    expected_events=S4_EVENTS,
    kernel_records=S4_RECORDS,
)
# The fault: the same request on a guest whose agent is stopped. libvirt's order falls to the
# ACPI power button, and the guest suspends: a FAIL that says so at the entry.
VIRSH_SHUTDOWN_DEFAULT_NO_AGENT = Transition(
    id="virsh-shutdown-default-no-agent-powerkey-suspend",
    needs=S3_NEEDS,
    request=_watched(AgentStopped(PlainShutdown()), "suspend"),
    entry=ShutdownWitnessed(),
    wake=FreshStart(),
    expected_events=(Signal.POWERED_OFF,),
)
