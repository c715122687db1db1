"""Checks: pure functions from a cycle's evidence to a CheckResult. They never touch a guest."""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.verdict import CheckResult, CycleEvidence

Check = Callable[[CycleEvidence], CheckResult]


def _in_order(expected: list[str], seen: list[str], match: Callable[[str, str], bool]) -> list[str]:
    """The expected items not found in ``seen`` in that order."""
    position = 0
    for item in seen:
        if position < len(expected) and match(expected[position], item):
            position += 1
    return expected[position:]


def events_seen(ev: CycleEvidence) -> CheckResult:
    """The platform saw the guest enter and leave the state, in that order."""
    expected = ev.expected_events
    names = [e["event"] for e in ev.events]
    missing = _in_order(expected, names, str.__eq__)
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


def resumed_not_rebooted(ev: CycleEvidence) -> CheckResult:
    """Same boot_id and the RAM-only marker survived: the guest resumed, it did not boot."""
    keys = ("guest.boot_id", "guest.ram_marker")
    facts = {k: (ev.before.get(k), ev.after.get(k)) for k in keys}
    changed = [k for k, (b, a) in facts.items() if not b or b != a]
    detail = (
        "same boot_id and RAM marker"
        if not changed
        else f"guest rebooted: {', '.join(changed)} changed "
        f"({ev.before.get('guest.boot_id')} -> {ev.after.get('guest.boot_id')})"
    )
    return CheckResult(
        "resumed_not_rebooted",
        not changed,
        detail,
        {k: {"before": b, "after": a} for k, (b, a) in facts.items()},
    )


def sentinel_carried_on(ev: CycleEvidence) -> CheckResult:
    """The process started before sleeping has the same PID, is alive and still counting."""
    before_pid, after_pid = ev.before.get("sentinel.pid"), ev.after.get("sentinel.pid")
    alive = ev.after.get("sentinel.alive") == "yes"
    count_before = _int(ev.before.get("sentinel.count"))
    count_after = _int(ev.after.get("sentinel.count"))
    count_later = _int(ev.after.get("sentinel.count_later"))
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
    written, reread = ev.before.get("disk.written_sha"), ev.after.get("disk.reread_sha")
    fresh, fresh_reread = ev.after.get("disk.fresh_sha"), ev.after.get("disk.fresh_reread_sha")
    problems = []
    if not written or written != reread:
        problems.append(f"file written before reads back as {reread or 'nothing'}")
    if not fresh or fresh != fresh_reread or ev.after.get("disk.fresh_write_status") != "0":
        problems.append(f"write after resume reads back as {fresh_reread or 'nothing'}")
    evidence = {"written": written, "reread": reread, "fresh": fresh, "fresh_reread": fresh_reread}
    detail = "4 MiB before and after read back intact" if not problems else "; ".join(problems)
    return CheckResult("disk_roundtrip", not problems, detail, evidence)


# Messages with which the guest kernel reports that a sleep or resume step went wrong.
PM_FAILURE = re.compile(
    r"Swap header not found|Cannot find swsusp signature|Swap will be unusable|"
    r"Failed to load (hibernation )?image|resume failed|Image not found \(code|"
    r"Error -?\d+ resuming|Some devices failed to (suspend|power down)|"
    r"Freezing of tasks failed|Freezing remaining freezable tasks failed|"
    r"PM: Device [^ ]+ failed to|hibernation: .*(error|failed)|Cannot get swap writer"
)


def no_pm_failures(ev: CycleEvidence) -> CheckResult:
    """The guest kernel reported no failed step while sleeping or resuming."""
    failures = [line for line in ev.kernel_messages if PM_FAILURE.search(line)]
    detail = "no PM failure messages" if not failures else "kernel: " + " | ".join(failures[:3])
    return CheckResult("no_pm_failures", not failures, detail, {"lines": failures})


DEFAULT_CHECKS: tuple[Check, ...] = (
    no_pm_failures,
    events_seen,
    kernel_records_seen,
    resumed_not_rebooted,
    sentinel_carried_on,
    ssh_after_resume,
    disk_roundtrip,
)


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return -1
