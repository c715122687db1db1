import pytest

from harness.checks.judges import (
    booted_afresh,
    disk_roundtrip,
    events_seen,
    kernel_log_clean,
    resumed_not_rebooted,
    sentinel_carried_on,
    ssh_after_resume,
    virtio_blk_healthy,
)
from harness.checks.verdict import CycleEvidence
from harness.machines.qemu.signals import qmp_signals

BEFORE = {
    "guest.boot_id": "b1",
    "guest.ram_marker": "m1",
    "sentinel.pid": "100",
    "sentinel.count": "10",
    "disk.written_sha": "aa",
}
AFTER = {
    "guest.boot_id": "b1",
    "guest.ram_marker": "m1",
    "sentinel.pid": "100",
    "sentinel.alive": "yes",
    "sentinel.count": "12",
    "sentinel.count_later": "13",
    "disk.reread_sha": "aa",
    "disk.fresh_sha": "bb",
    "disk.fresh_reread_sha": "bb",
    "disk.fresh_write_status": "0",
}


def evidence(
    state: str = "s3", events: tuple[str, ...] = ("SUSPEND", "WAKEUP"), **after: str
) -> CycleEvidence:
    expected = {"s3": ["suspended", "woken"], "s4": ["hibernated", "powered-off"]}[state]
    return CycleEvidence(
        "t",
        expected_events=expected,
        events=[{"event": e, "signals": list(qmp_signals(e, {}))} for e in events],
        before=dict(BEFORE),
        after={**AFTER, **after},
    )


def test_clean_cycle_passes_every_check() -> None:
    ev = evidence()
    for check in (
        events_seen,
        resumed_not_rebooted,
        sentinel_carried_on,
        ssh_after_resume,
        disk_roundtrip,
    ):
        assert check(ev).passed, check(ev).detail


@pytest.mark.parametrize(
    ("state", "events", "missing"),
    [
        ("s3", ("WAKEUP",), "suspended"),
        ("s3", ("SUSPEND",), "woken"),
        ("s3", ("WAKEUP", "SUSPEND"), "woken"),  # order matters
        ("s4", ("SUSPEND_DISK",), "powered-off"),
    ],
)
def test_events_seen_names_what_is_missing(
    state: str, events: tuple[str, ...], missing: str
) -> None:
    result = events_seen(evidence(state, events))
    assert not result.passed and missing in result.detail


def test_reboot_is_caught_by_boot_id() -> None:
    result = resumed_not_rebooted(evidence(**{"guest.boot_id": "b2", "guest.ram_marker": "m2"}))
    assert not result.passed and "rebooted" in result.detail


@pytest.mark.parametrize(
    ("after", "problem"),
    [
        ({"sentinel.pid": "200"}, "pid 100 -> 200"),
        ({"sentinel.alive": "no"}, "process gone"),
        ({"sentinel.count_later": "12"}, "counter stopped"),
        ({"sentinel.count": "3"}, "went back"),
    ],
)
def test_sentinel_problems(after: dict[str, str], problem: str) -> None:
    result = sentinel_carried_on(evidence(**after))
    assert not result.passed and problem in result.detail


def test_disk_corruption_and_failed_write_are_caught() -> None:
    assert not disk_roundtrip(evidence(**{"disk.reread_sha": "zz"})).passed
    assert not disk_roundtrip(evidence(**{"disk.fresh_reread_sha": ""})).passed
    failed = disk_roundtrip(evidence(**{"disk.fresh_write_status": "1"}))
    assert not failed.passed
    assert failed.detail == "write after resume failed (dd status 1)"


def test_a_cpu_stall_in_the_kernel_log_fails_it_named_first() -> None:
    ev = evidence()
    ev.kernel_log = [
        "kern  :err   : rcu: INFO: rcu_preempt self-detected stall on CPU",
        "kern  :warn  : Call Trace:",
        "kern  :err   : watchdog: BUG: soft lockup - CPU#1 stuck for 48s! [resume:135]",
    ]
    result = kernel_log_clean(ev)
    assert not result.passed
    assert result.detail.startswith("cpu_stall: kern  :err   : rcu: INFO: rcu_preempt self-")
    assert "bug:" not in result.detail  # a soft lockup is a stall, not a BUG
    ev.kernel_log = ["kern  :info  : PM: suspend exit"]
    assert kernel_log_clean(ev).passed


def test_no_ssh_after_resume_fails() -> None:
    ev = CycleEvidence("t", before=dict(BEFORE), after_error="timed out")
    assert not ssh_after_resume(ev).passed


def test_kernel_records_in_order_modern_and_older_wordings() -> None:
    from harness.checks.judges import kernel_records_seen
    from harness.transitions.catalogue import S3_RECORDS

    modern = [
        "PM: suspend entry (deep)",
        "ACPI: PM: Waking up from system sleep state S3",
        "PM: suspend exit",
    ]
    older = [
        "PM: Syncing filesystems ... done.",
        "ACPI: Waking up from system sleep state S3",
        "PM: Finishing wakeup.",
    ]
    for lines in (modern, older):
        ev = CycleEvidence("t", expected_kernel_records=list(S3_RECORDS), kernel_messages=lines)
        assert kernel_records_seen(ev).passed, lines
    ev = CycleEvidence("t", expected_kernel_records=list(S3_RECORDS), kernel_messages=modern[:1])
    result = kernel_records_seen(ev)
    assert not result.passed and "Waking up" in result.detail


def test_booted_afresh_fails_when_the_guest_was_never_shut_down() -> None:
    resumed = evidence()  # same boot_id and RAM marker: the guest only slept
    assert not booted_afresh(resumed).passed
    assert "same boot_id" in booted_afresh(resumed).detail
    rebooted = evidence(**{"guest.boot_id": "b2", "guest.ram_marker": "m2"})
    assert booted_afresh(rebooted).passed, booted_afresh(rebooted).detail
    lost = evidence(**{"guest.boot_id": "b2", "guest.ram_marker": "m2", "disk.reread_sha": "x"})
    assert "reads back as x" in booted_afresh(lost).detail


BLK_BEFORE = {"blk.pattern_sha": "p", "blk.vdc_requests": "5"}
BLK_AFTER = {
    "blk.inflight_status": "0",
    "blk.inflight_sha": "p",
    "blk.vdc_requests": "9",
}
FRESH = {"blk.fresh_status": "0", "blk.fresh_sha": "f", "blk.fresh_reread_sha": "f"}


@pytest.mark.parametrize(
    ("steps", "mib", "fresh", "passed"),
    [
        # The writer's step at the wake is the write after it: no fresh MiB needed.
        ("2 slept", "3", {}, True),
        ("2 slept", "3", FRESH, True),
        # No step at the wake (a sleep the guest did not see, or none written): a fresh MiB.
        ("2 after", "2", FRESH, True),
        ("2 after", "2", {}, False),
        ("2 slept", "2", {}, False),
        ("16 paced", "16", {}, False),
        ("2 after", "2", {**FRESH, "blk.fresh_reread_sha": "differs from the pattern"}, False),
    ],
)
def test_a_write_after_the_wake_is_required_of_the_scratch_disk(
    steps: str, mib: str, fresh: dict[str, str], passed: bool
) -> None:
    ev = evidence()
    ev.before.update(BLK_BEFORE)
    ev.after.update({**BLK_AFTER, "blk.inflight_steps": steps, "blk.inflight_mib": mib, **fresh})
    result = virtio_blk_healthy(ev)
    assert result.passed is passed, result.detail
    if passed and not fresh:
        assert "one more as it woke) read back intact" in result.detail, result.detail
