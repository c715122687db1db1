"""What a guest's console says about how it failed: a crash, a stalled CPU, or the step of
its sleep sequence where it stopped. Every wait that gives up on a guest asks here, so that
a guest that never comes back is diagnosed, not only timed out."""

from __future__ import annotations

import re
from collections.abc import Sequence

GUEST_SAYS_RESUMED = re.compile(
    r"PM: suspend exit|hibernation: hibernation exit|"
    r"PM: hibernation exit"
)


KERNEL_PM_LINE = re.compile(
    r"PM: |ACPI: PM|ACPI: Waking|hibernation|Freezing|Restarting tasks|Image loading|"
    r"suspend-to-idle|Syncing filesystems|Swap|swsusp"
)


# The kernel names the state it enters before it starts freezing: ``pm_suspend`` prints
# "PM: suspend entry (<label>)", the label one of s2idle, shallow (S1) and deep (S3).
SUSPEND_ENTRY_LINE = re.compile(r"PM: suspend entry \((\w+)\)")
STATE_LABELS = {"deep": "S3 (deep)", "shallow": "S1 (shallow)", "s2idle": "s2idle"}


def other_state_entered(lines: Sequence[str], asked: str) -> tuple[str, str] | None:
    """(the state, the kernel's words) when the guest kernel says it enters a suspend state
    other than ``asked`` (a label of /sys/power/mem_sleep: deep, shallow or s2idle)."""
    for line in lines:
        if (found := SUSPEND_ENTRY_LINE.search(line)) and found.group(1) != asked:
            return found.group(1), found.group(0)
    return None


# A device whose driver refused the sleep: the PM core names it and the error, and the driver
# usually says why on the line before ("virtio-fs: suspend/resume not yet supported").
DEVICE_SLEEP_FAILED = re.compile(r"(\S+ \S+): PM: failed to (\w+)(?: async)?: error (-?\d+)")
KERNEL_TIME = re.compile(r"^\[\s*\d+\.\d+\]\s*")


def device_refused_sleep(lines: Sequence[str]) -> str:
    """``virtio-pci 0000:00:09.0 failed to suspend: error -95 (virtio-fs: suspend/resume not
    yet supported)``: the first device the kernel says failed to sleep, with its driver's
    words from the lines just before; "" when none did."""
    texts = [KERNEL_TIME.sub("", line).strip() for line in lines]
    for index, text in enumerate(texts):
        if found := DEVICE_SLEEP_FAILED.search(text):
            device, action, error = found.groups()
            said = [t for t in texts[max(0, index - 4) : index] if t and "PM:" not in t]
            why = f" ({said[-1]})" if said else ""
            return f"{device} failed to {action}: error {error}{why}"
    return ""


def state_label(state: str) -> str:
    """``deep`` -> ``S3 (deep)``: the kernel's label with the ACPI state it stands for."""
    return STATE_LABELS.get(state, state)


# Worst first: a WARN's backtrace often comes before the fault that kills the guest.
CRASH_LINES = tuple(
    re.compile(pattern)
    for pattern in (
        r"Kernel panic",
        r"PANIC: |double fault",
        r"Oops|BUG: |general protection fault",
        r"Call Trace",
    )
)

# A stalled CPU is not a crash: the kernel reports it (with a backtrace) and carries on, or
# the CPU never comes back. Under TCG a vCPU that stops taking its local APIC timer
# interrupts shows as RCU's "timer wakeup didn't happen ... Possible timer handling issue".
STALL_LINE = re.compile(r"rcu: INFO: .*stall|watchdog: BUG: soft lockup")
TIMER_ISSUE_LINE = re.compile(r"Possible timer handling issue on cpu=\d+")


def console_crash(lines: Sequence[str]) -> str:
    """The worst kernel crash line on the console and where it happened (the RIP line after
    it), so that a guest that never comes back is diagnosed, not only timed out."""
    crash_lines = [ln for ln in lines if not STALL_LINE.search(ln)]
    stall_at = next((i for i, ln in enumerate(lines) if STALL_LINE.search(ln)), None)
    for pattern in CRASH_LINES:
        at = next((i for i, ln in enumerate(crash_lines) if pattern.search(ln)), None)
        if at is None:
            continue
        if pattern.pattern == "Call Trace" and stall_at is not None:
            break  # the backtrace of the stall report, not of a crash
        where = next((ln.strip() for ln in crash_lines[at:] if "RIP: " in ln), "")
        where = where or next((ln.strip() for ln in crash_lines if "RIP: " in ln), "")
        return " | ".join(part for part in (crash_lines[at].strip(), where) if part)
    return ""


def console_stall(lines: Sequence[str]) -> str:
    """The first CPU stall the kernel reported, with its timer-handling hint if it gave one."""
    stall = next((ln.strip() for ln in lines if STALL_LINE.search(ln)), "")
    if not stall:
        return ""
    hint = next((m.group(0) for ln in lines if (m := TIMER_ISSUE_LINE.search(ln))), "")
    return " | ".join(part for part in (stall, hint) if part)


def stall_diagnosis(lines: Sequence[str]) -> str:
    """The stall report among these lines as a diagnosis; empty when there is none."""
    stall = console_stall(lines)
    return f"a guest CPU stalled (no progress for 21 s or more): {stall}" if stall else ""


def console_stopped_at(lines: Sequence[str]) -> str:
    """The guest's last power-management line when it began a transition and never finished
    it (no suspend or hibernation exit after it): where in the kernel's sequence it stopped."""
    steps = [ln.strip() for ln in lines if KERNEL_PM_LINE.search(ln)]
    if not steps or GUEST_SAYS_RESUMED.search(steps[-1]):
        return ""
    return steps[-1]


def console_diagnosis(lines: Sequence[str], *, entering: bool = False) -> str:
    """What the console says about a guest that did not do what it was asked: a crash, else
    a CPU stall, else (when it was asked to go to sleep) the step of the kernel's sleep
    sequence it stopped at; empty when it says none of these."""
    if crash := console_crash(lines):
        return f"the guest kernel crashed: {crash}"
    if stall := stall_diagnosis(lines):
        return stall
    if entering and (step := console_stopped_at(lines)):
        return f"the guest's sleep sequence stopped at '{step}'"
    return ""
