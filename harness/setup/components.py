"""Component versions from Debian's archive, unpacked into a cache and run from there.

The host's installed packages are never touched: apt runs with a private sources list and
private state under the cache (``apt-get download``), and each package is unpacked with
``dpkg-deb -x`` into its own directory, under a lock, renamed into place when complete.
QEMU from bookworm-backports runs against the host's bookworm libraries; firmware is data.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError
from harness.setup.image import ARCHIVE, DEFAULT_CACHE, locked

SUITES = ("bookworm", "bookworm-updates", "bookworm-backports", "trixie")
LISTS_MAX_AGE_S = 24 * 3600
PROBE_TIMEOUT_S = 60.0  # ldd and --version of a provisioned QEMU: instant when it runs at all


@dataclass(frozen=True)
class QemuBuild:
    """A QEMU to run: its binary, its data directory (``-L``) and module directory."""

    binary: Path
    data_dir: Path | None = None
    module_dir: Path | None = None
    package_version: str = ""

    def env(self) -> dict[str, str]:
        """What QEMU needs in its environment to load its own modules, not the host's."""
        return {"QEMU_MODULE_DIR": str(self.module_dir)} if self.module_dir else {}


class DebianArchive:
    """Package versions from Debian's archive (``SUITES``), downloaded into ``root``."""

    def __init__(self, root: Path = DEFAULT_CACHE / "components", mirror: str = ARCHIVE) -> None:
        self.root = root
        self.mirror = mirror
        self._apt = root / "apt"

    def _options(self) -> list[str]:
        return [
            "-o",
            f"Dir::Etc::SourceList={self._apt / 'sources.list'}",
            "-o",
            "Dir::Etc::SourceParts=/dev/null",
            "-o",
            f"Dir::State::Lists={self._apt / 'lists'}",
            "-o",
            f"Dir::Cache={self._apt / 'cache'}",
            "-o",
            "Debug::NoLocking=1",
            "-o",
            "APT::Sandbox::User=root",
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
        """The private package lists, fetched when missing or older than a day."""
        stamp = self._apt / "updated"
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / ".apt.lock"):
            if (
                not force
                and stamp.exists()
                and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S
            ):
                return
            for sub in ("lists/partial", "cache/archives/partial"):
                (self._apt / sub).mkdir(parents=True, exist_ok=True)
            (self._apt / "sources.list").write_text(
                "".join(f"deb {self.mirror} {suite} main\n" for suite in SUITES)
            )
            _run(["apt-get", *self._options(), "update", "-qq"], "apt-get update (private lists)")
            stamp.touch()

    def versions(self, package: str) -> list[str]:
        """Every version of ``package`` the archive offers, newest first."""
        self.refresh()
        out = _run(
            ["apt-cache", *self._options(), "madison", package], f"apt-cache madison {package}"
        )
        return [line.split("|")[1].strip() for line in out.splitlines() if line.count("|") >= 2]

    def resolve(self, package: str, wanted: str) -> str:
        """The archive version ``wanted`` names: exact, or the first whose upstream version
        starts with it (``10.0`` -> ``1:10.0.2+ds-2+deb13u1~bpo12+1``), bookworm builds first."""
        offered = self.versions(package)
        if wanted in offered:
            return wanted
        matching = [v for v in offered if upstream(v).startswith(wanted)]
        matching.sort(key=lambda v: ("bpo12" not in v and "deb12" not in v, offered.index(v)))
        if not matching:
            raise SetupError(
                f"{package} {wanted} is not in Debian's archive ({', '.join(SUITES)}); "
                f"offered: {', '.join(offered) or 'none'}"
            )
        return matching[0]

    def companion_version(self, package: str, version: str) -> str:
        """``version`` of a package built from the same source; an arch-all package has no
        binNMU suffix (``+b3``), so that is tried without it."""
        offered = self.versions(package)
        for candidate in (version, re.sub(r"\+b\d+$", "", version)):
            if candidate in offered:
                return candidate
        raise SetupError(f"{package} {version} is not in Debian's archive ({', '.join(SUITES)})")

    def unpack(self, packages: Sequence[tuple[str, str]], name: str) -> Path:
        """``packages`` (name, exact version) unpacked together into ``root/name``; cached."""
        final = self.root / name
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / f".{name}.lock"):
            if final.is_dir():
                return final
            work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.root))
            try:
                debs = work / "debs"
                debs.mkdir()
                specs = [f"{package}={version}" for package, version in packages]
                _run(
                    ["apt-get", *self._options(), "download", "-qq", *specs],
                    f"apt-get download {' '.join(specs)}",
                    cwd=debs,
                )
                tree = work / "root"
                for deb in sorted(debs.glob("*.deb")):
                    _run(["dpkg-deb", "-x", str(deb), str(tree)], f"dpkg-deb -x {deb.name}")
                shutil.rmtree(debs)
                tree.rename(work / "tree")
                (work / "tree").rename(final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return final


def upstream(version: str) -> str:
    """``10.0.2`` from ``1:10.0.2+ds-2+deb13u1~bpo12+1``."""
    return re.split(r"[-+~]", version.split(":", 1)[-1], maxsplit=1)[0]


def is_version(wanted: str) -> bool:
    """``10.0``, ``1:7.2+dfsg-7``: a Debian version, not a path or a command name."""
    return bool(re.match(r"^(\d+:)?\d+\.", wanted)) and os.sep not in wanted


def provision_qemu(wanted: str, archive: DebianArchive | None = None) -> QemuBuild:
    """QEMU ``wanted`` ready to run: a Debian version (provisioned), a path to a binary (a
    user's own build), or a command on PATH (the host's)."""
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
    packages = [("qemu-system-x86", version)] + [
        (companion, archive.companion_version(companion, version))
        for companion in ("qemu-system-common", "qemu-system-data")
    ]
    tree = archive.unpack(packages, f"qemu-{_safe(version)}")
    build = QemuBuild(
        binary=tree / "usr/bin/qemu-system-x86_64",
        data_dir=tree / "usr/share/qemu",
        module_dir=tree / "usr/lib/x86_64-linux-gnu/qemu",
        package_version=version,
    )
    _check_libraries(build.binary, "qemu-system-x86", version)
    return build


def provision_seabios(wanted: str, archive: DebianArchive | None = None) -> Path:
    """SeaBIOS's ``bios-256k.bin``: a path, or a Debian version of package seabios."""
    if not is_version(wanted):
        if not Path(wanted).is_file():
            raise SetupError(f"SeaBIOS image {wanted} not found")
        return Path(wanted)
    archive = archive or DebianArchive()
    version = archive.resolve("seabios", wanted)
    tree = archive.unpack([("seabios", version)], f"seabios-{_safe(version)}")
    return tree / "usr/share/seabios/bios-256k.bin"


def provision_ovmf(wanted: str, archive: DebianArchive | None = None) -> tuple[Path, Path]:
    """OVMF's 4M code and variables images: a directory holding them, or a Debian version."""
    if not is_version(wanted):
        folder = Path(wanted)
    else:
        archive = archive or DebianArchive()
        version = archive.resolve("ovmf", wanted)
        folder = archive.unpack([("ovmf", version)], f"ovmf-{_safe(version)}") / "usr/share/OVMF"
    code, variables = folder / "OVMF_CODE_4M.fd", folder / "OVMF_VARS_4M.fd"
    if not code.is_file() or not variables.is_file():
        raise SetupError(f"OVMF_CODE_4M.fd and OVMF_VARS_4M.fd not found in {folder}")
    return code, variables


def _check_libraries(binary: Path, package: str, version: str) -> None:
    """A build for another Debian release fails here, naming what is missing. Both programs
    are bounded: a binary that hangs (or an ``ldd`` that runs it) is an error, not a stall."""
    ldd = _bounded(["ldd", str(binary)], f"ldd {binary}")
    out = ldd.stdout + ldd.stderr
    missing = [line.split()[0] for line in out.splitlines() if "=> not found" in line]
    missing += re.findall(r"version `([^']+)' not found", out)
    probe = _bounded([str(binary), "--version"], f"{binary} --version")
    if missing or probe.returncode != 0:
        detail = ", ".join(missing) or (probe.stderr.strip().splitlines() or ["?"])[-1][:200]
        raise SetupError(
            f"{package} {version} cannot run on this host ({detail}): pick a build for this "
            "Debian release (bookworm or bookworm-backports)"
        )


def _bounded(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=PROBE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{what} still running after {PROBE_TIMEOUT_S:.0f}s: stopped") from exc
    except OSError as exc:
        raise SetupError(f"{what}: {exc}") from exc


def _safe(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]", "_", version)


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
