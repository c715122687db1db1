"""Host-side lifecycle paths that only libvirt offers, as transitions: dompmsuspend, save and
restore (also restored twice from one image), managedsave and start, snapshot --halt and
revert, and the crossed paths where a guest already in S3 is saved or snapshotted.

Each is a Transition like the in-guest paths, so the same cycle runs it and the same checks
judge it; the domain's state after each host step is recorded as a ``STATE`` event.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import StateUnsupported
from harness.machines.protocol import HostLifecycle, Machine, Signal
from harness.transitions.catalogue import (
    HYBRID_ENTRY,
    HYBRID_NEEDS,
    HYBRID_RAM_RECORDS,
    S3_ENTRY,
    S3_EVENTS,
    S3_NEEDS,
    S3_RECORDS,
    S4_ENTRY,
    S4_EVENTS,
    S4_NEEDS,
    S4_RECORDS,
)
from harness.transitions.entries import PlatformEntry, check_answer
from harness.transitions.marks import Marks
from harness.transitions.parts import K_S3_ENTRY, Needs, Rewake, Transition
from harness.transitions.wakes import Relaunch, SystemWakeup, require_signal, wait_guest_ready

SNAPSHOT_NAME = "s3s4-halt"
DISKS_AT_SAVE = "s3s4-at-save"
ANY_GUEST = Needs(power_states=())  # host paths ask nothing of the guest's power states
SAVED_ENTRY = PlatformEntry(signals=(Signal.SAVED,))
SAVED_EVENTS = (Signal.SAVED, Signal.RESTORED)
CROSSED_EVENTS = (Signal.SUSPENDED, Signal.SAVED, Signal.RESTORED)


def host_of(machine: Machine) -> HostLifecycle:
    """The machine's host-side paths; UNSUPPORTED under a backend that has none."""
    host = machine.host_lifecycle
    if host is None:
        raise StateUnsupported(
            f"{machine.name}: host-side lifecycle paths need the libvirt backend "
            "(the libvirt cases use it; --backend libvirt for the rest)"
        )
    return host


def _save_action(host: HostLifecycle, action: str) -> None:
    if action == "save":
        host.save()
    elif action == "managedsave":
        host.managed_save()
    elif action == "snapshot-halt":
        host.snapshot_halt(SNAPSHOT_NAME)
    else:
        raise ValueError(f"unknown save action {action!r}")
    host.note_state(action)


# -- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostPmSuspend:
    """``virsh dompmsuspend --target mem|disk|hybrid`` (libvirt asks the guest agent)."""

    target: str

    @property
    def description(self) -> str:
        return f"virsh dompmsuspend --target {self.target}"

    def send(self, machine: Machine) -> concurrent.futures.Future[object]:
        return host_of(machine).pm_suspend(self.target)


@dataclass(frozen=True, kw_only=True)
class HostSave:
    """The host saves the running guest's state and stops it: save, managedsave or
    snapshot-create --halt; with ``snapshot_disks`` the stopped disks are snapshotted too, so
    that the save image can be restored again later on the same disk state."""

    action: str
    snapshot_disks: bool = False

    @property
    def description(self) -> str:
        return f"virsh {self.action.replace('-halt', '-create --halt')}"

    def send(self, machine: Machine) -> None:
        host = host_of(machine)
        _save_action(host, self.action)
        if self.snapshot_disks:
            host.snapshot_disks(DISKS_AT_SAVE)


@dataclass(frozen=True)
class SuspendedThenHost:
    """Crossed path: the guest is put in S3 (dompmsuspend mem), then the host saves it.

    A refusal by libvirt (snapshots of PMSUSPENDED guests) is UNSUPPORTED with libvirt's text,
    after waking the guest so that it is left usable.
    """

    action: str

    @property
    def description(self) -> str:
        return f"virsh dompmsuspend --target mem, then {HostSave(action=self.action).description}"

    def send(self, machine: Machine) -> None:
        host = host_of(machine)
        marks = Marks.now(machine)
        answer = host.pm_suspend("mem")
        # The same proof as any S3 entry: libvirt's refusal or a guest that resumed by itself
        # is seen at once, not after the whole entry limit.
        S3_ENTRY.wait(machine, marks, answer, self.description)
        check_answer(answer, self.description)
        host.note_state("dompmsuspend")
        try:
            _save_action(host, self.action)
        except StateUnsupported:
            machine.wake_from_ram()
            wait_guest_ready(machine, machine.timeouts.agent, {})
            raise


# -- wakes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostRestart:
    """The host starts the guest from its saved state: ``restore``, ``start`` (the managed
    save) or ``revert`` (the snapshot). A guest that comes back paused is resumed, one that
    comes back in S3 is woken; both are recorded as STATE events."""

    action: str
    keeps_vm_process: ClassVar[bool] = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        host = host_of(machine)
        started = Marks.now(machine)  # the save's own STOPPED event lies before this
        if self.action == "restore":
            host.restore()
        elif self.action == "start":
            machine.power_on()
        else:
            host.revert(SNAPSHOT_NAME)
        require_signal(machine, Signal.RESTORED, started, machine.timeouts.wake, self.action)
        state = host.note_state(self.action)
        if state.startswith("paused"):
            host.resume()
            state = host.note_state("resume")
        if state.startswith("pmsuspended") or still_in_s3(machine):
            machine.wake_from_ram()
            host.note_state("dompmwakeup")
        # The guest's memory is restored as it was: only its agent has to answer again.
        wait_guest_ready(machine, machine.timeouts.agent, timings)


def still_in_s3(machine: Machine) -> bool:
    """QEMU's own run state is ``suspended``. QEMU 9.0 and later keep a guest in S3 across
    save and restore; libvirt, which learns of S3 only from QEMU's SUSPEND event, then calls
    the resumed guest running although it still sleeps."""
    return "(suspended)" in machine.hmp("info status")


def revert_disks_to_save(machine: Machine) -> None:
    """Stop the guest and put its disks back to the state they had when it was saved."""
    host = host_of(machine)
    machine.stop()
    host.revert_disks(DISKS_AT_SAVE)


# -- the paths -----------------------------------------------------------------------------

DOMPM_MEM = Transition(
    id="dompmsuspend-mem",
    needs=S3_NEEDS,
    request=HostPmSuspend("mem"),
    entry=S3_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)
DOMPM_DISK = Transition(
    id="dompmsuspend-disk",
    needs=S4_NEEDS,
    request=HostPmSuspend("disk"),
    entry=S4_ENTRY,
    wake=Relaunch(),
    expected_events=S4_EVENTS,
    kernel_records=S4_RECORDS,
)
DOMPM_HYBRID = Transition(
    id="dompmsuspend-hybrid",
    needs=HYBRID_NEEDS,
    request=HostPmSuspend("hybrid"),
    entry=HYBRID_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=HYBRID_RAM_RECORDS,
)
SAVE_RESTORE = Transition(
    id="save-restore",
    needs=ANY_GUEST,
    request=HostSave(action="save"),
    entry=SAVED_ENTRY,
    wake=HostRestart("restore"),
    expected_events=SAVED_EVENTS,
    resync_clock=True,
)
SAVE_RESTORE_TWICE = Transition(
    id="save-restore-twice",
    needs=ANY_GUEST,
    request=HostSave(action="save", snapshot_disks=True),
    entry=SAVED_ENTRY,
    wake=HostRestart("restore"),
    expected_events=SAVED_EVENTS,
    resync_clock=True,
    then=(
        Rewake(
            description="destroy, revert the disks to the save, restore the same image again",
            prepare=revert_disks_to_save,
            expected_events=(Signal.RESTORED,),
        ),
    ),
)
MANAGEDSAVE_START = Transition(
    id="managedsave-start",
    needs=ANY_GUEST,
    request=HostSave(action="managedsave"),
    entry=SAVED_ENTRY,
    wake=HostRestart("start"),
    expected_events=SAVED_EVENTS,
    resync_clock=True,
)
SNAPSHOT_HALT_REVERT = Transition(
    id="snapshot-halt-revert",
    needs=ANY_GUEST,
    request=HostSave(action="snapshot-halt"),
    entry=SAVED_ENTRY,
    wake=HostRestart("revert"),
    expected_events=SAVED_EVENTS,
    resync_clock=True,
)
S3_THEN_SAVE = Transition(
    id="s3-then-save",
    needs=S3_NEEDS,
    request=SuspendedThenHost("save"),
    entry=SAVED_ENTRY,
    wake=HostRestart("restore"),
    expected_events=CROSSED_EVENTS,
    kernel_records=(K_S3_ENTRY,),
    resync_clock=True,
)
S3_THEN_MANAGEDSAVE = Transition(
    id="s3-then-managedsave",
    needs=S3_NEEDS,
    request=SuspendedThenHost("managedsave"),
    entry=SAVED_ENTRY,
    wake=HostRestart("start"),
    expected_events=CROSSED_EVENTS,
    kernel_records=(K_S3_ENTRY,),
    resync_clock=True,
)
S3_THEN_SNAPSHOT = Transition(
    id="s3-then-snapshot-halt",
    needs=S3_NEEDS,
    request=SuspendedThenHost("snapshot-halt"),
    entry=SAVED_ENTRY,
    wake=HostRestart("revert"),
    expected_events=CROSSED_EVENTS,
    kernel_records=(K_S3_ENTRY,),
    resync_clock=True,
)

PATHS = (
    DOMPM_MEM,
    DOMPM_DISK,
    DOMPM_HYBRID,
    SAVE_RESTORE,
    SAVE_RESTORE_TWICE,
    MANAGEDSAVE_START,
    SNAPSHOT_HALT_REVERT,
    S3_THEN_SAVE,
    S3_THEN_MANAGEDSAVE,
    S3_THEN_SNAPSHOT,
)
