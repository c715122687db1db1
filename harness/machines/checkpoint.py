"""Ready checkpoints: the memory and disks of a booted, agent-ready guest, frozen at one point,
so that every test case can start from a restore of it (seconds under TCG) instead of a cold
boot (tens of seconds), and still start from the same state as every other case.

Capture: QMP ``migrate`` to a file that the harness opens and hands to QEMU (``fd:``, or from
QEMU 9.0 on ``file:`` on an fd set, as later QEMUs refuse ``fd:`` on a regular file; QEMU 7.2
has no ``file:`` URI, and the sandbox forbids the ``exec:`` of a program); when the
migration completes QEMU has paused the guest and flushed its disks, and copies of the disks
are taken at that very point. Restore: the same argv plus ``-incoming defer``, fresh copies of
the frozen disks (each restore its own), then ``migrate-incoming`` from the file, handed over
the same way.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.errors import HarnessError, SetupError, StageTimeout
from harness.machines import disks
from harness.machines.events import QEMU_EXITED, EventLog, RecordedEvent

MIGRATION = "MIGRATION"
MIGRATION_DONE = ("completed", "failed", "cancelled")
# QEMU caps migration at 128 MiB/s by default; a local file takes whatever the disk gives.
UNCAPPED_BANDWIDTH = 64 << 30
FDSET_SINCE = (9, 0)  # QEMU takes a migration file as an fd set member (file:/dev/fdset/N)


@dataclass(frozen=True)
class Checkpoint:
    """A frozen, ready guest: ``state`` is the migration stream, ``disks`` the disk copies by
    role (root, swap, data), ``boot_timings`` how long the cold boot it was taken from took."""

    name: str
    state: Path
    disks: dict[str, Path]
    boot_timings: dict[str, float] = field(default_factory=dict)
    capture_s: float = 0.0

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.state, *self.disks.values()) if p.exists())


class FdPassing(Protocol):
    """A monitor that can hand QEMU an open file (SCM_RIGHTS, then ``getfd`` or ``add-fd``)."""

    def pass_fd(self, fd: int, name: str, timeout: float = ...) -> None: ...

    def add_fd(self, fd: int, opaque: str, timeout: float = ...) -> int: ...


SAVE_FD = "checkpoint-save"
LOAD_FD = "checkpoint-load"


def save_uri(monitor: FdPassing | None, path: Path, qemu_version: str = "") -> str:
    """Open ``path`` for the migration stream (0600, emptied) and hand it to QEMU (of
    ``qemu_version``, as query-version reports it); the URI for ``migrate``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    return _hand_over(monitor, path, flags, SAVE_FD, qemu_version)


def load_uri(monitor: FdPassing | None, path: Path, qemu_version: str = "") -> str:
    """Open the saved stream at ``path`` and hand it to QEMU; the URI for
    ``migrate-incoming``."""
    return _hand_over(monitor, path, os.O_RDONLY, LOAD_FD, qemu_version)


def takes_fdset(qemu_version: str) -> bool:
    """Whether QEMU ``qemu_version`` (``11.1.3``) is handed the file in an fd set."""
    return tuple(int(n) for n in re.findall(r"\d+", qemu_version)[:2]) >= FDSET_SINCE


def _hand_over(
    monitor: FdPassing | None, path: Path, flags: int, name: str, qemu_version: str
) -> str:
    if monitor is None:
        raise HarnessError(f"checkpoint: no QMP connection to hand {path} over")
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise HarnessError(f"checkpoint: cannot open {path}: {exc.strerror}") from exc
    try:
        if takes_fdset(qemu_version):
            return f"file:/dev/fdset/{monitor.add_fd(fd, name)}"
        monitor.pass_fd(fd, name)
    finally:
        os.close(fd)  # QEMU holds its own copy now
    return f"fd:{name}"


def migration_capabilities() -> dict[str, Any]:
    """MIGRATION events, so that the end of a save or load is waited on, not polled."""
    return {"capabilities": [{"capability": "events", "state": True}]}


def wait_migration(events: EventLog, since: int, timeout: float, what: str) -> RecordedEvent:
    """The MIGRATION event that ends a save or load; a failure, QEMU exiting (a load that
    fails ends QEMU) or a timeout is an error."""
    event = events.wait_until(
        lambda e: (
            e.name == QEMU_EXITED
            or (e.name == MIGRATION and e.data.get("status") in MIGRATION_DONE)
        ),
        since,
        timeout,
    )
    if event is None:
        raise StageTimeout(f"checkpoint {what}", timeout, "no MIGRATION completed event")
    if event.name == QEMU_EXITED:
        raise HarnessError(f"checkpoint {what}: QEMU exited ({event.data.get('returncode')})")
    if event.data.get("status") != "completed":
        raise HarnessError(f"checkpoint {what}: migration {event.data.get('status')}")
    return event


FULL_DISK_MARGIN = 64 * 1024 * 1024  # less free than this after a failed save: the disk filled


def explain_failure(exc: Exception, directory: Path) -> HarnessError:
    """A failed save as the user's fix: a full disk says so (the migration itself only
    reports "failed"), anything else keeps its own message."""
    free = shutil.disk_usage(directory.parent).free
    if free < FULL_DISK_MARGIN or "No space left" in str(exc):
        return SetupError(
            f"checkpoint save: the disk holding {directory.parent} is full "
            f"({free // (1024 * 1024)} MiB free): free space there or set TMPDIR to a larger "
            "disk (--cold-boot needs no checkpoint)"
        )
    return exc if isinstance(exc, HarnessError) else HarnessError(f"checkpoint save: {exc}")


def freeze_disks(sources: dict[str, Path], directory: Path) -> dict[str, Path]:
    """Copies of the paused guest's disks: the checkpoint's own, never written again."""
    frozen = {}
    for role, source in sources.items():
        target = directory / source.name
        disks.copy_sparse(source, target)
        target.chmod(0o400)
        frozen[role] = target
    return frozen


def thaw_disks(checkpoint: Checkpoint, targets: dict[str, Path]) -> None:
    """Fresh writable copies of the frozen disks for one restore."""
    for role, target in targets.items():
        disks.copy_sparse(checkpoint.disks[role], target)
        target.chmod(0o600)
