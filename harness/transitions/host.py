"""Host-side lifecycle paths that only libvirt offers, as transitions: dompmsuspend, save and
restore (also restored twice from one image), managedsave and start, snapshot --halt and
revert, and the crossed paths where a guest already in S3 is saved or snapshotted.

Each is a Transition like the in-guest paths, so the same cycle runs it and the same checks
judge it; the domain's state after each host step is recorded as a ``STATE`` event.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from harness.errors import StateUnsupported
from harness.machines.protocol import HostLifecycle, Machine, Signal
from harness.transitions.catalogue import (
    HYBRID_ENTRY,
    HYBRID_NEEDS,
    HYBRID_RAM_RECORDS,
    K_S3_ENTRY,
    S3_ENTRY,
    S3_EVENTS,
    S3_NEEDS,
    S3_RECORDS,
    S4_ENTRY,
    S4_EVENTS,
    S4_NEEDS,
    S4_RECORDS,
    Marks,
    Needs,
    PlatformEntry,
    Relaunch,
    Rewake,
    SystemWakeup,
    Transition,
    check_answer,
    require_signal,
    wait_guest_ready,
)

SNAPSHOT_NAME = "s3s4-halt"
DISKS_AT_SAVE = "s3s4-at-save"
ANY_GUEST = Needs(())  # host paths ask nothing of the guest's power states
SAVED_ENTRY = PlatformEntry((Signal.SAVED,))
SAVED_EVENTS = (Signal.SAVED, Signal.RESTORED)


def host_of(machine: Machine) -> HostLifecycle:
    if not isinstance(machine, HostLifecycle):
        raise StateUnsupported(
            f"{machine.name}: host-side lifecycle paths need the libvirt backend "
            "(the libvirt cases use it; --backend libvirt for the rest)"
        )
    return machine


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


@dataclass(frozen=True)
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
        return f"virsh dompmsuspend --target mem, then {HostSave(self.action).description}"

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
    """The host starts the guest from its saved state: restore, start (managed save) or
    snapshot revert. A guest that comes back paused is resumed, one that comes back in S3 is
    woken; both are recorded as STATE events."""

    action: str
    keeps_vm_process: bool = False

    @property
    def description(self) -> str:
        return {
            "restore": "virsh restore",
            "start": "virsh start (restores the managed save)",
            "revert": "virsh snapshot-revert",
        }[self.action]

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
            host.note_state("resume")
        elif state.startswith("pmsuspended"):
            machine.wake_from_ram()
            host.note_state("dompmwakeup")
        # The guest's memory is restored as it was: only its agent has to answer again.
        wait_guest_ready(machine, machine.timeouts.agent, timings)


def revert_disks_to_save(machine: Machine) -> None:
    """Stop the guest and put its disks back to the state they had when it was saved."""
    host = host_of(machine)
    machine.stop()
    host.revert_disks(DISKS_AT_SAVE)


# -- the paths -----------------------------------------------------------------------------

DOMPM_MEM = Transition(
    "dompmsuspend-mem",
    S3_NEEDS,
    HostPmSuspend("mem"),
    S3_ENTRY,
    SystemWakeup("virsh dompmwakeup"),
    S3_EVENTS,
    S3_RECORDS,
    ("s3", "libvirt"),
)
DOMPM_DISK = Transition(
    "dompmsuspend-disk",
    S4_NEEDS,
    HostPmSuspend("disk"),
    S4_ENTRY,
    Relaunch("virsh start"),
    S4_EVENTS,
    S4_RECORDS,
    ("s4", "libvirt"),
)
DOMPM_HYBRID = Transition(
    "dompmsuspend-hybrid",
    HYBRID_NEEDS,
    HostPmSuspend("hybrid"),
    HYBRID_ENTRY,
    SystemWakeup("virsh dompmwakeup"),
    S3_EVENTS,
    HYBRID_RAM_RECORDS,
    ("hybrid", "libvirt"),
)
SAVE_RESTORE = Transition(
    "save-restore",
    ANY_GUEST,
    HostSave("save"),
    SAVED_ENTRY,
    HostRestart("restore"),
    SAVED_EVENTS,
    (),
    ("libvirt",),
    resync_clock=True,
)
SAVE_RESTORE_TWICE = Transition(
    "save-restore-twice",
    ANY_GUEST,
    HostSave("save", snapshot_disks=True),
    SAVED_ENTRY,
    HostRestart("restore"),
    SAVED_EVENTS,
    (),
    ("libvirt",),
    resync_clock=True,
    then=(
        Rewake(
            "destroy, revert the disks to the save, restore the same image again",
            revert_disks_to_save,
            (Signal.RESTORED,),
        ),
    ),
)
MANAGEDSAVE_START = Transition(
    "managedsave-start",
    ANY_GUEST,
    HostSave("managedsave"),
    SAVED_ENTRY,
    HostRestart("start"),
    SAVED_EVENTS,
    (),
    ("libvirt",),
    resync_clock=True,
)
SNAPSHOT_HALT_REVERT = Transition(
    "snapshot-halt-revert",
    ANY_GUEST,
    HostSave("snapshot-halt"),
    SAVED_ENTRY,
    HostRestart("revert"),
    SAVED_EVENTS,
    (),
    ("libvirt",),
    resync_clock=True,
)
S3_THEN_SAVE = Transition(
    "s3-then-save",
    S3_NEEDS,
    SuspendedThenHost("save"),
    SAVED_ENTRY,
    HostRestart("restore"),
    (Signal.SUSPENDED, Signal.SAVED, Signal.RESTORED),
    (K_S3_ENTRY,),
    ("s3", "libvirt", "crossed"),
    resync_clock=True,
)
S3_THEN_MANAGEDSAVE = Transition(
    "s3-then-managedsave",
    S3_NEEDS,
    SuspendedThenHost("managedsave"),
    SAVED_ENTRY,
    HostRestart("start"),
    (Signal.SUSPENDED, Signal.SAVED, Signal.RESTORED),
    (K_S3_ENTRY,),
    ("s3", "libvirt", "crossed"),
    resync_clock=True,
)
S3_THEN_SNAPSHOT = Transition(
    "s3-then-snapshot-halt",
    S3_NEEDS,
    SuspendedThenHost("snapshot-halt"),
    SAVED_ENTRY,
    HostRestart("revert"),
    (Signal.SUSPENDED, Signal.SAVED, Signal.RESTORED),
    (K_S3_ENTRY,),
    ("s3", "libvirt", "crossed"),
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
