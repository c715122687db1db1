"""The host's hands on a guest's peripherals: a QMP command to its QEMU, and a script run in
the guest whose output is a fact."""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.machines.protocol import Machine


def qmp(machine: Machine, command: str, arguments: dict[str, Any] | None = None) -> Any:
    """A QMP command: the direct QEMU backend's (the only one these devices are given to)."""
    monitor = getattr(machine, "qmp", None)
    if monitor is None:
        raise HarnessError(f"{command}: this backend has no QMP monitor")
    return monitor(command, arguments)


def guest_output(machine: Machine, script: str) -> str:
    """What ``script`` prints in the guest; a failed script is an error naming its status."""
    result = machine.run(script)
    if not result.ok:
        raise HarnessError(f"exited {result.exit_status}: {result.stderr.strip()[-200:]}")
    return result.stdout
