"""Paths across versions, as a host upgrade takes a guest: libvirt-guests saves it on the
stable stack as the host shuts down, the host comes back with a newer libvirt and QEMU, and
the newer stack restores it; or a guest asleep in S3 is migrated to a newer QEMU and woken
there. Each is a Transition like any other, so the same cycle runs it and the same checks
judge it; only the wake differs: the saved guest is first handed to the newer stack
(``Across``), which the composition root supplies as ``cross``.

The hand-over is recorded as a ``CROSSED`` event whose data name both sides (versions, the
pinned machine type, where the saved state went), so that the report and the case's own
expectations read what crossed, and in which direction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.errors import WakeTimeout
from harness.machines.protocol import Machine, Signal
from harness.transitions.catalogue import S3_AGENT, S3_ENTRY, S3_EVENTS, S3_NEEDS, S3_RECORDS
from harness.transitions.host import (
    ANY_GUEST,
    CROSSED_EVENTS,
    SAVED_ENTRY,
    SAVED_EVENTS,
    HostRestart,
    HostSave,
    SuspendedThenHost,
    still_in_s3,
)
from harness.transitions.marks import Marks
from harness.transitions.parts import K_S3_ENTRY, Transition
from harness.transitions.wakes import Wake, require_signal, wait_guest_ready

CROSSED = "CROSSED"  # the event recording a hand-over to another stack
LATE_WAKEUP = "after-completion"  # a source QEMU that woke the guest after the stream ended
# Hands the saved (or sleeping) guest to the other stack; what crossed, for the CROSSED event.
Cross = Callable[[Machine], dict[str, Any]]
# QEMU 9.0 and later keep a suspended guest's run state across a migration, and so across
# libvirt's save and restore (QEMU's "migration: preserve suspended runstate"); before 9.0,
# the outgoing QEMU woke the guest as the migration completed.
KEEPS_S3_ACROSS_MIGRATION_SINCE = (9, 0)


def keeps_s3_across_migration(qemu_version: str) -> bool:
    """Whether QEMU ``qemu_version`` (the one that saves or sends the guest) leaves a guest in
    S3 asleep in the stream, rather than waking it on the way."""
    major, minor = (int(part) for part in qemu_version.split(".")[:2])
    return (major, minor) >= KEEPS_S3_ACROSS_MIGRATION_SINCE


@dataclass(frozen=True)
class Across:
    """The host is upgraded between the save and the restart: ``cross`` hands the saved guest
    to the other stack (a CROSSED event with what it said), then ``then`` restarts it there."""

    cross: Cross
    then: Wake
    keeps_vm_process: ClassVar[bool] = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        started = time.monotonic()
        facts = self.cross(machine)
        timings["cross"] = time.monotonic() - started
        machine.events.append(CROSSED, facts)
        self.then.perform(machine, marks, timings)


@dataclass(frozen=True)
class WakeIfAsleep:
    """After a migration of a guest in S3: one the destination QEMU still holds in S3 is
    woken there (system_wakeup); one the source QEMU woke on the way (before 9.0 it does)
    is running already and is only waited for."""

    keeps_vm_process: ClassVar[bool] = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        since = Marks.now(machine)
        if still_in_s3(machine):
            machine.wake_from_ram()
            require_signal(machine, Signal.WOKEN, since, machine.timeouts.wake, "wake")
        crossed = last_crossed(machine, marks)
        if crossed.get("source_wakeup") != LATE_WAKEUP:
            wait_guest_ready(machine, machine.timeouts.agent, timings)
            return
        # A late wake-up may or may not have reached the stream: a guest that did resume
        # answers within seconds, one whose wake-up the stream lost never does, and the
        # wake's own limit is enough to tell them apart.
        try:
            wait_guest_ready(machine, machine.timeouts.wake, timings)
        except WakeTimeout as exc:
            raise WakeTimeout(
                "resume",
                f"the wake-up was lost across the migration: QEMU {crossed.get('from_qemu')} "
                "woke the guest only after the migration had completed (WAKEUP after "
                "MIGRATION completed), and the stream held it still entering S3 with a run "
                f"state of running; {exc}",
            ) from exc


def last_crossed(machine: Machine, marks: Marks) -> dict[str, Any]:
    """What the cycle's last hand-over said (its CROSSED event), or nothing."""
    found = [e for e in machine.events.since(marks.events) if e.name == CROSSED]
    return dict(found[-1].data) if found else {}


def managedsave_across(cross: Cross) -> Transition:
    """``managedsave`` on the stable stack, ``start`` on the newer one (libvirt-guests'
    ON_SHUTDOWN=suspend across a host upgrade)."""
    return Transition(
        id="managedsave-start-across",
        needs=ANY_GUEST,
        request=HostSave(action="managedsave"),
        entry=SAVED_ENTRY,
        wake=Across(cross, HostRestart("start")),
        expected_events=SAVED_EVENTS,
        resync_clock=True,
    )


def s3_then_save_across(cross: Cross) -> Transition:
    """A guest in S3 (dompmsuspend mem) saved by the stable stack, restored by the newer one
    and woken there if it still sleeps."""
    return Transition(
        id="s3-then-save-across",
        needs=S3_NEEDS,
        request=SuspendedThenHost("save"),
        entry=SAVED_ENTRY,
        wake=Across(cross, HostRestart("restore")),
        expected_events=CROSSED_EVENTS,
        kernel_records=(K_S3_ENTRY,),
        resync_clock=True,
    )


def s3_migrated_across(cross: Cross, transition_id: str) -> Transition:
    """A guest put in S3 by its agent (guest-suspend-ram), migrated to another QEMU while it
    sleeps, then woken there."""
    return Transition(
        id=transition_id,
        needs=S3_NEEDS,
        request=S3_AGENT.request,
        entry=S3_ENTRY,
        wake=Across(cross, WakeIfAsleep()),
        expected_events=S3_EVENTS,
        kernel_records=S3_RECORDS,
        resync_clock=True,
    )


__all__ = [
    "CROSSED",
    "Across",
    "Cross",
    "WakeIfAsleep",
    "keeps_s3_across_migration",
    "managedsave_across",
    "s3_migrated_across",
    "s3_then_save_across",
]
