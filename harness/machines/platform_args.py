"""QEMU arguments that change what the virtual platform offers the guest."""

from __future__ import annotations

PM_DEVICE = {"pc": "PIIX4_PM", "q35": "ICH9-LPC"}


def disable_sleep_state(machine_type: str, state: str) -> tuple[str, ...]:
    """``-global PIIX4_PM.disable_s3=1`` and the like: the ACPI tables then omit _S3/_S4."""
    if state not in ("s3", "s4"):
        raise ValueError(f"state must be s3 or s4, not {state!r}")
    try:
        device = PM_DEVICE[machine_type]
    except KeyError:
        raise ValueError(f"no power-management device known for machine {machine_type!r}") from None
    return ("-global", f"{device}.disable_{state}=1")
