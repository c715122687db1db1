"""The Debian suite a built-in guest is made of, the archive lines that make it, and the
versions those lines offer.

A guest suite is what a tester names (``bookworm``, ``trixie``, ``sid``); a partial suite
(``trixie-backports``, ``experimental``) names a kernel, taken from it onto the release it
extends (trixie, sid). The archive lines are what mmdebstrap builds from, and the same lines
fill a private apt state that resolves the versions going into the image's cache key, so the
key names what the build will install, not what the host's apt happens to see.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError

ARCHIVE = "http://deb.debian.org/debian"
SECURITY_ARCHIVE = "http://security.debian.org/debian-security"  # mmdebstrap's own default
# A Debian suite, and a package as mmdebstrap's --include takes it (name, =version, /suite):
# they reach apt's sources lines and mmdebstrap's arguments, so nothing else gets through.
SUITE = re.compile(r"[a-z0-9][a-z0-9.+-]*\Z")
PACKAGE = re.compile(r"[a-z0-9][a-z0-9.+-]+(=[A-Za-z0-9.+~:-]+)?(/[a-z0-9][a-z0-9.+-]*)?\Z")
# Suites that are never released: no -updates or -security of their own, and Release files
# valid for a week only, so a mirror that lags (or a snapshot) serves them expired and apt
# refuses them unless told (check-valid-until=no); their signatures are still checked.
UNRELEASED = ("sid", "unstable", "experimental")
# Suites that hold a few packages only, built on another: the kernel comes from them.
PARTIAL_BASES = {"experimental": "sid"}
PARTIAL_SUFFIX = "-backports"
# Parts of a release that its own lines already include.
INCLUDED_SUFFIXES = ("-proposed-updates", "-updates", "-security")
LISTS_MAX_AGE_S = 24 * 3600  # lists this old are fetched again: a day at most behind the archive
APT_TIMEOUT_S = 600.0


def checked_suite(suite: str) -> str:
    if not SUITE.match(suite):
        raise SetupError(f"{suite!r} is not a Debian suite name (such as bookworm-backports)")
    return suite


def checked_package(package: str) -> str:
    if not PACKAGE.match(package):
        raise SetupError(
            f"{package!r} is not a Debian package (NAME, NAME=VERSION or NAME/SUITE, such as "
            "linux-image-amd64/bookworm-backports)"
        )
    return package


def package_suite(package: str) -> str | None:
    """``trixie-backports`` from ``linux-image-amd64/trixie-backports``; None without one."""
    _, _, suite = checked_package(package).partition("/")
    return suite or None


@dataclass(frozen=True)
class GuestSuite:
    """A guest's userspace from ``base``; its kernel, by default, from ``kernel_suite``."""

    base: str
    kernel_suite: str | None = None

    @classmethod
    def named(cls, name: str) -> GuestSuite:
        """``trixie`` as it is; ``trixie-backports`` as trixie with that suite's kernel;
        ``experimental`` as sid with experimental's kernel."""
        checked_suite(name)
        for suffix in INCLUDED_SUFFIXES:
            if name.endswith(suffix):
                release = name.removesuffix(suffix)
                raise SetupError(
                    f"{name} is part of {release}, whose guest includes it: name {release} "
                    f"(or {release}-backports for its backported kernel)"
                )
        if name in PARTIAL_BASES:
            return cls(PARTIAL_BASES[name], name)
        if name.endswith(PARTIAL_SUFFIX):
            return cls(name.removesuffix(PARTIAL_SUFFIX), name)
        return cls(name)

    def kernel_package(self, default: str) -> str:
        """``default`` from ``kernel_suite`` where this guest names one and ``default`` names
        neither a suite nor a version of its own."""
        if self.kernel_suite is None or package_suite(default) or "=" in default:
            return checked_package(default)
        return checked_package(f"{default}/{self.kernel_suite}")

    def sources(self, kernel_package: str) -> list[str]:
        """apt's lines for this guest with ``kernel_package``: the base release (with its
        -updates and -security where it has them), then the kernel's own suite if another."""
        base = checked_suite(self.base)
        suites = [base] if base in UNRELEASED else [base, f"{base}-updates", f"{base}-security"]
        for extra in (self.kernel_suite, package_suite(kernel_package)):
            if extra is not None and checked_suite(extra) not in suites:
                suites.append(extra)
        return [source_line(suite) for suite in suites]


def source_line(suite: str) -> str:
    archive = SECURITY_ARCHIVE if suite.endswith("-security") else ARCHIVE
    options = " [check-valid-until=no]" if suite in UNRELEASED else ""
    return f"deb{options} {archive} {suite} main"


class SuiteIndex:
    """The package lists of ``sources`` in an apt state of their own under ``cache``: the
    host's apt and its installed packages play no part."""

    def __init__(self, cache: Path, sources: list[str]) -> None:
        self.sources = sources
        digest = hashlib.sha256("\n".join(sources).encode()).hexdigest()[:16]
        self.root = cache / "apt-index" / digest

    def _options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::SourceList={self.root / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={self.root / 'lists'}",
            "-o", f"Dir::Cache={self.root / 'cache'}",
            "-o", "Dir::State::status=/dev/null",
            "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root",
            # Package lists only: not the Contents a host's apt-file asks for, nor translations.
            "-o", "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false",
            "-o", "Acquire::IndexTargets::deb::Contents-udeb::DefaultEnabled=false",
            "-o", "Acquire::Languages=none",
        ]  # fmt: skip

    def refresh(self) -> str | None:
        """Fetch the lists when missing or a day old. A failed fetch over lists already here
        keeps them (its message is returned); with none here, it is a SetupError."""
        stamp = self.root / "updated"
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S:
                return None
            for sub in ("lists/partial", "cache/archives/partial"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            (self.root / "sources.list").write_text("".join(f"{s}\n" for s in self.sources))
            try:
                self._apt(["apt-get", "update", "-qq"], "update")
            except SetupError as exc:
                if not stamp.exists():
                    raise
                return f"{exc}; using the lists of {time.ctime(stamp.stat().st_mtime)}"
            stamp.touch()
            return None

    def _apt(self, command: list[str], label: str) -> str:
        label = f"{command[0]} {label} ({self.root / 'sources.list'})"
        try:
            result = subprocess.run(
                [command[0], *self._options(), *command[1:]],
                capture_output=True,
                text=True,
                timeout=APT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SetupError(f"{label}: {exc}") from exc
        if result.returncode != 0:
            raise SetupError(f"{label} failed ({result.returncode}): {apt_problem(result)}")
        return result.stdout

    def versions(self, packages: list[str]) -> dict[str, str]:
        """What apt installs for each of ``packages`` (as mmdebstrap's --include takes them):
        the given version, the newest of the given suite, or the candidate ("none" where
        the lists have none)."""
        versions = {}
        plain = []
        for package in packages:
            name, _, version = checked_package(package).partition("=")
            name, _, suite = name.partition("/")
            if version:
                versions[package] = version
            elif suite:
                out = self._apt(["apt-cache", "madison", name], name)
                versions[package] = newest_in_suite(out, suite) or "none"
            else:
                plain.append(package)
        if plain:
            found = candidates(self._apt(["apt-cache", "policy", *plain], " ".join(plain)))
            versions.update({package: found.get(package, "none") for package in plain})
        return {package: versions[package] for package in packages}


def newest_in_suite(madison: str, suite: str) -> str | None:
    """The first (newest) version ``apt-cache madison`` lists from ``suite``."""
    for line in madison.splitlines():
        fields = [field.strip() for field in line.split("|")]
        where = fields[2].split() if len(fields) >= 3 else []  # ARCHIVE SUITE/COMPONENT ...
        if len(where) >= 2 and where[1].split("/", 1)[0] == suite:
            return fields[1]
    return None


def candidates(policy: str) -> dict[str, str]:
    """Each package's ``Candidate:`` in ``apt-cache policy`` output (none where apt has none)."""
    found: dict[str, str] = {}
    package = None
    for line in policy.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            package = line[:-1]
        elif package and line.strip().startswith("Candidate:"):
            value = line.split(":", 1)[1].strip()
            if value != "(none)":
                found[package] = value
    return found


def apt_problem(result: subprocess.CompletedProcess[str]) -> str:
    """apt's first error line (the cause; its last one is a summary), else its last line."""
    lines = (result.stderr + result.stdout).strip().splitlines()
    errors = [line for line in lines if line.startswith("E: ")]
    return (errors or lines or ["no output"])[0 if errors else -1]
