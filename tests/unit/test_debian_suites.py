"""A guest's suite by the name a tester gives, the archive lines that build it, and the
versions a private apt state resolves from those lines (apt's output parsed, apt not run)."""

import subprocess
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.setup import debian_suites
from harness.setup.debian_suites import (
    GuestSuite,
    SuiteIndex,
    apt_problem,
    candidates,
    newest_in_suite,
)

DEBIAN = "http://deb.debian.org/debian"
SECURITY = "http://security.debian.org/debian-security"


@pytest.mark.parametrize(
    ("name", "base", "kernel_suite"),
    [
        ("bookworm", "bookworm", None),
        ("trixie", "trixie", None),
        ("sid", "sid", None),
        ("bookworm-backports", "bookworm", "bookworm-backports"),
        ("trixie-backports", "trixie", "trixie-backports"),
        ("experimental", "sid", "experimental"),
    ],
)
def test_a_partial_suite_is_its_release_with_its_kernel(
    name: str, base: str, kernel_suite: str | None
) -> None:
    assert GuestSuite.named(name) == GuestSuite(base, kernel_suite)


@pytest.mark.parametrize("name", ["trixie-updates", "trixie-security", "bookworm-proposed-updates"])
def test_a_part_of_a_release_names_the_release(name: str) -> None:
    with pytest.raises(SetupError, match=r"is part of (trixie|bookworm), whose guest includes it"):
        GuestSuite.named(name)


def test_a_released_suite_has_its_updates_and_security() -> None:
    assert GuestSuite.named("trixie").sources("linux-image-amd64") == [
        f"deb {DEBIAN} trixie main",
        f"deb {DEBIAN} trixie-updates main",
        f"deb {SECURITY} trixie-security main",
    ]


def test_sid_and_experimental_are_taken_past_their_valid_until() -> None:
    guest = GuestSuite.named("experimental")
    assert guest.sources(guest.kernel_package("linux-image-amd64")) == [
        f"deb [check-valid-until=no] {DEBIAN} sid main",
        f"deb [check-valid-until=no] {DEBIAN} experimental main",
    ]


def test_the_kernels_suite_is_added_once() -> None:
    guest = GuestSuite.named("trixie-backports")
    kernel = guest.kernel_package("linux-image-amd64")
    assert kernel == "linux-image-amd64/trixie-backports"
    assert guest.sources(kernel)[-1] == f"deb {DEBIAN} trixie-backports main"
    assert len(guest.sources(kernel)) == 4
    # A kernel of another suite on the default guest, as --kernel-package always took it.
    assert GuestSuite.named("bookworm").sources("linux-image-amd64/trixie-backports") == [
        f"deb {DEBIAN} bookworm main",
        f"deb {DEBIAN} bookworm-updates main",
        f"deb {SECURITY} bookworm-security main",
        f"deb {DEBIAN} trixie-backports main",
    ]


@pytest.mark.parametrize("package", ["linux-image-amd64/sid", "linux-image-amd64=7.3.4-1~bpo13+1"])
def test_a_kernel_package_naming_its_own_suite_or_version_is_kept(package: str) -> None:
    assert GuestSuite.named("trixie-backports").kernel_package(package) == package


MADISON = """\
linux-image-amd64 | 7.3.4-1~bpo13+1 | http://deb.debian.org/debian trixie-backports/main amd64 Packages
linux-image-amd64 | 7.3~rc7-1~exp1 | http://deb.debian.org/debian experimental/main amd64 Packages
linux-image-amd64 |   7.2.13-1 | http://deb.debian.org/debian sid/main amd64 Packages
linux-image-amd64 | 6.12.118-1 | http://security.debian.org/debian-security trixie-security/main amd64 Packages
"""  # noqa: E501

POLICY = """\
systemd:
  Installed: (none)
  Candidate: 262.1-1
  Version table:
     262.1-1 500
        500 http://deb.debian.org/debian sid/main amd64 Packages
linux-image-amd64:
  Installed: (none)
  Candidate: 7.2.13-1
  Version table:
     7.3~rc7-1~exp1 1
        1 http://deb.debian.org/debian experimental/main amd64 Packages
     7.2.13-1 500
        500 http://deb.debian.org/debian sid/main amd64 Packages
gone:
  Installed: (none)
  Candidate: (none)
"""


def test_the_newest_version_of_a_suite_is_read_from_madison() -> None:
    assert newest_in_suite(MADISON, "trixie-backports") == "7.3.4-1~bpo13+1"
    assert newest_in_suite(MADISON, "experimental") == "7.3~rc7-1~exp1"
    assert newest_in_suite(MADISON, "trixie-security") == "6.12.118-1"
    assert newest_in_suite(MADISON, "trixie") is None


def test_candidates_are_read_from_policy() -> None:
    # experimental's kernel is not the candidate: apt pins it below sid's, as it installs.
    assert candidates(POLICY) == {"systemd": "262.1-1", "linux-image-amd64": "7.2.13-1"}


def test_versions_resolve_each_form_of_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_apt(self: SuiteIndex, command: list[str], label: str) -> str:
        calls.append(command)
        return MADISON if command[1] == "madison" else POLICY

    monkeypatch.setattr(SuiteIndex, "_apt", fake_apt)
    index = SuiteIndex(tmp_path, ["deb x sid main"])
    versions = index.versions(
        ["linux-image-amd64/experimental", "systemd", "qemu-guest-agent=1:11.1.3+ds-1", "gone"]
    )
    assert versions == {
        "linux-image-amd64/experimental": "7.3~rc7-1~exp1",
        "systemd": "262.1-1",
        "qemu-guest-agent=1:11.1.3+ds-1": "1:11.1.3+ds-1",
        "gone": "none",
    }
    assert calls == [["apt-cache", "madison", "linux-image-amd64"],
                     ["apt-cache", "policy", "systemd", "gone"]]  # fmt: skip


def test_apt_runs_on_the_private_state_only(tmp_path: Path) -> None:
    index = SuiteIndex(tmp_path, ["deb x sid main"])
    options = " ".join(index._options())
    assert f"Dir::Etc::SourceList={index.root}/sources.list" in options
    assert "Dir::Etc::SourceParts=/dev/null" in options
    assert "Dir::State::status=/dev/null" in options  # the host's installed packages: no part
    assert index.root.parent == tmp_path / "apt-index"
    assert SuiteIndex(tmp_path, ["deb x trixie main"]).root != index.root


def test_a_failed_refresh_keeps_lists_it_has_and_is_an_error_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: SuiteIndex, command: list[str], label: str) -> str:
        raise SetupError("apt-get update failed (100): E: Failed to fetch")

    monkeypatch.setattr(SuiteIndex, "_apt", unreachable)
    index = SuiteIndex(tmp_path, ["deb x sid main"])
    with pytest.raises(SetupError, match="Failed to fetch"):
        index.refresh()
    (index.root / "updated").touch()
    assert index.refresh() is None  # fresh: not fetched again
    monkeypatch.setattr(debian_suites, "LISTS_MAX_AGE_S", -1.0)
    stale = index.refresh()
    assert stale is not None and "Failed to fetch" in stale and "using the lists of" in stale
    assert (index.root / "sources.list").read_text() == "deb x sid main\n"


def test_apts_cause_is_its_first_error_not_its_summary() -> None:
    stderr = (
        "E: Release file for http://deb.debian.org/debian/dists/sid/InRelease is expired\n"
        "E: Some index files failed to download. They have been ignored.\n"
    )
    result = subprocess.CompletedProcess([], 100, "", stderr)
    assert apt_problem(result).endswith("sid/InRelease is expired")
    assert apt_problem(subprocess.CompletedProcess([], 1, "", "W: odd\nlast\n")) == "last"
