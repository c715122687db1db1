"""``git bisect run`` on a QEMU, guest kernel or firmware build: run the chosen cases on the
build and exit 0 (good), 1 (bad) or 125 (skip: this build cannot be judged).

A case is *bad* when its verdict is FAIL, a known issue (XFAIL: the failure is still there) or
UNSUPPORTED (the build no longer offers the state the good end of the bisect offered). It
*cannot be judged* when the harness could not run it: ERROR (the build would not start or
boot, a kernel panic at boot) or a skip without a verdict. With ``repeat`` > 1 a bad run is
repeated, and the build is called bad only when every run is bad; a failure that comes and
goes is *flaky*, and ``flaky`` says what that counts as (default: skip).

Mistakes in the command itself (no case selected, unknown option) exit 128, which makes
``git bisect run`` stop rather than mark a commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.paths import REPO_ROOT
from harness.results.merge import record_verdict

GOOD, BAD, SKIP, ABORT = 0, 1, 125, 128
FLAKY_POLICIES = {"skip": SKIP, "bad": BAD, "good": GOOD}
DEFAULT_CASES = ("-k", "s3-agent")
ROOT = REPO_ROOT
# pytest's exit codes that say the command, not the build, is wrong (usage, no tests).
PYTEST_USAGE_ERRORS = {4: "pytest rejected the arguments", 5: "no test case was selected"}


@dataclass(frozen=True)
class Build:
    """The artifacts under test; each None means the harness's default."""

    qemu: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    bios: str | None = None
    ovmf: str | None = None

    def pytest_args(self) -> list[str]:
        """As pytest options, with paths made absolute (pytest runs in the harness's tree)."""
        args: list[str] = []
        for option, value in (
            ("--qemu", self.qemu),
            ("--kernel", self.kernel),
            ("--initrd", self.initrd),
            ("--seabios", self.bios),
            ("--ovmf", self.ovmf),
        ):
            if value is not None:
                args += [option, _absolute(value)]
        if self.ovmf is not None:
            args += ["--firmware", "ovmf", "--machine-type", "q35"]
        return args


@dataclass(frozen=True)
class RunJudgement:
    status: int  # GOOD, BAD, SKIP or ABORT
    reason: str


def judge_run(pytest_exit: int, results: dict[str, Any] | None) -> RunJudgement:
    """One pytest run of the selected cases: good, bad, or cannot be judged."""
    if pytest_exit in PYTEST_USAGE_ERRORS:
        return RunJudgement(ABORT, PYTEST_USAGE_ERRORS[pytest_exit])
    if results is None or not results.get("tests"):
        return RunJudgement(SKIP, f"the harness could not run (pytest exit {pytest_exit})")
    bad, unjudged = [], []
    for record in results["tests"]:
        verdict = record_verdict(record)
        if record.get("outcome") == "skipped" and not record.get("verdicts"):
            verdict = "SKIPPED"
        line = f"{record['test']}: {verdict}"
        detail = _error_line(record.get("error") or "") or _first_reason(record)
        if detail:
            line += f" ({detail[:300]})"
        if verdict in ("FAIL", "XFAIL", "UNSUPPORTED"):
            bad.append(line)
        elif verdict != "PASS":
            unjudged.append(line)
    if bad:
        return RunJudgement(BAD, "; ".join(bad))
    if unjudged:
        return RunJudgement(SKIP, "; ".join(unjudged))
    return RunJudgement(GOOD, f"{len(results['tests'])} case(s) passed")


def decide(runs: Sequence[RunJudgement], flaky: str = "skip") -> RunJudgement:
    """The build's verdict from its runs: bad only if every run was bad."""
    statuses = {run.status for run in runs}
    if ABORT in statuses:
        return next(run for run in runs if run.status == ABORT)
    if statuses == {BAD}:
        return RunJudgement(BAD, f"bad in {len(runs)} of {len(runs)} run(s): {runs[0].reason}")
    if BAD in statuses:
        count = sum(run.status == BAD for run in runs)
        reason = next(run.reason for run in runs if run.status == BAD)
        return RunJudgement(
            FLAKY_POLICIES[flaky], f"flaky: bad in {count} of {len(runs)} runs ({reason})"
        )
    if SKIP in statuses:
        return next(run for run in runs if run.status == SKIP)
    return runs[-1]


def run_bisect(
    build: Build,
    pytest_args: Sequence[str],
    repeat: int,
    flaky: str,
    report_dir: Path,
    progress: Callable[[str], None],
) -> RunJudgement:
    """Run the cases on ``build`` (up to ``repeat`` times while they fail)."""
    selection = list(pytest_args) or list(DEFAULT_CASES)
    runs: list[RunJudgement] = []
    for attempt in range(1, repeat + 1):
        judgement = _one_run(build, selection, report_dir, progress)
        progress(f"run {attempt}/{repeat}: {_word(judgement.status)}: {judgement.reason}")
        runs.append(judgement)
        if judgement.status != BAD:
            break  # a good, unjudged or aborted run needs no repeat
    return decide(runs, flaky)


def _one_run(
    build: Build, selection: list[str], report_dir: Path, progress: Callable[[str], None]
) -> RunJudgement:
    report_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bisect-", dir=report_dir) as scratch:
        argv = [
            str(Path(sys.executable).with_name("pytest")),
            "testcases",
            "-m",
            "not selftest",
            "--cold-boot",  # one or two cases: a checkpoint would cost more than it saves
            "-p",
            "no:cacheprovider",
            "--report-dir",
            scratch,
            *build.pytest_args(),
            *selection,
        ]
        progress("pytest " + " ".join(argv[1:]))
        code = subprocess.run(argv, cwd=ROOT, check=False).returncode
        results = _results(Path(scratch))
        judgement = judge_run(code, results)
        _keep(Path(scratch), report_dir)
    return judgement


def _results(scratch: Path) -> dict[str, Any] | None:
    for path in sorted(scratch.glob("*/results.json")):
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    return None


def _keep(scratch: Path, report_dir: Path) -> None:
    """The run's report directory survives the scratch directory (evidence of each step)."""
    for run in scratch.iterdir():
        if run.is_dir() and not run.is_symlink():
            run.rename(report_dir / run.name)


def _error_line(text: str) -> str:
    """The exception's own line from pytest's failure text (``E   QemuStartError: …``)."""
    raised = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    return raised[0] if raised else text.strip().splitlines()[-1] if text.strip() else ""


def _first_reason(record: dict[str, Any]) -> str:
    for series in record.get("series") or []:
        for cycle in series.get("cycles") or []:
            if cycle.get("verdict") not in (None, "PASS") and cycle.get("reason"):
                return str(cycle["reason"])
        if series.get("reason"):
            return str(series["reason"])
    return ""


def _absolute(value: str) -> str:
    """A path made absolute; a bare command or a Debian version stays as it is."""
    return str(Path(value).resolve()) if os.sep in value or Path(value).exists() else value


def _word(status: int) -> str:
    return {GOOD: "good", BAD: "bad", SKIP: "skip", ABORT: "abort"}[status]


def describe(judgement: RunJudgement) -> str:
    return f"bisect: {_word(judgement.status)} (exit {judgement.status}): {judgement.reason}"
