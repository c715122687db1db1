"""Checks: pure functions from a cycle's evidence to a CheckResult. They never touch a guest."""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.checks import facts as fact
from harness.checks.probes import INFLIGHT_STEPS
from harness.checks.verdict import CheckResult, CycleEvidence
from harness.guest.console.diagnosis import STALL_LINE, TIMER_ISSUE_LINE

Check = Callable[[CycleEvidence], CheckResult]


def _in_order(expected: list[str], seen: list[str], match: Callable[[str, str], bool]) -> list[str]:
    """The expected items not found in ``seen`` in that order."""
    position = 0
    for item in seen:
        if position < len(expected) and match(expected[position], item):
            position += 1
    return expected[position:]


def events_seen(ev: CycleEvidence) -> CheckResult:
    """The platform saw the guest enter and leave the state, in that order.

    Expected items are backend-neutral signals (``suspended``); each recorded event carries the
    signals it shows, so the same check judges QMP and libvirt event streams.
    """
    expected = ev.expected_events
    shown = [(signal, e["event"]) for e in ev.events for signal in e.get("signals", ())]
    missing = _in_order(expected, [signal for signal, _ in shown], str.__eq__)
    names = [e["event"] for e in ev.events]
    if not expected:
        detail = "the platform sees nothing of this state (proof comes from the guest kernel)"
    elif not missing:
        detail = f"saw {' -> '.join(expected)}"
    else:
        detail = f"missing {', '.join(missing)}; events were {names or 'none'}"
    return CheckResult("events_seen", not missing, detail, {"expected": expected, "seen": names})


def kernel_records_seen(ev: CycleEvidence) -> CheckResult:
    """The guest kernel's own log says it entered and left the state, in that order."""
    expected = ev.expected_kernel_records
    missing = _in_order(
        expected, ev.kernel_messages, lambda pattern, line: re.search(pattern, line) is not None
    )
    detail = (
        "kernel logged " + " -> ".join(p.split("|")[0].replace("\\", "") for p in expected)
        if not missing
        else f"kernel log lacks /{missing[0]}/"
    )
    return CheckResult(
        "kernel_records_seen",
        not missing,
        detail,
        {"expected": expected, "missing": missing, "lines": ev.kernel_messages[-40:]},
    )


def _unmeasured(name: str, ev: CycleEvidence) -> CheckResult | None:
    """A failure that says the facts were never read, instead of judging missing facts."""
    if fact.GUEST_BOOT_ID in ev.after:
        return None
    return CheckResult(name, False, f"not measured after resume: {ev.after_error or 'no facts'}")


def resumed_not_rebooted(ev: CycleEvidence) -> CheckResult:
    """Same boot_id and the RAM-only marker survived: the guest resumed, it did not boot."""
    if unmeasured := _unmeasured("resumed_not_rebooted", ev):
        return unmeasured
    keys = (fact.GUEST_BOOT_ID, fact.GUEST_RAM_MARKER)
    facts = {k: (ev.before.get(k), ev.after.get(k)) for k in keys}
    changed = [k for k, (b, a) in facts.items() if not b or b != a]
    uptime = (_float(ev.before.get(fact.GUEST_UPTIME)), _float(ev.after.get(fact.GUEST_UPTIME)))
    if uptime[1] < uptime[0]:
        changed.append(f"uptime {uptime[0]:.0f}s -> {uptime[1]:.0f}s")
    detail = (
        "same boot_id and RAM marker"
        if not changed
        else f"guest rebooted: {', '.join(changed)} changed "
        f"({ev.before.get(fact.GUEST_BOOT_ID)} -> {ev.after.get(fact.GUEST_BOOT_ID)})"
    )
    return CheckResult(
        "resumed_not_rebooted",
        not changed,
        detail,
        {k: {"before": b, "after": a} for k, (b, a) in facts.items()},
    )


def booted_afresh(ev: CycleEvidence) -> CheckResult:
    """After a clean shutdown and start: a new boot (boot_id changed, RAM marker gone), and
    the file written and synced before the shutdown reads back intact."""
    if unmeasured := _unmeasured("booted_afresh", ev):
        return unmeasured
    problems = []
    if ev.before.get(fact.GUEST_BOOT_ID) == ev.after.get(fact.GUEST_BOOT_ID):
        problems.append("same boot_id: the guest was not shut down")
    if ev.before.get(fact.GUEST_RAM_MARKER) == ev.after.get(fact.GUEST_RAM_MARKER):
        problems.append("RAM marker survived")
    written, reread = ev.before.get(fact.DISK_WRITTEN_SHA), ev.after.get(fact.DISK_REREAD_SHA)
    if not written or written != reread:
        problems.append(f"file written before the shutdown reads back as {reread or 'nothing'}")
    detail = "a new boot; the file written before reads back intact"
    return CheckResult(
        "booted_afresh",
        not problems,
        "; ".join(problems) or detail,
        {"boot_id": [ev.before.get(fact.GUEST_BOOT_ID), ev.after.get(fact.GUEST_BOOT_ID)]},
    )


def sentinel_carried_on(ev: CycleEvidence) -> CheckResult:
    """The process started before sleeping has the same PID, is alive and still counting."""
    if unmeasured := _unmeasured("sentinel_carried_on", ev):
        return unmeasured
    before_pid, after_pid = ev.before.get(fact.SENTINEL_PID), ev.after.get(fact.SENTINEL_PID)
    alive = ev.after.get(fact.SENTINEL_ALIVE) == "yes"
    count_before = _int(ev.before.get(fact.SENTINEL_COUNT))
    count_after = _int(ev.after.get(fact.SENTINEL_COUNT))
    count_later = _int(ev.after.get(fact.SENTINEL_COUNT_LATER))
    problems = []
    if not before_pid or before_pid != after_pid:
        problems.append(f"pid {before_pid} -> {after_pid}")
    if not alive:
        problems.append("process gone")
    if count_after < count_before:
        problems.append(f"counter went back {count_before} -> {count_after}")
    if count_later <= count_after:
        problems.append(f"counter stopped at {count_after}")
    evidence = {
        "pid": [before_pid, after_pid],
        "alive": alive,
        "count": [count_before, count_after, count_later],
    }
    detail = (
        f"pid {after_pid} alive, counter {count_before} -> {count_later}"
        if not problems
        else "; ".join(problems)
    )
    return CheckResult("sentinel_carried_on", not problems, detail, evidence)


def ssh_after_resume(ev: CycleEvidence) -> CheckResult:
    """The guest answered over ssh (virtio-net) after the transition."""
    ok = not ev.after_error and bool(ev.after)
    detail = "guest answered over ssh" if ok else f"no answer over ssh: {ev.after_error}"
    return CheckResult("ssh_after_resume", ok, detail, {"error": ev.after_error})


def disk_roundtrip(ev: CycleEvidence) -> CheckResult:
    """Data written before sleeping reads back intact from disk, and new writes work after."""
    if unmeasured := _unmeasured("disk_roundtrip", ev):
        return unmeasured
    written, reread = ev.before.get(fact.DISK_WRITTEN_SHA), ev.after.get(fact.DISK_REREAD_SHA)
    fresh, fresh_reread = (
        ev.after.get(fact.DISK_FRESH_SHA),
        ev.after.get(fact.DISK_FRESH_REREAD_SHA),
    )
    problems = []
    if not written or written != reread:
        problems.append(f"file written before reads back as {reread or 'nothing'}")
    status = ev.after.get(fact.DISK_FRESH_WRITE_STATUS)
    if status != "0":
        problems.append(f"write after resume failed (dd status {status or 'unknown'})")
    elif not fresh or fresh != fresh_reread:
        problems.append(f"write after resume reads back as {fresh_reread or 'nothing'}")
    requests = (
        _int(ev.before.get(fact.BLK_VDA_REQUESTS)),
        _int(ev.after.get(fact.BLK_VDA_REQUESTS)),
    )
    if requests[1] <= requests[0] and not ev.after_error and requests[0] >= 0:
        problems.append(f"request counter stuck at {requests[1]}")
    evidence = {"written": written, "reread": reread, "fresh": fresh, "fresh_reread": fresh_reread}
    detail = (
        "1 MiB written before and 1 MiB after read back intact (direct reads)"
        if not problems
        else "; ".join(problems)
    )
    return CheckResult("disk_roundtrip", not problems, detail, evidence)


# Messages with which the guest kernel reports that a sleep or resume step went wrong. Not
# "Image not found (code -16)": a resume device written to /sys/power/resume at run time (as
# systemd-sleep does where the command line names none) makes the kernel look there for an
# image at once, and the partition in use answers EBUSY; nothing failed.
PM_FAILURE = re.compile(
    r"Swap header not found|Cannot find swsusp signature|Swap will be unusable|"
    r"Failed to load (hibernation )?image|resume failed|Image not found \(code (?!-16\))|"
    r"Error -?\d+ resuming|Some devices failed to (suspend|power down)|"
    r"Freezing of tasks failed|Freezing remaining freezable tasks failed|"
    r"PM: Device [^ ]+ failed to|hibernation: .*(error|failed)|Cannot get swap writer"
)


def no_pm_failures(ev: CycleEvidence) -> CheckResult:
    """The guest kernel reported no failed step while sleeping or resuming."""
    failures = [line for line in ev.kernel_messages if PM_FAILURE.search(line)]
    detail = "no PM failure messages" if not failures else "kernel: " + " | ".join(failures[:3])
    return CheckResult("no_pm_failures", not failures, detail, {"lines": failures})


def _not_applicable(name: str, why: str) -> CheckResult:
    return CheckResult(name, True, f"not applicable: {why}", applicable=False)


def virtio_blk_healthy(ev: CycleEvidence) -> CheckResult:
    """On the data disk, whatever its bus (virtio-blk, NVMe, AHCI, virtio-scsi): a direct
    write in flight across the transition completed intact, a write + fsync after the wake
    reads back intact (the in-flight writer's step at the wake, else a fresh MiB), and the
    request counter advanced. The detail names the disk and its controller's driver."""
    if unmeasured := _unmeasured("virtio_blk_healthy", ev):
        return unmeasured
    b, a = ev.before, ev.after
    problems = []
    name = b.get(fact.BLK_DISK) or a.get(fact.BLK_DISK) or "?"
    disk = f"{b.get(fact.BLK_DISK_DRIVER) or a.get(fact.BLK_DISK_DRIVER) or '?'} data disk {name}"
    steps, _, why = (a.get(fact.BLK_INFLIGHT_STEPS) or "").partition(" ")
    wrote_at_wake = why == "slept" and _int(a.get(fact.BLK_INFLIGHT_MIB)) == _int(steps) + 1
    if a.get(fact.BLK_INFLIGHT_STATUS) != "0":
        problems.append(f"in-flight write ended with {a.get(fact.BLK_INFLIGHT_STATUS)}")
    if not b.get(fact.BLK_PATTERN_SHA) or a.get(fact.BLK_INFLIGHT_SHA) != b.get(
        fact.BLK_PATTERN_SHA
    ):
        problems.append("in-flight write reads back corrupt")
    fresh_ok = a.get(fact.BLK_FRESH_STATUS) == "0" and a.get(fact.BLK_FRESH_SHA) == a.get(
        fact.BLK_FRESH_REREAD_SHA
    )
    if not wrote_at_wake and not fresh_ok:
        problems.append(
            f"fresh write failed ({a.get(fact.BLK_FRESH_STATUS)}) or reads back corrupt"
        )
    if _int(a.get(fact.BLK_VDC_REQUESTS)) <= _int(b.get(fact.BLK_VDC_REQUESTS)):
        problems.append(f"request counter stuck at {a.get(fact.BLK_VDC_REQUESTS)}")
    after_wake = "" if wrote_at_wake else " and 1 MiB after"
    detail = f"{disk}: " + (
        f"{a.get(fact.BLK_INFLIGHT_MIB)} MiB written from just before the request "
        f"({_inflight_steps(a)}){after_wake} read back intact; requests "
        f"{b.get(fact.BLK_VDC_REQUESTS)} -> "
        f"{a.get(fact.BLK_VDC_REQUESTS)}"
        if not problems
        else "; ".join(problems)
    )
    keys = (
        fact.BLK_DISK,
        fact.BLK_DISK_DRIVER,
        fact.BLK_PATTERN_SHA,
        fact.BLK_INFLIGHT_STATUS,
        fact.BLK_INFLIGHT_STEPS,
        fact.BLK_INFLIGHT_MIB,
        fact.BLK_INFLIGHT_SHA,
        fact.BLK_FRESH_STATUS,
        fact.BLK_FRESH_SHA,
        fact.BLK_FRESH_REREAD_SHA,
        fact.BLK_VDC_REQUESTS,
    )
    return CheckResult(
        "virtio_blk_healthy", not problems, detail, {k: [b.get(k), a.get(k)] for k in keys}
    )


def _inflight_steps(after: dict[str, str]) -> str:
    """How the in-flight write's pacing ended ("<steps> <why>", see scripts/inflight_writer.sh)."""
    steps, _, why = (after.get(fact.BLK_INFLIGHT_STEPS) or "").partition(" ")
    of = f"{steps} of {INFLIGHT_STEPS} paced steps"
    if why == "slept":
        return f"{of} written before the guest slept, one more as it woke"
    if why == "after":
        return f"{of} written before the transition ended; the guest saw no sleep"
    if why == "paced":
        return f"all {INFLIGHT_STEPS} paced steps written before any sleep was seen"
    return f"pacing ended: {after.get(fact.BLK_INFLIGHT_STEPS) or 'unknown'}"


def suspend_counted(ev: CycleEvidence) -> CheckResult:
    """The guest's own /sys/power/suspend_stats counted one more successful suspend."""
    if not ev.expects_suspend_count:
        return _not_applicable("suspend_counted", "the kernel counts suspends, not hibernation")
    if unmeasured := _unmeasured("suspend_counted", ev):
        return unmeasured
    before, after = (
        _int(ev.before.get(fact.GUEST_SUSPEND_SUCCESS)),
        _int(ev.after.get(fact.GUEST_SUSPEND_SUCCESS)),
    )
    ok = after > before >= 0
    return CheckResult(
        "suspend_counted",
        ok,
        f"suspend_stats/success {before} -> {after}",
        {"before": before, "after": after},
    )


def clock_in_step(ev: CycleEvidence) -> CheckResult:
    """The guest's wall clock agrees with the host's after resume, within the tolerance."""
    raw = ev.after.get(fact.CLOCK_STEP_S)
    if raw is None:
        return CheckResult(
            "clock_in_step",
            False,
            "guest clock not measured "
            f"({ev.after.get(fact.CLOCK_ERROR, ev.after_error or 'no answer')})",
        )
    step = float(raw)
    ok = abs(step) <= ev.clock_tolerance_s
    detail = (
        f"guest clock {step:+.2f}s from the host (tolerance "
        f"{ev.clock_tolerance_s:g}s, ±{ev.after.get(fact.CLOCK_UNCERTAINTY_S)}s)"
    )
    return CheckResult(
        "clock_in_step", ok, detail, {"step_s": step, "tolerance_s": ev.clock_tolerance_s}
    )


# Kernel log classes; those in FAILING_CLASSES fail a cycle when they appear during it.
KERNEL_LOG_CLASSES: dict[str, re.Pattern[str]] = {
    "cpu_stall": re.compile(f"{STALL_LINE.pattern}|{TIMER_ISSUE_LINE.pattern}"),
    "bug": re.compile(r"\bBUG(?!: soft lockup)[: ]|kernel BUG at|Oops"),
    "warning": re.compile(r"WARNING: CPU: \d+|------------\[ cut here \]"),
    "call_trace": re.compile(r"Call Trace:"),
    "io_error": re.compile(
        r"I/O error|blk_update_request|Buffer I/O error|EXT4-fs error|"
        r"critical medium error"
    ),
    "pm_failure": PM_FAILURE,
    "firmware_bug": re.compile(r"\[Firmware Bug\]|ACPI BIOS Error|ACPI Error"),
}
FAILING_CLASSES = ("cpu_stall", "bug", "warning", "call_trace", "io_error", "pm_failure")


def classify_kernel_log(lines: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in lines:
        for name, pattern in KERNEL_LOG_CLASSES.items():
            if pattern.search(line):
                found.setdefault(name, []).append(line.strip())
    return found


def kernel_log_clean(ev: CycleEvidence) -> CheckResult:
    """No new BUG, WARNING, call trace, I/O error or PM failure; the taint flags unchanged."""
    if unmeasured := _unmeasured("kernel_log_clean", ev):
        return unmeasured
    found = classify_kernel_log(ev.kernel_log)
    failing = {k: v for k, v in found.items() if k in FAILING_CLASSES}
    taint = (ev.before.get(fact.GUEST_TAINT), ev.after.get(fact.GUEST_TAINT))
    tainted = bool(taint[1]) and taint[0] != taint[1]
    problems = [f"{k}: {v[0]}" for k, v in failing.items()]
    if tainted:
        problems.append(f"taint {taint[0]} -> {taint[1]}")
    detail = (
        "no new BUG/WARNING/call trace/I/O error; taint unchanged"
        if not problems
        else "; ".join(problems)
    )
    return CheckResult(
        "kernel_log_clean",
        not problems,
        detail,
        {"classified": found, "taint": list(taint), "new_lines": len(ev.kernel_log)},
    )


def virtio_net_healthy(ev: CycleEvidence) -> CheckResult:
    """The guest's NIC, whatever its model (virtio-net, e1000e ...), still bound to the driver
    it had before the sleep and up (seen through the agent), interrupts advancing, and 1 MiB
    each way over it arrives intact. A failure names the driver and the interface."""
    a = ev.after
    problems = []
    driver = ev.before.get(fact.NET_DRIVER) or a.get(fact.NET_DRIVER) or "no driver"
    if a.get(fact.NET_DRIVER) != driver:
        problems.append(f"driver {a.get(fact.NET_DRIVER) or 'none'}")
    if a.get(fact.NET_OPERSTATE) != "up" or a.get(fact.NET_CARRIER) != "1":
        problems.append(
            f"link {a.get(fact.NET_OPERSTATE) or '?'} (carrier {a.get(fact.NET_CARRIER)})"
        )
    elif a.get(fact.NET_RX_AFTER_ECHO) == a.get(fact.NET_RX_PACKETS) is not None:
        problems.append(
            f"link up but received nothing while the echo over ssh waited "
            f"(rx_packets stayed at {a.get(fact.NET_RX_PACKETS)})"
        )
    if _int(a.get(fact.NET_IRQS_AFTER_TRANSFER)) <= _int(a.get(fact.NET_IRQS)):
        problems.append(f"no interrupts during the transfers (stuck at {a.get(fact.NET_IRQS)})")
    for direction in (fact.NET_HOST_TO_GUEST, fact.NET_GUEST_TO_HOST):
        if a.get(direction) != "ok":
            problems.append(f"{direction.split('.')[1]} {a.get(direction) or 'not done'}")
    nic = f"{driver} {a.get(fact.NET_IFACE) or ev.before.get(fact.NET_IFACE) or 'nic'}"
    detail = (
        f"{nic} up, 1 MiB each way intact, interrupts "
        f"{a.get(fact.NET_IRQS)} -> {a.get(fact.NET_IRQS_AFTER_TRANSFER)}"
        if not problems
        else f"{nic}: " + "; ".join(problems)
    )
    keys = (
        fact.NET_IFACE,
        fact.NET_DRIVER,
        fact.NET_OPERSTATE,
        fact.NET_CARRIER,
        fact.NET_RX_PACKETS,
        fact.NET_RX_AFTER_ECHO,
        fact.NET_IRQS,
        fact.NET_IRQS_AFTER_TRANSFER,
        fact.NET_HOST_TO_GUEST,
        fact.NET_GUEST_TO_HOST,
    )
    return CheckResult(
        "virtio_net_healthy", not problems, detail, {k: [ev.before.get(k), a.get(k)] for k in keys}
    )


def tcp_connection_survived(ev: CycleEvidence) -> CheckResult:
    """A TCP connection (ssh) opened before sleeping still carries data after, and a 2 MiB
    transfer from the guest that was under way when it went to sleep arrives complete and
    intact."""
    if not ev.tcp_expected:
        return _not_applicable(
            "tcp_connection_survived", "the VM process was restarted, taking the host's end with it"
        )
    echo = (ev.before.get(fact.TCP_ECHO), ev.after.get(fact.TCP_ECHO))
    stream = ev.after.get(fact.TCP_STREAM)
    ok = echo == ("ok", "ok") and stream == "ok"
    detail = (
        "the connection opened before sleeping echoed data after; the transfer in flight "
        "completed intact"
        if ok
        else f"echo {echo[0]} before, {echo[1]} after; in-flight transfer: {stream or 'not judged'}"
    )
    return CheckResult(
        "tcp_connection_survived", ok, detail, {"echo": list(echo), "transfer": stream}
    )


DEFAULT_CHECKS: tuple[Check, ...] = (
    no_pm_failures,
    events_seen,
    kernel_records_seen,
    resumed_not_rebooted,
    sentinel_carried_on,
    ssh_after_resume,
    disk_roundtrip,
    virtio_blk_healthy,
    suspend_counted,
    clock_in_step,
    kernel_log_clean,
    virtio_net_healthy,
    tcp_connection_survived,
)

# After a clean shutdown and a fresh boot nothing carries on in memory: only what is on disk.
AFTER_REBOOT_CHECKS: tuple[Check, ...] = (
    events_seen,
    booted_afresh,
    ssh_after_resume,
    clock_in_step,
    virtio_net_healthy,
)


def _float(value: str | None) -> float:
    try:
        return float(value or "")
    except ValueError:
        return -1.0


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return -1
