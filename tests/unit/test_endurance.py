"""Endurance tallies: pass rate, failures grouped by class with the first cycle of each."""

from harness.checks.verdict import CheckResult, CycleEvidence, CycleOutcome, Verdict
from harness.tools.endurance import EnduranceTally, failure_class


def outcome(verdict: Verdict, reason: str = "", failed: tuple[str, ...] = ()) -> CycleOutcome:
    checks = [CheckResult(name, False, "x") for name in failed]
    return CycleOutcome(verdict, reason, CycleEvidence("s3-agent"), checks=checks)


def test_failures_are_classed_by_checks_or_stage() -> None:
    assert failure_class(outcome(Verdict.PASS)) == "pass"
    failed = outcome(Verdict.FAIL, "checks", ("virtio_net_healthy", "clock_in_step"))
    assert failure_class(failed) == "checks: clock_in_step, virtio_net_healthy"
    timed_out = outcome(Verdict.FAIL, "suspend-entry: QEMU never saw suspended")
    assert failure_class(timed_out) == "fail: suspend-entry"


def test_summary_counts_and_first_cycles() -> None:
    tally = EnduranceTally("s3-agent")
    results = [
        outcome(Verdict.PASS),
        outcome(Verdict.FAIL, "wake: no answer"),
        outcome(Verdict.PASS),
        outcome(Verdict.FAIL, "wake: no answer"),
        outcome(Verdict.ERROR, "boot: timed out"),
    ]
    for number, result in enumerate(results, 1):
        tally.add(number, result, 1.0)
    summary = tally.summary()
    assert (summary["passed"], summary["cycles"], summary["pass_rate"]) == (2, 5, 0.4)
    assert summary["failures"] == [
        {"class": "fail: wake", "count": 2, "first_cycle": 2},
        {"class": "error: boot", "count": 1, "first_cycle": 5},
    ]
