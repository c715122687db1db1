"""What a transition is made of: what the guest must offer (``Needs``), how the sleep is
requested (``harness.transitions.requests``), what proves it entered (``entries``), how the
guest is woken (``wakes``), and what the platform and the guest kernel must have recorded.

A new path is a new combination of these parts, never a new branch in the cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.machines.protocol import Machine, Signal
from harness.transitions.entries import Entry
from harness.transitions.requests import Request
from harness.transitions.wakes import Wake


def _choices(sysfs_value: str) -> list[str]:
    """``s2idle [deep]`` -> ``['s2idle', 'deep']``."""
    return sysfs_value.replace("[", " ").replace("]", " ").split()


@dataclass(frozen=True, kw_only=True)
class Needs:
    """The guest facts a state requires; ``unmet`` says why a guest does not offer it."""

    power_states: tuple[str, ...]
    mem_sleep: str | None = None
    disk_mode: str | None = None
    swap: bool = False

    def unmet(self, facts: dict[str, str]) -> str | None:
        offered = facts.get("guest.power_state", "").split()
        acpi = facts.get("guest.acpi_states") or "?"
        missing = [s for s in self.power_states if s not in offered]
        if missing:
            # Under lockdown (secure boot) the kernel offers no hibernation and says why.
            said = facts.get("guest.lockdown_said", "") if "disk" in missing else ""
            return (
                f"guest offers no {'/'.join(missing)}: /sys/power/state is "
                f"'{' '.join(offered)}', ACPI supports {acpi}"
            ) + (f"; the kernel said: {said}" if said else "")
        mem_sleep = facts.get("guest.mem_sleep", "")
        if self.mem_sleep and self.mem_sleep not in _choices(mem_sleep):
            label = "S3" if self.mem_sleep == "deep" else self.mem_sleep
            return (
                f"guest offers no {label}: /sys/power/mem_sleep is '{mem_sleep}', "
                f"ACPI supports {acpi}"
            )
        disk = facts.get("guest.power_disk", "")
        if self.disk_mode and self.disk_mode not in _choices(disk):
            return f"guest offers no hibernation mode {self.disk_mode}: /sys/power/disk is '{disk}'"
        return None


# The guest kernel's own records, modern and older wordings.
K_S3_ENTRY = (
    r"PM: suspend entry \(deep\)|PM: Syncing filesystems|PM: Preparing system for mem sleep"
)
K_S3_ACPI_WAKE = r"ACPI: (PM: )?Waking up from system sleep state S3"
K_S2IDLE_ENTRY = r"PM: suspend entry \(s2idle\)|PM: Preparing system for freeze sleep"
K_SUSPEND_EXIT = r"PM: suspend exit|PM: Finishing wakeup"
K_HIB_ENTRY = r"hibernation: hibernation entry|PM: hibernation entry|PM: Creating hibernation image"
K_HIB_EXIT = r"hibernation: hibernation exit|PM: hibernation exit|PM: Restarting tasks"
K_IMAGE_WRITTEN = r"hibernation: Wrote \d+ kbytes|PM: Wrote \d+ kbytes"
K_IMAGE_LOADED = (
    r"PM: Image loading done|PM: Loading image data pages .*done|hibernation: Read \d+ kbytes"
)


@dataclass(frozen=True, kw_only=True)
class Rewake:
    """Wake again from the state the first cycle left saved, after ``prepare`` on the host."""

    description: str
    prepare: Callable[[Machine], None]
    expected_events: tuple[Signal, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Transition:
    """One way into a sleep state and back out, with the platform ``expected_events`` and the
    guest ``kernel_records`` (patterns) its cycle must show."""

    id: str
    needs: Needs
    request: Request
    entry: Entry
    wake: Wake
    expected_events: tuple[Signal, ...] = ()
    kernel_records: tuple[str, ...] = ()
    # Host paths that stop the VM leave the guest clock behind by the time it was off; the
    # clock is then set from the host, as libvirt-guests' SYNC_TIME does (the lag is kept).
    resync_clock: bool = False
    # Further wakes from the same saved state (a save image restored again), each after its
    # preparation of the host (e.g. the disks reverted to the point of the save).
    then: tuple[Rewake, ...] = ()

    @property
    def counts_suspend(self) -> bool:
        """The kernel counts this in /sys/power/suspend_stats (suspend, not hibernation)."""
        states = self.needs.power_states
        return "disk" not in states and bool({"mem", "freeze", "standby"} & set(states))

    @property
    def keeps_vm_process(self) -> bool:
        return self.wake.keeps_vm_process
