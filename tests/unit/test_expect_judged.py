"""A fault-injection case whose cycle failed before any check ran, at a known issue, xfails
naming the issue; a cycle whose checks ran, or a failure no known issue covers, is left to the
case's own assertions."""

import pytest

from harness.checks.verdict import CheckResult, CycleEvidence, CycleOutcome, CycleSeries, Verdict
from harness.plugin import expect_judged

LOST_PORT = (
    "resume: the guest is up (ssh answers) but its agent port reads host_connected 0 "
    "(guest_connected 1) in every look over 25s"
)
KERNEL_7_3 = {"kernel": "7.3.4+deb13-amd64", "qemu_version": "7.2.22", "accel": "tcg"}


def _series(reason: str, checks: list[CheckResult]) -> CycleSeries:
    outcome = CycleOutcome(
        Verdict.FAIL, reason, CycleEvidence("s3-agent"), checks=checks, combination=KERNEL_7_3
    )
    return CycleSeries("s3-agent", 1, [outcome])


def test_a_cycle_ended_before_its_checks_at_a_known_issue_xfails() -> None:
    series = _series(LOST_PORT, [])
    with pytest.raises(pytest.xfail.Exception, match="the fault was not judged"):
        expect_judged(series)
    assert series.known_issue.startswith("Linux 7.3 guests")


def test_checks_that_ran_or_an_unknown_failure_are_left_to_the_case() -> None:
    judged = CheckResult("virtio_net_healthy", False, "virtio_net eth0: link down", {})
    expect_judged(_series(LOST_PORT, [judged]))
    expect_judged(_series("resume: something nobody has seen", []))
