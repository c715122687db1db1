"""What a guest's console says about how it failed: a crash, a stalled CPU, or the step of
its sleep sequence where it stopped. Every wait that gives up on a guest asks here, so that
a guest that never comes back is diagnosed, not only timed out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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


# A device whose driver refused the sleep: the PM core names it and the error, as
# "<bus driver> <bus id>: PM: failed to <verb>[ async| late| noirq| early]: error <n>" (kernels
# before 5.x: "PM: Device <bus id> failed to ..."). Debug lines before it name the callbacks,
# outermost last ("PM: pci_pm_freeze(): virtio_pci_freeze returns -95"), and the driver
# usually says why on a line of its own ("virtio-fs: suspend/resume not yet supported").
DEVICE_SLEEP_FAILED = re.compile(
    r"(?:(?P<driver>\S+) (?P<device>\S+): PM: |PM: Device (?P<old_device>\S+) )"
    r"failed to (?P<action>\w+)(?: async| late| noirq| early)?: error (?P<error>-?\d+)"
)
CALLBACK_RETURNED = re.compile(r"PM: \S+\(\): (?P<callback>[\w.]+)(?:\+\S+)?(?: \[\w+\])? returns")
KERNEL_TIME = re.compile(r"^\[\s*\d+\.\d+\]\s*")
WORDS_BEFORE = 4  # how many lines before the PM core's own a driver's words are looked for
# The sleep sequence's own lines, never a driver's words.
SEQUENCE_LINE = re.compile(KERNEL_PM_LINE.pattern + r"|OOM killer|Filesystems sync")

# The error numbers a driver's sleep callback returns, by the kernel's names (the
# kernel-internal ones above 511 are in no C library): negated in the kernel's messages.
KERNEL_ERRNOS = {
    1: ("EPERM", "operation not permitted"),
    2: ("ENOENT", "no such file or directory"),
    4: ("EINTR", "interrupted system call"),
    5: ("EIO", "input/output error"),
    6: ("ENXIO", "no such device or address"),
    11: ("EAGAIN", "try again"),
    12: ("ENOMEM", "out of memory"),
    13: ("EACCES", "permission denied"),
    14: ("EFAULT", "bad address"),
    16: ("EBUSY", "device or resource busy"),
    19: ("ENODEV", "no such device"),
    22: ("EINVAL", "invalid argument"),
    28: ("ENOSPC", "no space left on device"),
    38: ("ENOSYS", "function not implemented"),
    61: ("ENODATA", "no data available"),
    62: ("ETIME", "timer expired"),
    71: ("EPROTO", "protocol error"),
    95: ("EOPNOTSUPP", "operation not supported"),
    110: ("ETIMEDOUT", "connection timed out"),
    115: ("EINPROGRESS", "operation now in progress"),
    125: ("ECANCELED", "operation canceled"),
    512: ("ERESTARTSYS", "interrupted by a signal, to be restarted"),
    517: ("EPROBE_DEFER", "driver requests probe retry"),
    524: ("ENOTSUPP", "operation is not supported"),
}


def errno_meaning(error: int) -> str:
    """``-95`` -> ``EOPNOTSUPP, operation not supported``; a number it does not know, as is."""
    name, meaning = KERNEL_ERRNOS.get(abs(error), (f"errno {abs(error)}", ""))
    return f"{name}, {meaning}" if meaning else name


@dataclass(frozen=True)
class DeviceRefusal:
    """A device whose driver refused a sleep step, as the guest kernel's console names it."""

    device: str  # its bus id: 0000:00:09.0
    driver: str  # the driver the kernel names it by (virtio-pci, e1000e); "" on old kernels
    action: str  # the PM core's verb: suspend (S3, s2idle), freeze (S4), poweroff, ...
    error: int  # -95
    callback: str = ""  # the innermost callback that returned it: virtio_pci_freeze
    said: str = ""  # the driver's own words just before

    @property
    def name(self) -> str:
        """``virtio-pci 0000:00:09.0``: the device as the kernel names it."""
        return f"{self.driver} {self.device}" if self.driver else self.device

    def describe(self, identity: str = "") -> str:
        """``virtio-pci 0000:00:09.0 failed to freeze: error -95 (virtio-fs: suspend/resume
        not yet supported); -95 is EOPNOTSUPP, operation not supported, returned by
        virtio_pci_freeze``, with ``identity`` (what the device is) after its name."""
        named = f"{self.name} ({identity})" if identity else self.name
        why = f" ({self.said})" if self.said else ""
        by = f", returned by {self.callback}" if self.callback else ""
        return (
            f"{named} failed to {self.action}: error {self.error}{why}; "
            f"{self.error} is {errno_meaning(self.error)}{by}"
        )


def find_device_refusal(lines: Sequence[str]) -> DeviceRefusal | None:
    """The first device the kernel says failed to sleep, with the callback that returned the
    error and its driver's words from the lines just before; None when none did."""
    texts = [KERNEL_TIME.sub("", line).strip() for line in lines]
    for index, text in enumerate(texts):
        if not (found := DEVICE_SLEEP_FAILED.search(text)):
            continue
        device = found.group("device") or found.group("old_device")
        before = texts[max(0, index - WORDS_BEFORE) : index]
        said = [t for t in before if t and not SEQUENCE_LINE.search(t)]
        callbacks = [
            called.group("callback")
            for t in before
            if device in t and (called := CALLBACK_RETURNED.search(t))
        ]
        return DeviceRefusal(
            device=device,
            driver=found.group("driver") or "",
            action=found.group("action"),
            error=int(found.group("error")),
            callback=callbacks[0] if callbacks else "",
            said=said[-1] if said else "",
        )
    return None


def device_refused_sleep(lines: Sequence[str]) -> str:
    """``virtio-pci 0000:00:09.0 failed to suspend: error -95 (virtio-fs: suspend/resume not
    yet supported); -95 is EOPNOTSUPP, ...``: the first device the kernel says failed to
    sleep (see DeviceRefusal.describe); "" when none did."""
    refusal = find_device_refusal(lines)
    return refusal.describe() if refusal else ""


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
