"""Faults on the host side of a guest's devices while the guest sleeps: its swtpm killed.
Only the direct QEMU backend runs these helpers: on another machine such a fault is a one-line
error."""

from __future__ import annotations

from typing import Protocol

from harness.cycle.faults import ASLEEP, Fault
from harness.errors import SetupError
from harness.machines.device_helpers import DeviceHelpers
from harness.machines.protocol import Machine


class _WithHelpers(Protocol):
    device_helpers: DeviceHelpers


def _helpers(machine: Machine) -> DeviceHelpers:
    helpers = getattr(machine, "device_helpers", None)
    if not isinstance(helpers, DeviceHelpers):
        raise SetupError(
            "TPM and share faults act on the direct QEMU backend's helpers: use --backend qemu"
        )
    return helpers


def swtpm_killed() -> Fault:
    """SIGKILL to the guest's swtpm while the guest sleeps: its TPM is gone at the wake."""
    return Fault("swtpm killed while the guest sleeps", lambda m: _helpers(m).kill_swtpm(), ASLEEP)
