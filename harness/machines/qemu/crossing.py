"""A direct-QEMU guest carried to another QEMU as a host upgrade carries it: the QEMU it runs
on migrates its state into a file, then another QEMU (another version, the same pinned
machine type) loads that file on the same disks. The machine object stays the guest's own:
its disks, event log, console and ssh forward go on; only the QEMU under it changes.

The machine type is pinned as a management layer pins it: the versioned type that the
source QEMU's alias (``pc``) stood for (``pc-i440fx-7.2``), on both sides. A QEMU migrates
only between equal machine types, and the alias names the newest type of each QEMU.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, QemuStartError, SetupError, StageTimeout
from harness.machines import checkpoint as ckpt
from harness.machines.config import QemuConfig
from harness.machines.events import QEMU_EXITED, RecordedEvent
from harness.machines.qemu.cmdline import build_argv
from harness.machines.qemu.machine import QemuMachine

ALIAS_LINE = re.compile(r"^(\S+)\s.*\(alias of (\S+)\)", re.MULTILINE)
MACHINE_HELP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Migrated:
    """One crossing: from which QEMU to which, on what machine type, and the destination's
    run state once the stream was loaded (``suspended`` or ``running``)."""

    source_qemu: str
    target_qemu: str
    machine_type: str
    run_state: str
    source_wakeup: str  # the source's WAKEUP: before-completion, after-completion or none
    stream_bytes: int
    seconds: float

    def facts(self) -> dict[str, Any]:
        return {
            "from_qemu": self.source_qemu,
            "to_qemu": self.target_qemu,
            "machine_type": self.machine_type,
            "run_state_after_load": self.run_state,
            "source_wakeup": self.source_wakeup,
            "stream_bytes": self.stream_bytes,
            "seconds": round(self.seconds, 2),
        }


def concrete_machine_type(binary: str, machine: str, env: dict[str, str] | None = None) -> str:
    """The versioned machine type that ``machine`` stands for on QEMU ``binary`` (``pc`` ->
    ``pc-i440fx-7.2``); a type that is no alias is returned as it is."""
    try:
        out = subprocess.run(
            [binary, "-machine", "help"],
            capture_output=True,
            text=True,
            timeout=MACHINE_HELP_TIMEOUT_S,
            check=False,
            env={**os.environ, **env} if env else None,
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"cannot list the machine types of {binary}: {exc}") from exc
    aliases: dict[str, str] = dict(ALIAS_LINE.findall(out))
    return aliases.get(machine, machine)


def pin_machine_type(machine: QemuMachine, machine_type: str) -> None:
    """Run ``machine`` (not yet started) on ``machine_type`` instead of its alias."""
    if machine.running:
        raise HarnessError(f"{machine.name}: the machine type is pinned before it starts")
    _reconfigure(machine, replace(machine.config, machine=machine_type))


def _reconfigure(machine: QemuMachine, config: QemuConfig) -> None:
    machine.config = config
    machine.argv = build_argv(config, machine.paths, machine._ssh_port)


def migrate_via_file(machine: QemuMachine, target: QemuConfig, stream: Path) -> Migrated:
    """Migrate the running (or suspended) guest into ``stream``, stop its QEMU, then start
    ``target``'s QEMU on the same disks and load the stream; the guest is left as the
    destination QEMU put it (its run state says whether it still sleeps)."""
    if not machine.running:
        raise HarnessError(f"{machine.name}: migration of a guest whose QEMU is not running")
    started = time.monotonic()
    source = str(machine.platform_facts().get("qemu_version", ""))
    machine.close_ssh()
    machine.qmp("migrate-set-capabilities", ckpt.migration_capabilities())
    machine.qmp("migrate-set-parameters", {"max-bandwidth": ckpt.UNCAPPED_BANDWIDTH})
    mark = machine.events.mark()
    uri = ckpt.save_uri(machine._monitor, stream, source)
    machine.qmp("migrate", {"uri": uri})
    _wait_migration(machine, mark, machine.timeouts.hibernate, f"migration out of QEMU {source}")
    machine.stop()
    source_wakeup = _source_wakeup(machine.events.since(mark))
    _reconfigure(machine, target)
    try:
        machine._launch(incoming=True)
        target_version = str(machine.platform_facts().get("qemu_version", ""))
        machine.qmp("migrate-set-capabilities", ckpt.migration_capabilities())
        mark = machine.events.mark()
        uri = ckpt.load_uri(machine._monitor, stream, target_version)
        machine.qmp("migrate-incoming", {"uri": uri})
        what = f"migration from QEMU {source} into QEMU {target_version}"
        _wait_migration(machine, mark, machine.timeouts.resume, what)
    except HarnessError as exc:
        output = machine._process_output()
        machine.stop()
        raise QemuStartError(f"{exc}; QEMU said: {output or 'nothing'}") from exc
    status = machine.qmp("query-status")
    return Migrated(
        source_qemu=source,
        target_qemu=target_version,
        machine_type=target.machine,
        run_state=str(status.get("status", "")),
        source_wakeup=source_wakeup,
        stream_bytes=stream.stat().st_size,
        seconds=time.monotonic() - started,
    )


def _source_wakeup(events: list[RecordedEvent]) -> str:
    """Whether the source QEMU woke the guest before its migration completed (the stream
    then holds the guest awake), after it (QEMU before 9.0 requests the wake-up as the
    migration completes, and its main loop may carry it out after the last pass: the stream
    can then hold the guest still entering S3, with a run state of running), or not at
    all."""
    names = [e.name for e in events]
    if "WAKEUP" not in names:
        return "none"
    completed = next(
        (
            i
            for i, e in enumerate(events)
            if e.name == ckpt.MIGRATION and e.data.get("status") == "completed"
        ),
        len(events),
    )
    return "before-completion" if names.index("WAKEUP") < completed else "after-completion"


def _wait_migration(machine: QemuMachine, since: int, timeout: float, what: str) -> RecordedEvent:
    """The MIGRATION event that ends ``what``; a failure, the QEMU exiting (a load that fails
    ends it) or the timeout is an error naming ``what``."""

    def ended(event: RecordedEvent) -> bool:
        if event.name == QEMU_EXITED:
            return not machine.running  # the source's own exit may be recorded late
        return event.name == ckpt.MIGRATION and event.data.get("status") in ckpt.MIGRATION_DONE

    event = machine.events.wait_until(ended, since, timeout)
    if event is None:
        raise StageTimeout(what, timeout, "no MIGRATION completed event")
    if event.name == QEMU_EXITED:
        raise HarnessError(f"{what}: QEMU exited ({event.data.get('returncode')})")
    if event.data.get("status") != "completed":
        raise HarnessError(f"{what}: migration {event.data.get('status')}")
    return event


__all__ = ["Migrated", "concrete_machine_type", "migrate_via_file", "pin_machine_type"]
