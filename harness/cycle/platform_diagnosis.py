"""What the virtual platform itself shows about a sleep request that reached nothing.

A guest kernel that says it slept and resumed while QEMU saw no SUSPEND wrote its sleep
request to the chipset's ACPI PM1 control register; if that register is not mapped in the
guest's I/O space (QEMU's memory tree has no ``acpi-cnt``), the write went nowhere and the
kernel, reading the wake status from an unmapped port (all ones), carried on at once. The
chipset maps the block only while its PM base is set and ACPI is enabled (ICH9 LPC's PMBASE
and ACPI_CNTL, PIIX4 PM's PMBA and PMREGMISC), which the firmware sets at boot and must set
again on every S3 resume, since QEMU resets the chipset on the wake.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.errors import HarnessError, SuspendNotEntered
from harness.guest.console.diagnosis import GUEST_SAYS_RESUMED
from harness.machines.protocol import FaultInjection

PM_CONTROL_REGION = "acpi-cnt"  # QEMU's name for the PM1 control register's I/O region
CAUSE = "ACPI PM registers unmapped"


def unmapped_pm_registers(machine: FaultInjection, exc: HarnessError, lines: Sequence[str]) -> str:
    """The diagnosis when the guest said it resumed from a sleep QEMU never saw and QEMU's
    flat memory tree has no PM1 control register; empty otherwise (or if QEMU cannot say)."""
    if not isinstance(exc, SuspendNotEntered):
        return ""
    if not any(GUEST_SAYS_RESUMED.search(line) for line in lines):
        return ""
    try:
        tree = machine.hmp("info mtree -f")
    except HarnessError:
        return ""
    if not tree.strip() or PM_CONTROL_REGION in tree:
        return ""
    return (
        f"the chipset's ACPI PM registers are not mapped (no {PM_CONTROL_REGION} in QEMU's "
        "I/O space), so the guest's sleep request reached nothing: its PM base or ACPI enable "
        "is unset, which the firmware must restore on every S3 resume"
    )
