"""``./run testday``: the suite on this host's own QEMU, firmware, libvirt and kernel, turned into
the results a Fedora test day's wiki page takes: one ``{{result|...}}`` cell per test case of
testcases/testday.toml, in the grammar of the wiki's result template (python-wikitcms reads the
same): ``{{result|STATUS|USER|BUG...|bot=true}}`` then a ``<ref>`` saying why.

A test-day case passes when every harness series it covers passed, fails when one failed (a
known issue's Red Hat Bugzilla number goes in as the template's bug; a URL in the ref), warns
when the harness could not decide one, and is ``none`` when nothing of it ran or the host does
not offer the state (UNSUPPORTED)."""

from __future__ import annotations

import argparse
import fnmatch
import json
import platform
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SetupError
from harness.paths import REPO_ROOT
from harness.results import known_issues
from harness.setup import host_distro

DEFAULT_CASES = REPO_ROOT / "testcases" / "testday.toml"
DEFAULT_PYTEST_ARGS = ("testcases", "-m", "not selftest")
PASS, FAIL, WARN, NONE = "pass", "fail", "warn", "none"


@dataclass(frozen=True)
class Case:
    testcase: str  # QA:Testcase_...
    label: str
    transitions: tuple[str, ...]

    def covers(self, transition: str) -> bool:
        base = transition.partition("@")[0]  # a group cycle's series is "<id>@<machine>"
        return any(fnmatch.fnmatchcase(base, p) for p in self.transitions)


@dataclass(frozen=True)
class DayCases:
    page: str
    cases: tuple[Case, ...]
    proposed: bool = False  # the QA:Testcase pages are not on the wiki yet


@dataclass
class CaseResult:
    status: str
    bugs: list[str] = field(default_factory=list)  # Red Hat Bugzilla numbers
    refs: list[str] = field(default_factory=list)


def load_cases(path: Path = DEFAULT_CASES) -> DayCases:
    try:
        data = tomllib.loads(path.read_text())
        cases = tuple(
            Case(c["testcase"], c.get("label", c["testcase"]), tuple(c["transitions"]))
            for c in data["case"]
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise SetupError(f"{path}: not a test-day case map ({exc})") from exc
    bad = [c.testcase for c in cases if not c.testcase.startswith("QA:Testcase_")]
    if bad:
        raise SetupError(f"{path}: test cases must be QA:Testcase_ pages, not {', '.join(bad)}")
    return DayCases(str(data.get("page", "")), cases, bool(data.get("proposed", False)))


def wiki_text(text: str) -> str:
    """Text safe inside a table cell's <ref>: one line, no cell separator, no markup."""
    return " ".join(text.split()).replace("|", "&#124;").replace("<", "&lt;").replace("{{", "{ {")


def failing_checks(series: dict[str, Any]) -> list[str]:
    cycles = series.get("cycles") or [{}]
    return [c["name"] for c in cycles[-1].get("checks", []) if not c.get("passed", True)]


def judge_series(series: dict[str, Any], issues: list[known_issues.KnownIssue]) -> CaseResult:
    """One harness series as a test-day result."""
    transition, verdict, reason = series["transition"], series["verdict"], series.get("reason", "")
    if verdict == "PASS":
        return CaseResult(PASS)
    if verdict == "UNSUPPORTED":
        return CaseResult(NONE, refs=[f"{transition}: unsupported here: {reason}"])
    if verdict != "FAIL":
        return CaseResult(WARN, refs=[f"{transition}: the harness could not decide: {reason}"])
    checks = failing_checks(series)
    why = f"{transition}: {'failing check ' + ', '.join(checks) if checks else 'failed'}: {reason}"
    issue = next((i for i in issues if i.text == series.get("known_issue")), None)
    if issue is None:
        return CaseResult(FAIL, refs=[why])
    bugs = [issue.rhbz] if issue.rhbz else []
    tracked = f" (bug: {issue.bug})" if issue.bug and not issue.rhbz else ""
    return CaseResult(FAIL, bugs, [f"{why}; known issue{tracked}: {issue.summary}"])


def judge_record(record: dict[str, Any]) -> CaseResult | None:
    """A test without a series (it failed before a cycle ran, or is no transition)."""
    if record.get("outcome") == "failed":
        error = (record.get("error") or "failed").strip().splitlines()[-1]
        return CaseResult(WARN, refs=[f"{record['test']}: no verdict: {error}"])
    return None


def combine(results: Sequence[CaseResult]) -> CaseResult:
    """A test-day case from its series: any fail fails it, any undecided warns, a pass passes."""
    for status in (FAIL, WARN, PASS):
        chosen = [r for r in results if r.status == status]
        if chosen:
            bugs = sorted({b for r in chosen for b in r.bugs}, key=int)
            return CaseResult(status, bugs, [ref for r in chosen for ref in r.refs])
    refs = [ref for r in results for ref in r.refs]
    return CaseResult(NONE, refs=refs or ["not run"])


def judge(
    day: DayCases, records: Sequence[dict[str, Any]], issues: list[known_issues.KnownIssue]
) -> dict[Case, CaseResult]:
    judged: dict[Case, list[CaseResult]] = {case: [] for case in day.cases}
    for record in records:
        series_list = record.get("series") or []
        for series in series_list:
            for case in day.cases:
                if case.covers(series["transition"]):
                    judged[case].append(judge_series(series, issues))
        if not series_list and (result := judge_record(record)) is not None:
            for case in day.cases:
                if any(case.covers(part) for part in id_words(record["test"])):
                    judged[case].append(result)
    return {case: combine(results) for case, results in judged.items()}


def id_words(test_id: str) -> list[str]:
    """The parameter words of a test id (``t.py::test_x[cell-s3-agent]``), for matching a test
    that failed before its series was written against the cases' transition patterns."""
    inner = test_id.partition("[")[2].rstrip("]")
    words = inner.split("-")
    return ["-".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)]


def result_cell(result: CaseResult, user: str, bot: bool) -> str:
    """One cell of the template's grammar: {{result|status|user|bug...|bot=true}}<ref>...</ref>."""
    if result.status == NONE:
        cell = "{{result|none}}"
    else:
        params = [result.status, user, *result.bugs, *(["bot=true"] if bot else [])]
        cell = "{{result|" + "|".join(params) + "}}"
    refs = "".join(f"<ref>{wiki_text(ref)}</ref>" for ref in result.refs)
    return cell + refs


def profile(run: dict[str, Any], family: str, run_version: host_distro.Runner) -> str:
    """The Profile cell: the host kernel and the components the run used, as detected."""
    combo: dict[str, Any] = {}
    for record in run.get("tests", []):
        for series in record.get("series") or []:
            for cycle in series.get("cycles", []):
                combo.update({k: v for k, v in cycle.get("combination", {}).items() if v})
    versions = {
        component: host_distro.installed_version(family, package, run_version)
        for component, package in host_distro.COMPONENT_PACKAGES.get(family, {}).items()
    }
    parts = [
        f"host kernel {platform.release()}",
        f"guest kernel {combo.get('kernel', '?')}",
        f"QEMU {qemu_text(combo, versions.get('qemu', ''))}",
        f"libvirt {combo.get('libvirt_version') or versions.get('libvirt') or '?'}",
        f"SeaBIOS {combo.get('bios_version') or versions.get('seabios') or '?'}",
        f"edk2 {versions.get('edk2') or '?'}",
        f"accel {combo.get('accel', '?')}",
    ]
    return wiki_text(", ".join(parts))


def qemu_text(combo: dict[str, Any], package_version: str) -> str:
    version, package = combo.get("qemu_version", ""), combo.get("qemu_package", "")
    if version and package:
        return f"{version} ({package})"
    return str(version or package or package_version or "?")


def render(
    day: DayCases, judged: dict[Case, CaseResult], user: str, bot: bool, profile_cell: str
) -> str:
    header = " !! ".join(f"[[{c.testcase}|{c.label}]]" for c in day.cases)
    proposed = (
        "; its QA:Testcase pages are proposed names, not yet on the wiki: create them, or "
        "name the day's own in testcases/testday.toml"
        if day.proposed
        else ""
    )
    lines = [
        f"<!-- ./run testday: results for {day.page or 'the test day page'}; "
        f"paste the row under the page's table heading{proposed} -->",
        '{| class="wikitable"',
        f"! User !! Profile !! {header} !! References",
        "|-",
        f"| [[User:{user}|{user}]]",
        f"| {profile_cell}",
        *(f"| {result_cell(judged[c], user, bot)}" for c in day.cases),
        "| <references/>",
        "|}",
    ]
    return "\n".join(lines) + "\n"


def write_testday(
    run_dir: Path,
    user: str,
    bot: bool,
    cases: Path = DEFAULT_CASES,
    family: str = "",
    run_version: host_distro.Runner = host_distro.run_quietly,
    issues: Path = known_issues.DEFAULT_FILE,
) -> Path:
    """testday.txt in ``run_dir`` from its results.json."""
    if not user or any(ch in user for ch in "|{}[]<>\n"):
        raise SetupError(f"--fas-user {user!r}: give the FAS user name the wiki knows you by")
    day = load_cases(cases)
    run = json.loads((run_dir / "results.json").read_text())
    judged = judge(day, run.get("tests", []), known_issues.load(issues))
    text = render(day, judged, user, bot, profile(run, family, run_version))
    out = run_dir / "testday.txt"
    out.write_text(text)
    return out


def new_runs(report_dir: Path, before: set[Path]) -> list[Path]:
    """The run directories that appeared since ``before``; not the ``latest`` link to one."""
    fresh = set(report_dir.iterdir()) - before
    return sorted(p for p in fresh if not p.is_symlink() and (p / "results.json").is_file())


def run_suite(
    report_dir: Path, pytest_args: Sequence[str], progress: Callable[[str], None]
) -> Path:
    """The suite on the host's own components; the run directory it wrote."""
    report_dir.mkdir(parents=True, exist_ok=True)
    before = set(report_dir.iterdir())
    argv = [str(Path(sys.executable).with_name("pytest")), "--report-dir", str(report_dir)]
    argv += [*DEFAULT_PYTEST_ARGS, *pytest_args]  # the suite, narrowed by the user's
    progress(f"running {' '.join(argv[1:])}")
    started = time.monotonic()
    code = subprocess.run(argv, cwd=REPO_ROOT, check=False).returncode
    progress(f"pytest exit {code} in {time.monotonic() - started:.0f}s")
    made = new_runs(report_dir, before)
    if len(made) != 1:
        raise SetupError(f"the suite wrote no run under {report_dir} (pytest exit {code})")
    return made[0]


def command(args: argparse.Namespace) -> int:
    """``python -m harness testday``: run the suite (or take ``--run``), write testday.txt."""
    if args.run:
        run_dir = Path(args.run)
    else:
        report_dir = Path(args.report_dir)
        run_dir = run_suite(report_dir, args.pytest_args, lambda s: print(f"[testday] {s}"))
    bot = args.bot if args.bot is not None else not sys.stdin.isatty()
    family = host_distro.read_os_release().family
    path = write_testday(run_dir, args.fas_user, bot, Path(args.cases), family)
    print(path.read_text(), end="")
    print(f"testday: {path}")
    return 0
