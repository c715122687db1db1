"""Bisect judgements: a run's results to good / bad / skip, repeats and flaky builds."""

from pathlib import Path
from typing import Any

from harness.tools.bisect import ABORT, BAD, GOOD, SKIP, Build, RunJudgement, decide, judge_run


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
