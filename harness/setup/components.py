"""Component versions from Debian's archive, unpacked into a cache and run from there.

The host's installed packages are never touched: apt runs with a private sources list, private
state and an empty package status under the cache. Every ``.deb`` is fetched into
``<cache>/debs`` (apt checks it against the archive's signed indices) and unpacked with
``dpkg-deb -x`` into a tree of its own under ``<cache>/trees``, built aside under a lock and
renamed into place when complete; the tree records the exact versions and the sha256 of the
packages it holds (``.packages.json``).

QEMU from any suite runs from its own library closure: the packages apt would install for it on
that suite's release, starting from nothing installed, run through the closure's own loader
(``harness.setup.closure``). One mechanism for every suite, bookworm's included, so that what
ran is exactly the recorded packages whatever the host has installed. Firmware is data: its
package alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import SetupError
from harness.setup import closure
from harness.setup.image import ARCHIVE, DEFAULT_CACHE, locked

SUITES = (
    "bookworm",
    "bookworm-updates",
    "bookworm-backports",
    "trixie",
    "trixie-updates",
    "trixie-backports",
    "sid",
    "experimental",
)
# What a package of each suite is installed with: its release's suites, as apt on that release
# sees them (a trixie-backports QEMU takes its libraries from trixie, never from sid).
RELEASES = {
    "bookworm": ("bookworm", "bookworm-updates", "bookworm-backports"),
    "trixie": ("trixie", "trixie-updates", "trixie-backports"),
    "sid": ("sid",),
    "experimental": ("sid", "experimental"),
}
# experimental is taken only for a version asked for by name: its Release file says so
# (NotAutomatic), and this pin says it whatever the host's apt configuration.
PREFERENCES = "Package: *\nPin: release a=experimental\nPin-Priority: 1\n"
QEMU_PACKAGES = ("qemu-system-x86", "qemu-utils", "qemu-system-common", "qemu-system-data")
LISTS_MAX_AGE_S = 24 * 3600
PROBE_TIMEOUT_S = 60.0  # --version of a provisioned QEMU: instant when it runs at all


@dataclass(frozen=True)
class Package:
    """A Debian package a component runs from: its exact version and its ``.deb``'s sha256."""

    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class QemuBuild:
    """A QEMU to run: ``binary`` is the program, or the closure's wrapper that runs it through
    its own loader with its own data and module directories; ``qemu_img`` likewise."""

    binary: Path
    package_version: str = ""
    qemu_img: tuple[str, ...] = ("qemu-img",)
    packages: tuple[Package, ...] = ()


@dataclass(frozen=True)
class SeabiosImage:
    path: Path
    packages: tuple[Package, ...] = ()


@dataclass(frozen=True)
class OvmfImages:
    code: Path
    variables: Path
    packages: tuple[Package, ...] = ()


class DebianArchive:
    """Package versions from Debian's archive (``SUITES``), downloaded into ``root``.

    ``offline``: nothing is fetched; what the cache lacks is a one-line error naming it.
    """

    def __init__(
        self,
        root: Path = DEFAULT_CACHE / "components",
        mirror: str = ARCHIVE,
        offline: bool = False,
    ) -> None:
        self.root = root
        self.mirror = mirror
        self.offline = offline
        self._apt = root / "apt"
        self.debs = root / "debs"
        self.trees = root / "trees"
        self._offers: dict[str, list[tuple[str, str]]] = {}

    def _options(self, release: str = "all") -> list[str]:
        """apt's options for the private state; ``release`` names the sources it sees."""
        return [
            "-o",
            f"Dir::Etc::SourceList={self._apt / f'sources-{release}.list'}",
            "-o",
            "Dir::Etc::SourceParts=/dev/null",
            "-o",
            f"Dir::Etc::Preferences={self._apt / 'preferences'}",
            "-o",
            "Dir::Etc::PreferencesParts=/dev/null",
            "-o",
            f"Dir::State::Lists={self._apt / 'lists'}",
            # Resolution starts from nothing installed: a closure is everything its program
            # needs, not what the host happens to lack.
            "-o",
            f"Dir::State::status={self._apt / 'status'}",
            "-o",
            f"Dir::Cache={self._apt / f'cache-{release}'}",
            "-o",
            "APT::Architecture=amd64",
            "-o",
            "APT::Architectures=amd64",
            "-o",
            "Debug::NoLocking=1",
            "-o",
            "APT::Sandbox::User=root",
            # sid's Release file on a mirror can be past its Valid-Until (a mirror that syncs
            # rarely): accepted, its signature is still checked.
            "-o",
            "Acquire::Check-Valid-Until=false",
            # Package lists only: not the Contents indices a host's apt-file asks for (tens of
            # MB, and one that a mirror serves mid-sync fails the whole update), nor
            # translations.
            "-o",
            "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false",
            "-o",
            "Acquire::IndexTargets::deb::Contents-udeb::DefaultEnabled=false",
            "-o",
            "Acquire::Languages=none",
        ]

    def refresh(self, force: bool = False) -> None:
        """The private package lists, fetched when missing or older than a day (offline: the
        cached ones, whatever their age)."""
        stamp = self._apt / "updated"
        if self.offline:
            if not stamp.exists():
                raise SetupError(
                    f"--offline: Debian's package lists are not in the cache ({self._apt}): "
                    "run once without --offline"
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / ".apt.lock"):
            if (
                not force
                and stamp.exists()
                and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S
            ):
                return
            (self._apt / "lists/partial").mkdir(parents=True, exist_ok=True)
            for release, suites in (("all", SUITES), *RELEASES.items()):
                (self._apt / f"sources-{release}.list").write_text(
                    "".join(f"deb {self.mirror} {suite} main\n" for suite in suites)
                )
                (self._apt / f"cache-{release}/archives/partial").mkdir(parents=True, exist_ok=True)
            (self._apt / "preferences").write_text(PREFERENCES)
            (self._apt / "status").touch()
            _run(["apt-get", *self._options(), "update", "-qq"], "apt-get update (private lists)")
            stamp.touch()

    def offers(self, package: str) -> list[tuple[str, str]]:
        """(version, suite) of every build of ``package`` the archive offers, newest first;
        asked once per archive object (each question parses every suite's list)."""
        if package not in self._offers:
            self.refresh()
            out = _run(
                ["apt-cache", *self._options(), "madison", package],
                f"apt-cache madison {package}",
            )
            self._offers[package] = [
                parsed for line in out.splitlines() if (parsed := _madison_line(line))
            ]
        return self._offers[package]

    def versions(self, package: str) -> list[str]:
        """Every version of ``package`` the archive offers, newest first."""
        return list(dict.fromkeys(version for version, _ in self.offers(package)))

    def resolve(self, package: str, wanted: str) -> str:
        """The archive version ``wanted`` names: exact, or one whose upstream version is it or
        starts with it (``10.0`` -> ``1:10.0.2+ds-2+deb13u1~bpo12+1``). Of several, the build
        of the oldest release wins (bookworm's, then trixie's, then sid's, experimental's
        last), the newest of that release."""
        offered = self.offers(package)
        if wanted in (version for version, _ in offered):
            return wanted
        matching = [
            (SUITES.index(suite), n, version)
            for n, (version, suite) in enumerate(offered)
            if upstream(version) == wanted or upstream(version).startswith(wanted + ".")
        ]
        if not matching:
            versions = ", ".join(dict.fromkeys(version for version, _ in offered))
            raise SetupError(
                f"{package} {wanted} is not in Debian's archive ({', '.join(SUITES)}); "
                f"offered: {versions or 'none'}"
            )
        return min(matching)[2]

    def suite_of(self, package: str, version: str) -> str:
        """The suite of the oldest release that offers ``package`` at ``version``."""
        suites = [suite for v, suite in self.offers(package) if v == version]
        if not suites:
            raise SetupError(f"{package} {version} is not in Debian's archive")
        return min(suites, key=SUITES.index)

    def companion_version(self, package: str, version: str) -> str:
        """``version`` of a package built from the same source; an arch-all package has no
        binNMU suffix (``+b3``), so that is tried without it."""
        offered = self.versions(package)
        for candidate in (version, re.sub(r"\+b\d+$", "", version)):
            if candidate in offered:
                return candidate
        raise SetupError(f"{package} {version} is not in Debian's archive ({', '.join(SUITES)})")

    def closure(self, packages: Sequence[tuple[str, str]], suite: str) -> list[tuple[str, str]]:
        """``packages`` (name, exact version) and everything they depend on, as apt on
        ``suite``'s release would install them on a system with nothing installed (no
        Recommends). experimental is never the default release: only the packages named here
        come from it."""
        self.refresh()
        release = release_of(suite)
        specs = [f"{name}={version}" for name, version in packages]
        target = [] if suite == "experimental" else ["-t", suite]
        argv = ["apt-get", *self._options(release), "install", "-s", "-qq"]
        argv += ["--no-install-recommends", *target, *specs]
        result = _apt(argv)
        if result.returncode != 0:
            raise SetupError(
                f"the packages {' '.join(specs)} need cannot be resolved on {release}: "
                f"{_apt_problem(result)}"
            )
        return re.findall(r"^Inst (\S+) \((\S+) ", result.stdout, re.MULTILINE)

    def fetch(self, packages: Sequence[tuple[str, str]]) -> list[Package]:
        """``packages`` (name, exact version) as ``.deb`` files in the cache, with their
        sha256; offline, what the cache lacks is a one-line error naming it."""
        self.debs.mkdir(parents=True, exist_ok=True)
        with locked(self.root / ".debs.lock"):
            missing = [
                (name, version) for name, version in packages if not self._deb(name, version)
            ]
            if missing and self.offline:
                raise SetupError(
                    f"--offline: {len(missing)} of {len(packages)} packages are not in the "
                    f"cache ({self.debs}): {' '.join(f'{n}={v}' for n, v in missing)}; "
                    "run once without --offline"
                )
            if missing:
                self._download(missing)
        return [
            Package(name, version, _sha256(self._deb(name, version) or Path()))
            for name, version in packages
        ]

    def _download(self, packages: Sequence[tuple[str, str]]) -> None:
        work = Path(tempfile.mkdtemp(prefix=".download-", dir=self.root))
        try:
            specs = [f"{name}={version}" for name, version in packages]
            _run(
                ["apt-get", *self._options(), "download", "-qq", *specs],
                f"apt-get download of {len(specs)} packages",
                cwd=work,
            )
            for deb in work.glob("*.deb"):
                os.replace(deb, self.debs / deb.name)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        still = [f"{n}={v}" for n, v in packages if not self._deb(n, v)]
        if still:
            raise SetupError(f"apt-get download left out {' '.join(still)}")

    def _deb(self, name: str, version: str) -> Path | None:
        """The cached ``.deb`` of ``name`` at ``version`` (apt's file name: ``name_version_arch``
        with the epoch's colon as ``%3a``)."""
        quoted = version.replace(":", "%3a")
        return next(iter(sorted(self.debs.glob(f"{name}_{quoted}_*.deb"))), None)

    def unpacked(self, name: str) -> tuple[Path, tuple[Package, ...]] | None:
        """The complete tree ``trees/name`` and the packages it holds, if there is one."""
        tree = self.trees / name
        return (tree, packages_of(tree)) if (tree / ".packages.json").is_file() else None

    def unpack(
        self, packages: Sequence[tuple[str, str]], name: str
    ) -> tuple[Path, tuple[Package, ...]]:
        """``packages`` (name, exact version) unpacked together into ``trees/name``, with the
        packages it holds; cached (a tree is complete once it records its packages)."""
        final = self.trees / name
        self.trees.mkdir(parents=True, exist_ok=True)
        with locked(self.trees / f".{name}.lock"):
            done = self.unpacked(name)
            if done is not None:
                return done
            fetched = self.fetch(packages)
            work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.trees))
            try:
                tree = work / "tree"
                for package in fetched:
                    deb = self._deb(package.name, package.version)
                    _run(["dpkg-deb", "-x", str(deb), str(tree)], f"dpkg-deb -x {package.name}")
                closure.confine_symlinks(tree)
                (tree / ".packages.json").write_text(
                    json.dumps([asdict(package) for package in fetched], indent=1)
                )
                shutil.rmtree(final, ignore_errors=True)  # an earlier, incomplete one
                tree.rename(final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return final, tuple(fetched)


def packages_of(tree: Path) -> tuple[Package, ...]:
    """The packages an unpacked tree holds, as it recorded them."""
    return tuple(Package(**entry) for entry in json.loads((tree / ".packages.json").read_text()))


def release_of(suite: str) -> str:
    """``trixie`` for trixie-backports; sid and experimental are their own."""
    release = suite.split("-", 1)[0]
    if release not in RELEASES:
        raise SetupError(f"unknown suite {suite!r}: one of {', '.join(SUITES)}")
    return release


def upstream(version: str) -> str:
    """``10.0.2`` from ``1:10.0.2+ds-2+deb13u1~bpo12+1``."""
    return re.split(r"[-+~]", version.split(":", 1)[-1], maxsplit=1)[0]


def is_version(wanted: str) -> bool:
    """``10.0``, ``1:7.2+dfsg-7``: a Debian version, not a path or a command name."""
    return bool(re.match(r"^(\d+:)?\d+\.", wanted)) and os.sep not in wanted


def provision_qemu(wanted: str, archive: DebianArchive | None = None) -> QemuBuild:
    """QEMU ``wanted`` ready to run: a Debian version (its closure, provisioned), a path to a
    binary (a user's own build), or a command on PATH (the host's)."""
    if not is_version(wanted):
        found = wanted if os.sep in wanted else shutil.which(wanted)
        if found is None or not Path(found).is_file():
            raise SetupError(
                f"QEMU binary {wanted!r} not found: run ./run setup (installs qemu-system-x86), "
                "or pass --qemu PATH or --qemu VERSION (from Debian's archive)"
            )
        return QemuBuild(Path(found))
    archive = archive or DebianArchive()
    version = archive.resolve("qemu-system-x86", wanted)
    name = f"qemu-{_safe(version)}"
    unpacked = archive.unpacked(name)  # the closure resolved when it was first unpacked
    if unpacked is None:
        suite = archive.suite_of("qemu-system-x86", version)
        wanted_packages = [
            (package, archive.companion_version(package, version)) for package in QEMU_PACKAGES
        ]
        unpacked = archive.unpack(archive.closure(wanted_packages, suite), name)
    tree, packages = unpacked
    system, img = closure.write_qemu_wrappers(tree)
    _check_runs(system, "qemu-system-x86", version)
    return QemuBuild(system, version, (str(img),), packages)


def provision_seabios(wanted: str, archive: DebianArchive | None = None) -> SeabiosImage:
    """SeaBIOS's ``bios-256k.bin``: a path, or a Debian version of package seabios."""
    if not is_version(wanted):
        if not Path(wanted).is_file():
            raise SetupError(f"SeaBIOS image {wanted} not found")
        return SeabiosImage(Path(wanted))
    tree, packages = _provision_data("seabios", wanted, archive or DebianArchive())
    return SeabiosImage(tree / "usr/share/seabios/bios-256k.bin", packages)


def provision_ovmf(
    wanted: str, archive: DebianArchive | None = None, secure: bool = False
) -> OvmfImages:
    """OVMF's 4M code and variables images: a directory holding them, or a Debian version;
    ``secure``: the secure-boot build (SMM) with Microsoft's keys enrolled (``.ms.fd``)."""
    packages: tuple[Package, ...] = ()
    if not is_version(wanted):
        folder = Path(wanted)
    else:
        tree, packages = _provision_data("ovmf", wanted, archive or DebianArchive())
        folder = tree / "usr/share/OVMF"
    suffix = ".ms.fd" if secure else ".fd"
    code, variables = folder / f"OVMF_CODE_4M{suffix}", folder / f"OVMF_VARS_4M{suffix}"
    if not code.is_file() or not variables.is_file():
        raise SetupError(f"{code.name} and {variables.name} not found in {folder}")
    return OvmfImages(code, variables, packages)


def _provision_data(
    package: str, wanted: str, archive: DebianArchive
) -> tuple[Path, tuple[Package, ...]]:
    """A firmware package at the version ``wanted`` names, with what it depends on (sid's
    ovmf is a metapackage of ovmf-generic and others), unpacked as data."""
    version = archive.resolve(package, wanted)
    name = f"{package}-{_safe(version)}"
    unpacked = archive.unpacked(name)
    if unpacked is None:
        needed = archive.closure([(package, version)], archive.suite_of(package, version))
        unpacked = archive.unpack(needed, name)
    return unpacked


def _check_runs(binary: Path, package: str, version: str) -> None:
    """A provisioned QEMU that cannot start fails here with its own last line. Bounded: a
    binary that hangs is an error, not a stall."""
    probe = _bounded([str(binary), "--version"], f"{binary} --version")
    if probe.returncode != 0:
        detail = (probe.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise SetupError(f"{package} {version} cannot run on this host: {detail}")


def _bounded(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=PROBE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{what} still running after {PROBE_TIMEOUT_S:.0f}s: stopped") from exc
    except OSError as exc:
        raise SetupError(f"{what}: {exc}") from exc


def _madison_line(line: str) -> tuple[str, str] | None:
    """(version, suite) from ``pkg | 1.0-1 | http://deb.debian.org/debian sid/main amd64
    Packages``."""
    fields = [field.strip() for field in line.split("|")]
    if len(fields) < 3 or len(fields[2].split()) < 2:
        return None
    return fields[1], fields[2].split()[1].split("/")[0]


def _apt_problem(result: subprocess.CompletedProcess[str]) -> str:
    """The line of apt's answer that names the problem (an unmet dependency, else its error)."""
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
    named = [line for line in lines if "Depends:" in line or line.startswith("E: Version")]
    return (named or [line for line in lines if line] or ["(no output)"])[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]", "_", version)


def _apt(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except FileNotFoundError as exc:
        raise SetupError(f"{argv[0]} not found: run ./run setup") from exc


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=600, check=False, cwd=cwd
        )
    except FileNotFoundError as exc:
        raise SetupError(f"{argv[0]} not found: run ./run setup") from exc
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SetupError(f"{what} failed: {last}")
    return result.stdout
