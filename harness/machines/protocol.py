"""What the layers above may ask of a running machine, as small roles named after their
callers' needs; ``Machine`` is all of them, what every backend offers. ``HostLifecycle`` (the
host-side paths only a management layer has) and ``Checkpointable`` (ready checkpoints, the
session's concern) stand apart: a backend declares them beside ``Machine``."""

from __future__ import annotations

import concurrent.futures
import enum
from pathlib import Path
from typing import Any, Protocol

from harness.guest.console.log import ConsoleLog
from harness.guest.ssh import BinaryResult, CommandResult, EchoChannel, StreamDownload
from harness.machines.checkpoint import Checkpoint
from harness.machines.events import EventLog, RecordedEvent
from harness.machines.vcpu_lockup import LockupWatch
from harness.timeouts import Timeouts


class Signal(enum.Enum):
    """Platform-level facts a backend can observe from outside the guest."""

    SUSPENDED = "suspended"  # the guest entered S3 (QMP SUSPEND, libvirt PMSUSPEND)
    WOKEN = "woken"  # the guest left S3 (QMP WAKEUP, libvirt PMWAKEUP)
    HIBERNATED = "hibernated"  # the guest wrote its image and asked for S4 (SUSPEND_DISK)
    SHUTDOWN = "shutdown"  # the guest asked the platform to power off (QMP SHUTDOWN)
    POWERED_OFF = "powered-off"  # the VM process ended (or libvirt stopped the domain)
    RESET = "reset"  # the guest reset the platform (hibernation mode reboot)
    SAVED = "saved"  # the host saved the VM's state and stopped it (save, managedsave, snapshot)
    RESTORED = "restored"  # the host started the VM from saved state (restore, start, revert)


class GuestChannels(Protocol):
    """The ways into the guest's OS: ssh and the guest agent. Sleep requests, the checks'
    facts and the faults run in the guest through these."""

    def run(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> CommandResult:
        """Run a shell command in the guest over ssh."""
        ...

    def fetch(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> BinaryResult:
        """``run``, keeping the command's output as the bytes it wrote."""
        ...

    def agent_shell(self, script: str, timeout: float | None = None) -> CommandResult:
        """Run a shell script in the guest through the agent (guest-exec), not the network."""
        ...

    def agent_execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """An agent command and its answer, within ``timeout`` (default: the command bound)."""
        ...

    def agent_fire(
        self, command: str, arguments: dict[str, Any] | None = None
    ) -> concurrent.futures.Future[Any]:
        """An agent command whose answer may never come (guest-suspend-*), as a future."""
        ...

    def open_echo(self) -> EchoChannel:
        """A channel on the ssh connection that echoes what it is sent (TCP continuity)."""
        ...

    def open_stream(self, command: str) -> StreamDownload:
        """Start ``command`` in the guest and read its output in the background over ssh."""
        ...

    def close_ssh(self) -> None:
        """Close the ssh connection: what waits on it fails at once; the next command
        connects again."""
        ...


class PlatformRecords(Protocol):
    """What the host sees of the platform from outside the guest: its events, the serial
    console, its vCPUs. Entries and wakes wait on these; the cycle and the report keep them."""

    events: EventLog
    console: ConsoleLog
    serial_log: Path

    def serial_tail(self, lines: int = 3) -> str:
        """The last console lines, for one-line diagnoses."""
        ...

    def wait_signal(self, signal: Signal, since: int, timeout: float) -> RecordedEvent | None:
        """The first event at or after ``since`` that shows ``signal``; None on timeout."""
        ...

    def lockup_watch(self) -> LockupWatch:
        """A watch, for one wait, on the vCPUs locking up with interrupts disabled."""
        ...

    def hang_evidence(self, suffix: str) -> dict[str, str]:
        """For a guest that hangs: its screen and its vCPUs' local APICs and registers, saved
        beside the serial log; artifact name -> path (only those that could be taken)."""
        ...

    def platform_facts(self) -> dict[str, Any]:
        """Versions and settings seen from the host (e.g. QMP query-version)."""
        ...


class Lifecycle(Protocol):
    """A guest brought up until its agent and ssh answer, and stopped (the fixtures, the
    cycle, the wakes)."""

    def boot(self) -> dict[str, float]:
        """A ready guest on fresh disks; returns phase timings."""
        ...

    def ensure_ready(self) -> None:
        """Cold boot unless a guest is already up and answering."""
        ...

    def wait_ready(self, stage: str, timeout: float) -> dict[str, float]:
        """Wait until the agent and ssh answer again (after a wake or resume)."""
        ...

    def stop(self) -> None:
        """Stop the VM and close every connection to it."""
        ...


class PlatformControl(Protocol):
    """The host acting on the platform's power and input: how the wakes bring a guest back."""

    def wake_from_ram(self) -> None:
        """Wake a guest sleeping in RAM (QMP system_wakeup, libvirt dompmwakeup)."""
        ...

    def send_key(self, key: str) -> None:
        """Press and release a key on the guest's keyboard."""
        ...

    def power_on(self) -> None:
        """Start the VM again on the same disks and configuration (resume from S4)."""
        ...

    def power_cut(self) -> None:
        """End the VM at once, as a power loss would."""
        ...


class FaultInjection(Protocol):
    """What the host breaks on purpose, to show that a check or a stage can fail."""

    runtime_dir: Path  # the machine's private (0700) directory: a fault's sockets go there

    def set_link(self, up: bool) -> None:
        """Set the guest NIC's link state from the host."""
        ...

    def fail_data_disk_io(self) -> None:
        """Make every further I/O on the guest's scratch disk fail."""
        ...

    def replace_swap_disk(self) -> None:
        """Give the powered-off guest a freshly formatted swap disk (destroys an S4 image)."""
        ...

    def hmp(self, command: str) -> str:
        """A human monitor command; its output."""
        ...


class HostLifecycle(Protocol):
    """Host-side power paths that only a management layer (libvirt) offers."""

    def pm_suspend(self, target: str) -> concurrent.futures.Future[Any]:
        """``dompmsuspend --target mem|disk|hybrid``; completes once libvirt has its answer."""
        ...

    def save(self) -> Path:
        """``virsh save`` to the guest's own file; the domain stops."""
        ...

    def restore(self, path: Path | None = None) -> None:
        """``virsh restore`` from ``path`` (default: the last save)."""
        ...

    def managed_save(self) -> None: ...

    def has_managed_save(self) -> bool: ...

    def snapshot_halt(self, name: str) -> None:
        """``snapshot-create --halt``: memory and disks captured, then the domain stops."""
        ...

    def revert(self, name: str) -> None: ...

    def resume(self) -> None:
        """Unpause a paused domain (``virsh resume``)."""
        ...

    def shutdown(self, mode: str) -> None:
        """``virsh shutdown --mode MODE`` (``acpi``: the power button; ``agent``); returns once
        libvirt has sent it, not when the guest is off."""
        ...

    def state(self) -> str:
        """libvirt's state and reason, e.g. ``running/restored`` or ``pmsuspended/unknown``."""
        ...

    def note_state(self, after: str) -> str:
        """Record the domain's state after a step as a ``STATE`` event; the state."""
        ...

    def snapshot_disks(self, tag: str) -> None:
        """Take an internal snapshot of every disk of the stopped guest (qemu-img)."""
        ...

    def revert_disks(self, tag: str) -> None: ...


class Machine(GuestChannels, PlatformRecords, Lifecycle, PlatformControl, FaultInjection, Protocol):
    """A running machine, whichever backend runs it."""

    name: str
    timeouts: Timeouts

    @property
    def host_lifecycle(self) -> HostLifecycle | None:
        """The host-side paths, where the backend has them (libvirt); None otherwise."""
        ...


class Checkpointable(Protocol):
    """A machine that can be frozen into a ready checkpoint and started from one: what the
    session and the tools need to give every case a guest of its own without a cold boot."""

    ready_from: Checkpoint | None  # what ``boot`` restores instead of booting

    def cold_boot(self) -> dict[str, float]:
        """Boot on fresh disks until the agent and ssh answer; phase timings."""
        ...

    def capture_checkpoint(self, directory: Path) -> Checkpoint:
        """Freeze this ready guest into ``directory``; the VM is stopped afterwards."""
        ...

    def start_from(self, checkpoint: Checkpoint) -> dict[str, float]:
        """Restore ``checkpoint`` on fresh copies of its disks, then wait until ready."""
        ...
