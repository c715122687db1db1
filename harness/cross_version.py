"""The newer side of the cross-version cases, beside the run's own (stable) session: a host
upgrade as libvirt-guests lives through it (a guest saved by the stable libvirt and QEMU,
restored by a newer libvirt stack), and a guest in S3 migrated from the stable QEMU to a
newer one and back.

The newer libvirt is a second session's private daemon of that stack
(harness.setup.libvirt_stack); the newer QEMU a closure-run build from Debian's archive
(harness.setup.components.provision_qemu). Both sides run the machine type pinned as a
management layer pins it: the versioned type the stable QEMU's alias stands for.

A crossing is named by its version pair, older side first: ``libvirt9.0.0-q7.2.22-to-
libvirt12.8.0-q11.1.3`` for a libvirt hand-over, ``q7.2.22-to-q11.1.3`` for a migration, each
followed by the pinned machine type (``-pc-i440fx-7.2``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass, replace
from typing import Any

from harness.errors import HarnessError
from harness.machines.config import QemuConfig
from harness.machines.libvirt import crossing as libvirt_crossing
from harness.machines.libvirt.host import LibvirtHost
from harness.machines.libvirt.machine import LibvirtMachine
from harness.machines.protocol import Machine
from harness.machines.qemu import crossing as qemu_crossing
from harness.machines.qemu.machine import QemuMachine
from harness.matrix.cell import qemu_version
from harness.session import HarnessSession, Settings
from harness.setup.components import DebianArchive, QemuBuild, provision_qemu
from harness.setup.image import Progress
from harness.setup.libvirt_stack import HOST as HOST_STACK
from harness.setup.libvirt_stack import LibvirtStack, ensure_stack

log = logging.getLogger(__name__)

STREAM_NAME = "crossing.migration"


@dataclass(frozen=True)
class Side:
    """One side of a crossing: its libvirt ("" where none takes part) and QEMU versions."""

    qemu: str
    libvirt: str = ""

    @property
    def label(self) -> str:
        return (f"libvirt{self.libvirt}-" if self.libvirt else "") + f"q{self.qemu}"


def pair_id(older: Side, newer: Side, machine_type: str) -> str:
    """``libvirt9.0.0-q7.2.22-to-libvirt12.8.0-q11.1.3-pc-i440fx-7.2``."""
    return f"{older.label}-to-{newer.label}-{machine_type}"


def host_libvirt_version() -> str:
    """The host's libvirt daemon's version, from its package's program."""
    program = shutil.which("libvirtd")
    if program is None:
        return ""
    out = subprocess.run(
        [program, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    return out.split()[-1] if out.strip() else ""


def stable_side(settings: Settings, progress: Progress, with_libvirt: bool) -> Side:
    """What the run's own session runs, found as cheaply as its cell id is."""
    if settings.libvirt_stack != HOST_STACK:
        stack = ensure_stack(settings.libvirt_stack, progress)
        return Side(stack.qemu_version, stack.libvirt_version if with_libvirt else "")
    build = provision_qemu(settings.qemu, DebianArchive(offline=settings.offline))
    libvirt = host_libvirt_version() if with_libvirt else ""
    return Side(qemu_version(str(build.binary)), libvirt)


def stack_side(suite: str, progress: Progress) -> Side:
    stack = ensure_stack(suite, progress)
    return Side(stack.qemu_version, stack.libvirt_version)


def qemu_side(version: str, offline: bool = False) -> Side:
    build = provision_qemu(version, DebianArchive(offline=offline))
    return Side(qemu_version(str(build.binary)))


def pinned_machine_type(settings: Settings) -> str:
    """The versioned machine type the stable QEMU's alias stands for."""
    build = provision_qemu(settings.qemu, DebianArchive(offline=settings.offline))
    return qemu_crossing.concrete_machine_type(str(build.binary), settings.machine_type)


class NewerStack:
    """The newer libvirt stack (``suite``) and the newer QEMU (``qemu``) a stable session's
    guests cross to; built on first use, and closed (the guests handed back first) by
    ``close``."""

    def __init__(
        self, stable: HarnessSession, suite: str | None, qemu: str | None, progress: Progress
    ) -> None:
        self.stable = stable
        self.suite = suite
        self.qemu = qemu
        self._progress = progress
        self._session: HarnessSession | None = None
        self._qemu_build: QemuBuild | None = None
        self._handed: dict[str, tuple[LibvirtMachine, libvirt_crossing.Handed]] = {}

    # -- libvirt: the saved guest handed to the newer daemon ---------------------------------

    @property
    def stack(self) -> LibvirtStack:
        if self.suite is None:
            raise HarnessError("no newer libvirt stack was asked for (--newer-stack SUITE)")
        return ensure_stack(self.suite, self._progress)

    @property
    def libvirt_host(self) -> LibvirtHost:
        """The newer stack's own daemon, as a second session runs it."""
        if self._session is None:
            settings = replace(
                self.stable.settings, backend="libvirt", libvirt_stack=self.stack.suite
            )
            evidence = self.stable.evidence_root / "newer-stack"
            self._session = HarnessSession(settings, evidence, self._progress)
        return self._session.libvirt_host()

    def hand_over(self, machine: Machine) -> dict[str, Any]:
        """The ``cross`` of a libvirt path: the saved domain handed to the newer daemon."""
        if not isinstance(machine, LibvirtMachine):
            raise HarnessError(f"{machine.name}: a libvirt hand-over needs a libvirt domain")
        handed = libvirt_crossing.hand_over(machine, self.libvirt_host)
        self._handed[machine.name] = (machine, handed)
        return handed.facts()

    def hand_back(self, machine: Machine) -> None:
        """The domain stopped on the newer daemon and defined again on the stable one, as it
        was, so that the stable session's next case finds it where it left it."""
        entry = self._handed.pop(machine.name, None)
        if entry is not None:
            libvirt_crossing.hand_back(entry[0], self.stable.libvirt_host(), entry[1])

    # -- QEMU: the sleeping guest migrated to the newer QEMU ---------------------------------

    @property
    def qemu_build(self) -> QemuBuild:
        if self.qemu is None:
            raise HarnessError("no newer QEMU was asked for (--newer-qemu VERSION)")
        if self._qemu_build is None:
            offline = self.stable.settings.offline
            self._qemu_build = provision_qemu(self.qemu, DebianArchive(offline=offline))
        return self._qemu_build

    def pinned_qemu_guest(self, label: str) -> QemuMachine:
        """A fresh direct-QEMU guest of the stable session on the pinned machine type (not
        booted: ``boot`` restores the session's ready checkpoint into it)."""
        machine = self.stable.fresh_qemu_guest(label)
        pinned = pinned_machine_type(self.stable.settings)
        qemu_crossing.pin_machine_type(machine, pinned)
        return machine

    def newer_config(self, machine: QemuMachine) -> QemuConfig:
        """``machine``'s configuration (its pinned machine type) on the newer QEMU."""
        build = self.qemu_build
        return replace(machine.config, binary=str(build.binary), qemu_img=build.qemu_img)

    def migrate(self, machine: Machine, target: QemuConfig) -> dict[str, Any]:
        """The ``cross`` of a migration: the guest's QEMU swapped for ``target``'s through a
        migration stream in a file beside its disks (removed afterwards)."""
        if not isinstance(machine, QemuMachine):
            raise HarnessError(f"{machine.name}: a QEMU migration needs the direct QEMU backend")
        stream = machine.runtime_dir / STREAM_NAME
        try:
            return qemu_crossing.migrate_via_file(machine, target, stream).facts()
        finally:
            stream.unlink(missing_ok=True)

    def close(self) -> None:
        for machine, _ in list(self._handed.values()):
            try:
                self.hand_back(machine)
            except HarnessError as exc:  # keep closing: the session removes it anyway
                log.warning("handing %s back: %s", machine.name, exc)
        if self._session is not None:
            self._session.close()
            self._session = None


__all__ = [
    "NewerStack",
    "Side",
    "pair_id",
    "pinned_machine_type",
    "qemu_side",
    "stable_side",
    "stack_side",
]
