"""Bisect judgements: a run's results to good / bad / skip, repeats and flaky builds, and time
judged by a bound given or found from the good build's runs."""

import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import SetupError
from harness.tools.bisect import (
    ABORT,
    BAD,
    GOOD,
    SKIP,
    Build,
    RunJudgement,
    TimeBounds,
    decide,
    judge_run,
    parse_slower_than,
    time_bounds,
)


def record(verdicts: list[str], outcome: str = "passed", reason: str = "") -> dict[str, Any]:
    series = [{"verdict": v, "reason": reason, "cycles": []} for v in verdicts]
    return {"test": "t[s3-agent]", "outcome": outcome, "verdicts": verdicts, "series": series}


def results(*records: dict[str, Any]) -> dict[str, Any]:
    return {"tests": list(records), "cells": []}


def test_passing_cases_are_good() -> None:
    assert judge_run(0, results(record(["PASS"]), record(["PASS"]))).status == GOOD


def test_a_failed_check_is_bad_and_says_why() -> None:
    judgement = judge_run(1, results(record(["PASS"]), record(["FAIL"], "failed", "clock")))
    assert judgement.status == BAD
    assert "FAIL (clock)" in judgement.reason


def test_a_state_the_build_no_longer_offers_is_bad() -> None:
    assert judge_run(0, results(record(["UNSUPPORTED"], "skipped"))).status == BAD


def test_a_known_issue_still_failing_is_bad() -> None:
    assert judge_run(0, results(record(["FAIL"], "skipped"))).status == BAD


def test_a_build_that_does_not_boot_cannot_be_judged() -> None:
    error = "    def boot(self):\n>  raise\nE       harness.errors.BootTimeout: timed out\nE   more"
    judgement = judge_run(1, results(record([], "failed") | {"error": error}))
    assert judgement.status == SKIP
    assert "ERROR (harness.errors.BootTimeout: timed out)" in judgement.reason


def test_a_skip_without_verdict_cannot_be_judged() -> None:
    assert judge_run(0, results(record([], "skipped"))).status == SKIP


def test_no_results_cannot_be_judged() -> None:
    assert judge_run(3, None).status == SKIP


def test_a_selection_of_nothing_stops_the_bisect() -> None:
    assert judge_run(5, results()).status == ABORT
    assert judge_run(4, None).status == ABORT


BAD_RUN = RunJudgement(BAD, "s3-agent: FAIL")
GOOD_RUN = RunJudgement(GOOD, "passed")


def test_bad_only_when_every_repeat_is_bad() -> None:
    assert decide([BAD_RUN, BAD_RUN, BAD_RUN]).status == BAD
    flaky = decide([BAD_RUN, GOOD_RUN])
    assert flaky.status == SKIP
    assert flaky.reason.startswith("flaky: bad in 1 of 2 runs")
    assert decide([BAD_RUN, GOOD_RUN], flaky="bad").status == BAD
    assert decide([BAD_RUN, GOOD_RUN], flaky="good").status == GOOD


def test_a_single_good_run_is_good() -> None:
    assert decide([GOOD_RUN]).status == GOOD


def test_build_paths_become_absolute_and_ovmf_means_q35(tmp_path: Path) -> None:
    (tmp_path / "qemu").write_text("")
    args = Build(qemu="build/qemu-system-x86_64", ovmf=str(tmp_path), bios=None).pytest_args()
    assert args[0] == "--qemu" and Path(args[1]).is_absolute()
    assert args[-4:] == ["--firmware", "ovmf", "--machine-type", "q35"]
    assert Build(qemu="10.0").pytest_args() == ["--qemu", "10.0"]


def timed(entry_s: list[float], cell: str = "cellA") -> dict[str, Any]:
    cycles = [
        {"verdict": "PASS", "evidence": {"timings": {"request_to_entry": s}}} for s in entry_s
    ]
    series = [{"verdict": "PASS", "reason": "", "cycles": cycles}]
    return {
        "test": f"t.py::test_s3[{cell}-s3-agent]",
        "cell": cell,
        "outcome": "passed",
        "verdicts": ["PASS"],
        "series": series,
    }


def test_a_passing_case_slower_than_its_bound_is_bad() -> None:
    bounds = TimeBounds(parse_slower_than(["request_to_entry=5"]))
    assert judge_run(0, results(timed([2.0, 3.0])), bounds).status == GOOD
    judgement = judge_run(0, results(timed([6.0, 9.0, 2.0])), bounds)
    assert judgement.status == BAD
    assert judgement.reason.endswith("slower: request_to_entry 6.00s > 5.00s")


def test_bounds_from_the_good_builds_runs_follow_their_spread(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "results.json").write_text(json.dumps(results(timed([2.0, 2.1, 1.9, 2.0]))))
    # The bad build's cell has another QEMU: the case is matched without its cell.
    bounds = time_bounds([], [str(good)], ["request_to_entry"])
    assert bounds.bound("t.py::test_s3[s3-agent]", "request_to_entry") == pytest.approx(2.5)
    assert judge_run(0, results(timed([2.3], "cellB")), bounds).status == GOOD
    assert judge_run(0, results(timed([3.1], "cellB")), bounds).status == BAD


def test_bounds_given_wrongly_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="the stage is one of request_to_entry"):
        parse_slower_than(["request=5"])
    with pytest.raises(SetupError, match="write STAGE=SECONDS"):
        parse_slower_than(["request_to_entry=soon"])
    (tmp_path / "results.json").write_text(json.dumps(results(timed([2.0]))))
    with pytest.raises(SetupError, match="needs at least 3 cycles of the good build"):
        time_bounds([], [str(tmp_path)], [])
