"""`./run testday` from a synthetic results.json: the lines parse with the wiki result template's
grammar (as python-wikitcms reads it: {{result|status|user|bug...|bot=true}} then <ref>s), for
PASS, FAIL, a known issue with its bug, UNSUPPORTED, an undecided case and one not run."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.errors import SetupError
from harness.results import known_issues
from harness.tools import testday

# The template's grammar: a status, then optional user, Bugzilla numbers and bot=true; each
# <ref> after it is a comment. Anything else in a result cell is not a result the wiki reads.
RESULT = re.compile(
    r"\{\{result\|(?P<status>pass|fail|warn|none|inprogress)(?P<params>(?:\|[^|{}]*)*)\}\}"
    r"(?P<refs>(?:<ref>[^<]*</ref>)*)$"
)


@dataclass
class WikiResult:
    status: str
    user: str
    bugs: list[str]
    bot: bool
    refs: list[str]


def parse_cell(line: str) -> WikiResult:
    assert line.startswith("| "), line
    found = RESULT.match(line[2:])
    assert found, f"not a result template: {line}"
    params = found["params"].split("|")[1:]
    bot = params[-1:] == ["bot=true"]
    params = params[:-1] if bot else params
    user, bugs = (params[0], params[1:]) if params else ("", [])
    assert all(b.isdigit() for b in bugs), bugs
    assert "=" not in user and all("|" not in r for r in found["refs"])
    refs = re.findall(r"<ref>([^<]*)</ref>", found["refs"])
    return WikiResult(found["status"], user, bugs, bot, refs)


def series(transition: str, verdict: str, reason: str = "", known: str = "") -> dict[str, Any]:
    checks = [{"name": "clock_in_step", "passed": verdict != "FAIL"}, {"name": "no_pm_failures"}]
    combination = {"kernel": "6.1.0-57-amd64", "qemu_version": "9.1.2", "accel": "kvm"}
    combination |= {"qemu_package": "qemu-9.1.2-1.fc41", "bios_version": "1.16.3-4.fc41"}
    return {
        "transition": transition,
        "verdict": verdict,
        "reason": reason,
        "known_issue": known,
        "cycles": [{"verdict": verdict, "checks": checks, "combination": combination}],
    }


def record(test: str, *items: dict[str, Any], outcome: str = "passed") -> dict[str, Any]:
    return {"test": test, "outcome": outcome, "series": list(items), "error": ""}


ISSUES = """
[[issue]]
transition = "s4-*"
kernel = '.'
reason = 'lost'
summary = "the image is lost"
bug = "RHBZ#2301234"
"""


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    issues_file = tmp_path / "issues.toml"
    issues_file.write_text(ISSUES)
    issue = known_issues.load(issues_file)[0]
    records = [
        record("t.py::test_s3[c-s3-agent]", series("s3-agent", "PASS")),
        record("t.py::test_s3[c-s3-sysfs]", series("s3-sysfs", "FAIL", "clock stepped -6 s")),
        record("t.py::test_s2[c-standby]", series("standby", "UNSUPPORTED", "no S1 | here")),
        record("t.py::test_s4[c-s4-agent]", series("s4-agent", "FAIL", "image lost", issue.text)),
        record("t.py::test_s4[c-s4-systemctl]", series("s4-systemctl", "PASS")),
        record("t.py::test_hybrid[c-hybrid-agent-wake]", outcome="failed"),
        record("t.py::test_dom[c-dompmsuspend-mem]", series("dompmsuspend-mem", "ERROR", "x")),
    ]
    records[5]["error"] = "E   BootTimeout: no login prompt in 300 s"
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"tests": records}))
    return run


def fake_versions(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    versions = {"edk2-ovmf": "20241117-3.fc41", "libvirt-daemon-kvm": "10.6.0-1.fc41"}
    package = argv[-1]
    code = 0 if package in versions else 1
    return subprocess.CompletedProcess(list(argv), code, versions.get(package, ""), "")


def written(run_dir: Path, bot: bool) -> list[str]:
    issues = run_dir.parent / "issues.toml"
    path = testday.write_testday(
        run_dir, "jdoe", bot, family="fedora", run_version=fake_versions, issues=issues
    )
    return path.read_text().splitlines()


def cells(lines: list[str]) -> dict[str, WikiResult]:
    day = testday.load_cases()
    results = [parse_cell(line) for line in lines if "{{result" in line]
    assert len(results) == len(day.cases)  # one line per test-day test case
    return {case.label: result for case, result in zip(day.cases, results, strict=True)}


def test_each_case_is_one_result_line_of_the_wiki_grammar(run_dir: Path) -> None:
    found = cells(written(run_dir, bot=False))
    assert found["S3"].status == "fail"  # s3-sysfs failed even though s3-agent passed
    assert found["S3"].refs == ["s3-sysfs: failing check clock_in_step: clock stepped -6 s"]
    assert found["S3"].user == "jdoe" and found["S3"].bugs == [] and not found["S3"].bot
    assert found["s2idle"].status == "none"
    assert found["s2idle"].refs == ["standby: unsupported here: no S1 &#124; here"]
    known = found["S4"]
    assert (known.status, known.bugs) == ("fail", ["2301234"])
    assert "known issue: the image is lost" in known.refs[0]
    assert "failing check clock_in_step" in known.refs[0]
    assert found["Hybrid"].status == "warn"
    assert "BootTimeout: no login prompt in 300 s" in found["Hybrid"].refs[0]
    assert found["dompmsuspend"].status == "warn"
    assert found["libvirt-guests"] == WikiResult("none", "", [], False, ["not run"])


def test_a_pass_and_an_unattended_run(run_dir: Path) -> None:
    payload = json.loads((run_dir / "results.json").read_text())
    payload["tests"] = [payload["tests"][0]]
    (run_dir / "results.json").write_text(json.dumps(payload))
    found = cells(written(run_dir, bot=True))
    assert found["S3"] == WikiResult("pass", "jdoe", [], True, [])


def test_the_profile_names_the_components(run_dir: Path) -> None:
    lines = written(run_dir, bot=False)
    profile = lines[lines.index("| [[User:jdoe|jdoe]]") + 1]
    assert "guest kernel 6.1.0-57-amd64" in profile
    assert "QEMU 9.1.2 (qemu-9.1.2-1.fc41)" in profile
    assert "libvirt 10.6.0-1.fc41" in profile
    assert "SeaBIOS 1.16.3-4.fc41" in profile and "edk2 20241117-3.fc41" in profile
    assert "host kernel " in profile and "accel kvm" in profile


def test_a_url_bug_goes_into_the_ref(run_dir: Path, tmp_path: Path) -> None:
    url = "https://gitlab.com/qemu-project/qemu/-/issues/9"
    issues_file = tmp_path / "issues.toml"  # the file written() reads
    issues_file.write_text(ISSUES.replace("RHBZ#2301234", url))
    issue = known_issues.load(issues_file)[0]
    payload = json.loads((run_dir / "results.json").read_text())
    payload["tests"][3]["series"][0]["known_issue"] = issue.text
    (run_dir / "results.json").write_text(json.dumps(payload))
    found = cells(written(run_dir, bot=False))
    assert found["S4"].bugs == [] and f"(bug: {url})" in found["S4"].refs[0]


def test_a_user_name_that_would_break_the_template_is_refused(run_dir: Path) -> None:
    with pytest.raises(SetupError, match="--fas-user"):
        testday.write_testday(run_dir, "a|b", False)


def test_proposed_pages_are_said_to_be_proposed(run_dir: Path, tmp_path: Path) -> None:
    heading = written(run_dir, bot=False)[0]
    assert heading.startswith("<!-- ./run testday: results for Test_Day:<DATE>_Virtualization")
    assert "its QA:Testcase pages are proposed names, not yet on the wiki" in heading
    real = tmp_path / "day.toml"
    real.write_text(
        'page = "Test_Day:2027-03-04_Virtualization"\n[[case]]\n'
        'testcase = "QA:Testcase_Virtualization_IO_Throttling"\ntransitions = ["s3-*"]\n'
    )
    day = testday.load_cases(real)
    assert not day.proposed
    text = testday.render(day, testday.judge(day, [], []), "jdoe", False, "p")
    assert "proposed" not in text.splitlines()[0]


def test_the_case_map_names_qa_testcase_pages(tmp_path: Path) -> None:
    bad = tmp_path / "day.toml"
    bad.write_text('[[case]]\ntestcase = "S3"\ntransitions = ["s3-*"]\n')
    with pytest.raises(SetupError, match="QA:Testcase_"):
        testday.load_cases(bad)
    assert all(c.testcase.startswith("QA:Testcase_") for c in testday.load_cases().cases)


def test_the_grammar_check_catches_a_cell_the_wiki_would_misread() -> None:
    unescaped = "| {{result|fail|jdoe}}<ref>reason with | a bar</ref>"
    with pytest.raises(AssertionError):
        parse_cell(unescaped)
    with pytest.raises(AssertionError):
        parse_cell("| {{result|fail|jdoe|RHBZ#12}}")  # the template takes bare numbers
    escaped = "| " + testday.result_cell(testday.CaseResult("fail", refs=["a | b"]), "jdoe", False)
    assert parse_cell(escaped).refs == ["a &#124; b"]


def test_the_new_run_is_the_directory_not_its_latest_link(tmp_path: Path) -> None:
    before = set(tmp_path.iterdir())
    run = tmp_path / "20261206-000000-abcd"
    run.mkdir()
    (run / "results.json").write_text("{}")
    (tmp_path / "latest").symlink_to(run.name)
    assert testday.new_runs(tmp_path, before) == [run]
