"""A guest asked for one sleep state that enters another: the FAIL names the state it entered
as soon as its console says so, and no known issue stands in for that cause."""

import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks.verdict import CycleSeries, Verdict
from harness.cycle.run import run_cycle
from harness.errors import SuspendNotEntered
from harness.guest.console.diagnosis import other_state_entered, state_label
from harness.results.known_issues import KnownIssue, find
from harness.transitions.catalogue import S2IDLE, S3_AGENT, S3_SYSTEMCTL
from harness.transitions.marks import Marks
from tests.unit.fake_machine import FACTS, FakeMachine

LOCKUP_ISSUE = KnownIssue("*", ".", "the guest locked up|sleep sequence stopped", "TCG lockup")


def test_the_kernels_suspend_entry_line_names_the_state() -> None:
    lines = ["PM: Syncing filesystems ... done.", "[   12.5] PM: suspend entry (s2idle)"]
    assert other_state_entered(lines, "deep") == ("s2idle", "PM: suspend entry (s2idle)")
    assert other_state_entered(lines, "s2idle") is None
    assert other_state_entered(["PM: suspend entry (deep)"], "deep") is None
    assert state_label("deep") == "S3 (deep)" and state_label("shallow") == "S1 (shallow)"


def test_s3_asked_and_s2idle_entered_fails_at_once_naming_s2idle(tmp_path: Path) -> None:
    facts = FACTS.replace("s2idle [deep]", "[s2idle] deep")
    machine = FakeMachine(tmp_path, facts=facts, sleeps=False)
    machine.stuck_at = b"PM: suspend entry (s2idle)\nPM: suspend-to-idle\n"
    machine.timeouts = replace(machine.timeouts, suspend_entry=60.0)
    started = time.monotonic()
    outcome = run_cycle(machine, S3_SYSTEMCTL)
    assert time.monotonic() - started < 5  # the console line, not the entry limit
    assert outcome.verdict is Verdict.FAIL
    assert outcome.reason.startswith(
        "suspend-entry: systemctl suspend (in guest) was sent, but the guest kernel entered s2idle "
        "instead of S3 (deep) ('PM: suspend entry (s2idle)')"
    ), outcome.reason
    assert "/sys/power/mem_sleep read '[s2idle] deep' before the request" in outcome.reason
    assert "sleep sequence stopped" not in outcome.reason  # it stopped nowhere: it idles
    assert outcome.cause == "entered s2idle, not deep"
    assert outcome.to_json()["cause"] == outcome.cause
    assert machine.stopped


def test_s2idle_asked_and_s3_entered_fails_naming_s3(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    marks = Marks.now(machine)
    machine.console.feed(b"PM: suspend entry (deep)\n")
    with pytest.raises(SuspendNotEntered) as raised:
        S2IDLE.entry.wait(machine, marks, None, "echo mem > /sys/power/state")
    assert "entered S3 (deep) instead of s2idle" in str(raised.value), raised.value
    assert raised.value.evidence == {"entered_state": "deep", "asked_state": "s2idle"}


def test_a_clean_s3_cycle_names_no_cause(tmp_path: Path) -> None:
    outcome = run_cycle(FakeMachine(tmp_path), S3_AGENT)
    assert outcome.verdict is Verdict.PASS and outcome.cause == ""


def test_a_known_issue_never_absorbs_a_fail_whose_cause_is_named(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path, sleeps=False)
    machine.stuck_at = b"PM: suspend entry (s2idle)\n"
    series = CycleSeries(S3_AGENT.id, 1, [run_cycle(machine, S3_AGENT)])
    reason = series.reason + "; then the guest locked up: 2 of 2 vCPUs"
    assert series.cause == "entered s2idle, not deep"
    assert find([LOCKUP_ISSUE], series.transition, "6.1.0", reason, cause=series.cause) is None
    # Without a named cause the same reason is the known issue's.
    assert find([LOCKUP_ISSUE], series.transition, "6.1.0", reason) is LOCKUP_ISSUE
    # An issue that names the cause itself does match it.
    named = KnownIssue("s3-*", ".", ".", "firmware offers no S3", cause="entered s2idle")
    assert find([LOCKUP_ISSUE, named], "s3-agent", "6.1.0", reason, cause=series.cause) is named


IO_TREE = "address-space: I/O\n  00000000000000b2-00000000000000b3 (prio 0, i/o): apm-io\n"
PM_BLOCK = "  0000000000000604-0000000000000605 (prio 0, i/o): acpi-cnt\n"


def slept_unseen(tmp_path: Path, tree: str) -> FakeMachine:
    """A guest whose kernel goes through S3 and back at once, QEMU seeing no SUSPEND."""
    machine = FakeMachine(tmp_path, sleeps=False)
    machine.stuck_at = (
        b"PM: suspend entry (deep)\nACPI: PM: Preparing to enter system sleep state S3\n"
        b"ACPI: PM: Low-level resume complete\nPM: suspend exit\n"
    )
    machine.hmp = lambda command: tree  # type: ignore[method-assign]
    return machine


def test_a_sleep_request_that_reached_no_pm_register_is_named(tmp_path: Path) -> None:
    outcome = run_cycle(slept_unseen(tmp_path, IO_TREE), S3_AGENT)
    assert outcome.verdict is Verdict.FAIL
    assert "but the platform never saw suspended" in outcome.reason, outcome.reason
    assert "the chipset's ACPI PM registers are not mapped (no acpi-cnt" in outcome.reason
    assert outcome.cause == "ACPI PM registers unmapped"


def test_mapped_pm_registers_name_no_cause(tmp_path: Path) -> None:
    outcome = run_cycle(slept_unseen(tmp_path, IO_TREE + PM_BLOCK), S3_AGENT)
    assert outcome.verdict is Verdict.FAIL
    assert "ACPI PM registers" not in outcome.reason and outcome.cause == ""
