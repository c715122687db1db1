"""``git bisect run`` on a QEMU, guest kernel or firmware build: run the chosen cases on the
build and exit 0 (good), 1 (bad) or 125 (skip: this build cannot be judged).

A case is *bad* when its verdict is FAIL, a known issue (XFAIL: the failure is still there) or
UNSUPPORTED (the build no longer offers the state the good end of the bisect offered). It
*cannot be judged* when the harness could not run it: ERROR (the build would not start or
boot, a kernel panic at boot) or a skip without a verdict. With ``repeat`` > 1 a bad run is
repeated, and the build is called bad only when every run is bad; a failure that comes and
goes is *flaky*, and ``flaky`` says what that counts as (default: skip).

Time can be judged too: with ``slower_than`` a case that passes but whose stage took longer
than a bound is bad. A bound is given in seconds (``--slower-than request_to_entry=5``) or
found from runs of the good build (``--slower-than-good DIR``): its cycles' median of that
stage plus the run-to-run spread, by the rule ``./run history`` follows.

Mistakes in the command itself (no case selected, unknown option) exit 128, which makes
``git bisect run`` stop rather than mark a commit.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SetupError
from harness.paths import REPO_ROOT
from harness.results.history import STAGES, slow_threshold
from harness.results.merge import case_name, load_run, record_verdict

GOOD, BAD, SKIP, ABORT = 0, 1, 125, 128
FLAKY_POLICIES = {"skip": SKIP, "bad": BAD, "good": GOOD}
DEFAULT_CASES = ("-k", "s3-agent")
GOOD_STAGES = ("request_to_entry", "wake_to_ready")  # judged by --slower-than-good
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
class TimeBounds:
    """How long a stage may take before a passing case counts as bad: a bound for every case
    (``fixed``, by stage) or per case from the good build's runs (``from_good``)."""

    fixed: dict[str, float] = field(default_factory=dict)
    from_good: dict[tuple[str, str], float] = field(default_factory=dict)  # (case, stage)

    def bound(self, case: str, stage: str) -> float | None:
        bounds = [b for b in (self.fixed.get(stage), self.from_good.get((case, stage))) if b]
        return min(bounds) if bounds else None

    def exceeded(self, record: dict[str, Any]) -> list[str]:
        """``stage 9.10s > 5.00s`` for each bounded stage the record's cycles took too long
        in (their median)."""
        case = case_name(record["test"], record.get("cell"))
        found = []
        for stage, seconds in stage_medians(record).items():
            bound = self.bound(case, stage)
            if bound is not None and seconds > bound:
                found.append(f"{stage} {seconds:.2f}s > {bound:.2f}s")
        return found


def time_bounds(slower_than: list[str], good_runs: list[str], stages: list[str]) -> TimeBounds:
    """The bounds the command line gives: ``STAGE=SECONDS`` items and the good build's runs."""
    from_good = bounds_from_good(map(Path, good_runs), stages or GOOD_STAGES) if good_runs else {}
    return TimeBounds(parse_slower_than(slower_than), from_good)


def parse_slower_than(items: Iterable[str]) -> dict[str, float]:
    """``STAGE=SECONDS`` items as bounds by stage; a one-line error names what is wrong."""
    bounds: dict[str, float] = {}
    for item in items:
        stage, _, seconds = item.partition("=")
        if stage not in STAGES:
            raise SetupError(
                f"--slower-than {item}: the stage is one of {', '.join(STAGES)} (STAGE=SECONDS)"
            )
        try:
            bounds[stage] = float(seconds)
        except ValueError:
            raise SetupError(f"--slower-than {item}: write STAGE=SECONDS, e.g. {stage}=5") from None
    return bounds


def bounds_from_good(paths: Iterable[Path], stages: Sequence[str]) -> dict[tuple[str, str], float]:
    """(case, stage) -> the bound above which the good build's ``paths`` say it is slower:
    every cycle of theirs is a value; a stage needs a few cycles to show its spread."""
    values: dict[tuple[str, str], list[float]] = {}
    for path in paths:
        for record in load_run(path)["tests"]:
            case = case_name(record["test"], record.get("cell"))
            for cycle in _cycles(record):
                for stage, seconds in (cycle.get("evidence", {}).get("timings") or {}).items():
                    if stage in stages:
                        values.setdefault((case, stage), []).append(float(seconds))
    bounds = {}
    for key, seen in values.items():
        threshold = slow_threshold(seen)
        if threshold is None:
            raise SetupError(
                f"--slower-than-good: {key[0]} has {len(seen)} {key[1]} value(s); the spread "
                "needs at least 3 cycles of the good build (run it with --cycles 3)"
            )
        bounds[key] = threshold
    if not bounds:
        raise SetupError(f"--slower-than-good: no cycle timed {', '.join(stages)} in those runs")
    return bounds


def stage_medians(record: dict[str, Any]) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for cycle in _cycles(record):
        for stage, seconds in (cycle.get("evidence", {}).get("timings") or {}).items():
            values.setdefault(stage, []).append(float(seconds))
    return {stage: statistics.median(v) for stage, v in values.items()}


def _cycles(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for s in record.get("series") or [] for c in s.get("cycles") or []]


@dataclass(frozen=True)
class RunJudgement:
    status: int  # GOOD, BAD, SKIP or ABORT
    reason: str


def judge_run(
    pytest_exit: int, results: dict[str, Any] | None, bounds: TimeBounds = TimeBounds()
) -> RunJudgement:
    """One pytest run of the selected cases: good, bad (a verdict, or a bounded stage too
    slow), or cannot be judged."""
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
        elif slower := bounds.exceeded(record):
            bad.append(f"{record['test']}: slower: {', '.join(slower)}")
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
    bounds: TimeBounds = TimeBounds(),
) -> RunJudgement:
    """Run the cases on ``build`` (up to ``repeat`` times while they fail)."""
    selection = list(pytest_args) or list(DEFAULT_CASES)
    runs: list[RunJudgement] = []
    for attempt in range(1, repeat + 1):
        judgement = _one_run(build, selection, report_dir, progress, bounds)
        progress(f"run {attempt}/{repeat}: {_word(judgement.status)}: {judgement.reason}")
        runs.append(judgement)
        if judgement.status != BAD:
            break  # a good, unjudged or aborted run needs no repeat
    return decide(runs, flaky)


def _one_run(
    build: Build,
    selection: list[str],
    report_dir: Path,
    progress: Callable[[str], None],
    bounds: TimeBounds,
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
        judgement = judge_run(code, results, bounds)
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
