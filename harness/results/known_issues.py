"""Understood failures (testcases/known_issues.toml), by transition, guest kernel, QEMU version,
accelerator and reason, with the bug that tracks each where there is one."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError
from harness.paths import REPO_ROOT

DEFAULT_FILE = REPO_ROOT / "testcases" / "known_issues.toml"
# A tracked bug: a URL, or a Red Hat Bugzilla number as test days write it.
BUG_FORMAT = re.compile(r"^(https?://\S+|RHBZ#\d+)$")


@dataclass(frozen=True)
class Failure:
    """A FAIL as known issues match it: its transition, the guest kernel, its reason and,
    where known, the QEMU version, the accelerator and the cause its evidence names."""

    transition: str
    kernel: str
    reason: str
    qemu: str = ""
    accel: str = ""
    cause: str = ""


@dataclass(frozen=True)
class KnownIssue:
    transition: str
    kernel: str
    reason: str
    summary: str
    qemu: str = ""  # a regular expression over QEMU's version; empty: any
    accel: str = ""  # a regular expression over the accelerator (tcg, kvm); empty: any
    # A regular expression over the cause the FAIL's evidence names beyond doubt (e.g.
    # "entered s2idle, not deep"); empty: only FAILs whose evidence names no cause, so that
    # an issue matched by its reason never stands in for what the evidence already says.
    cause: str = ""
    bug: str = ""  # the bug that tracks it: a URL or RHBZ#<number>; empty: none filed

    @property
    def text(self) -> str:
        """What every report shows: the summary, and the bug where one is filed."""
        return f"{self.summary} (bug: {self.bug})" if self.bug else self.summary

    @property
    def rhbz(self) -> str:
        """The Red Hat Bugzilla number, as the test-day result template takes it; or ""."""
        return self.bug.removeprefix("RHBZ#") if self.bug.startswith("RHBZ#") else ""

    def matches(self, failure: Failure) -> bool:
        if bool(failure.cause) != bool(self.cause) or re.search(self.cause, failure.cause) is None:
            return False
        return (
            fnmatch.fnmatchcase(failure.transition, self.transition)
            and re.search(self.kernel, failure.kernel) is not None
            and re.search(self.reason, failure.reason) is not None
            and re.search(self.qemu, failure.qemu) is not None
            and re.search(self.accel, failure.accel) is not None
        )


def load(path: Path = DEFAULT_FILE) -> list[KnownIssue]:
    if not path.is_file():
        return []
    try:
        entries = tomllib.loads(path.read_text()).get("issue", [])
        return [
            KnownIssue(
                e["transition"],
                e["kernel"],
                e["reason"],
                " ".join(e["summary"].split()),
                e.get("qemu", ""),
                e.get("accel", ""),
                e.get("cause", ""),
                checked_bug(e.get("bug", "")),
            )
            for e in entries
        ]
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SetupError(f"{path}: malformed known-issues file ({exc})") from exc


def checked_bug(bug: str) -> str:
    if bug and not BUG_FORMAT.match(bug):
        raise ValueError(f"bug {bug!r} is neither a URL nor RHBZ#<number>")
    return bug


def find(
    issues: list[KnownIssue],
    transition: str,
    kernel: str,
    reason: str,
    qemu: str = "",
    accel: str = "",
    cause: str = "",
) -> KnownIssue | None:
    """The first issue that matches; a FAIL with a named ``cause`` only by an issue naming it."""
    failure = Failure(transition, kernel, reason, qemu, accel, cause)
    return next((i for i in issues if i.matches(failure)), None)
