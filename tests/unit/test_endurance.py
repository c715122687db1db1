"""Endurance tallies: pass rate, failures grouped by class with the first cycle of each; the
run's limits (cycles, time, failures), its idle time and its progress line."""

import random

import pytest

from harness.checks.verdict import CheckResult, CycleEvidence, CycleOutcome, Verdict
from harness.errors import SetupError
from harness.tools.endurance import (
    EnduranceTally,
    Limits,
    RunClock,
    failure_class,
    parse_delay,
    parse_duration,
)


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


def test_durations_and_delays_are_read_or_refused_in_one_line() -> None:
    assert parse_duration("90") == parse_duration("90s") == 90.0
    assert parse_duration("10m") == 600.0 and parse_duration("1h30m") == 5400.0
    assert parse_delay("5,60") == (5.0, 60.0) and parse_delay("1m") == (60.0, 60.0)
    for bad in ("ten minutes", "10x", ""):
        with pytest.raises(SetupError, match="write it as 90s, 10m"):
            parse_duration(bad)
    with pytest.raises(SetupError, match="--delay MIN,MAX"):
        Limits(cycles=1, delay=(9.0, 2.0)).check()
    with pytest.raises(SetupError, match="--maxfail must be at least 1"):
        Limits(cycles=1, maxfail=0).check()


def test_the_clock_stops_on_the_first_limit_and_says_what_is_left() -> None:
    clock = RunClock(Limits(cycles=10, seconds=600.0, maxfail=2))
    assert clock.stop_reason(3, 1) is None
    assert clock.stop_reason(3, 2) == "2 failed cycle(s) (--maxfail 2)"
    assert clock.stop_reason(10, 0) == "10 cycles done"
    clock.started -= 600  # as if ten minutes had gone by
    assert clock.stop_reason(3, 0) == "10:00 elapsed"
    assert clock.delay(random.Random(1)) == 0.0  # no idle time past the end of the run


def test_the_progress_line_has_the_pass_rate_and_the_time_left() -> None:
    clock = RunClock(Limits(seconds=600.0, delay=(5.0, 10.0)))
    clock.started -= 60
    tally = EnduranceTally("s3-agent")
    tally.add(1, outcome(Verdict.PASS), 1.0)
    tally.add(2, outcome(Verdict.FAIL, "wake: no answer"), 1.0)
    line = clock.line(2, outcome(Verdict.FAIL, "wake: no answer"), tally)
    assert line.startswith("cycle 2: FAIL wake: no answer | 1/2 passed (50.0%), 1:00 elapsed")
    assert line.endswith("9:00 left")
    assert 5.0 <= clock.delay(random.Random(1)) <= 10.0
    assert tally.cycles[1]["timings"] == {} and tally.cycles[1]["started"]
