"""A known issue's bug (a URL or RHBZ#n) is shown with it wherever the issue is shown."""

from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.results import known_issues

ENTRY = """
[[issue]]
transition = "s3-*"
kernel = '.'
reason = 'clock'
summary = "the clock steps back"
"""


def test_a_bug_is_part_of_the_issue_text(tmp_path: Path) -> None:
    path = tmp_path / "issues.toml"
    path.write_text(ENTRY + 'bug = "RHBZ#2301234"\n' + ENTRY.replace("s3-*", "s4-*"))
    tracked, untracked = known_issues.load(path)
    assert tracked.text == "the clock steps back (bug: RHBZ#2301234)"
    assert tracked.rhbz == "2301234"
    assert untracked.text == "the clock steps back" and untracked.rhbz == ""


def test_a_url_bug_has_no_rhbz_number(tmp_path: Path) -> None:
    path = tmp_path / "issues.toml"
    path.write_text(ENTRY + 'bug = "https://gitlab.com/qemu-project/qemu/-/issues/1"\n')
    (issue,) = known_issues.load(path)
    assert issue.text.endswith("(bug: https://gitlab.com/qemu-project/qemu/-/issues/1)")
    assert issue.rhbz == ""


def test_a_bug_in_another_form_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "issues.toml"
    path.write_text(ENTRY + 'bug = "bz 12"\n')
    with pytest.raises(SetupError, match="neither a URL nor RHBZ#"):
        known_issues.load(path)


def test_the_repositorys_issues_load() -> None:
    assert all(not i.bug or i.text.endswith(")") for i in known_issues.load())
