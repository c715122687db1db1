"""A libvirt stack from a newer Debian suite (libvirtd, virtlogd, the QEMU they run and its
firmware, e.g. sid's libvirt 12 with QEMU 11), for the harness's private daemon.

The stack is a root of that suite, built once with mmdebstrap and cached. The daemon does not
chroot into it: it runs in a mount namespace of its own where the root's ``/usr`` (and its
loader cache) is bound over the host's (see harness.machines.libvirt.daemon). On a merged-/usr
system, which Debian is since 12, ``/usr`` holds every program, library, loader and data file:
libvirtd's connection drivers, /usr/libexec's helpers, the QEMU binary and its modules,
/usr/share/qemu with its ROMs and firmware descriptors, SeaBIOS and OVMF. libvirt and QEMU find
each of them by a fixed path under /usr, so binding /usr gives the whole stack its own files
without rewriting a path. Everything else stays the host's at the same path: the run
directory with its disks, sockets and save images, the image cache, a user's kernel or
firmware file, /dev, /proc and /sys. A chroot would need each of those bound in, and a list
that misses one fails only when a case reaches it; here a path the harness hands libvirt is
the same file for both. The host's /usr and its own libvirt are never touched.

The root is cached by suite and package list; delete it to take newer packages from the
archive. Its manifest records the version of every package in it and the sha256 of the
package files it was built from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SetupError
from harness.setup import scratch
from harness.setup.components import upstream
from harness.setup.image import (
    ARCHIVE,
    DEFAULT_CACHE,
    Progress,
    build_mode,
    locked,
    run_streaming,
)

log = logging.getLogger(__name__)

HOST = "host"  # the host's own libvirt and QEMU: no stack
# A suite name reaches mmdebstrap's arguments and apt's sources lines: nothing else gets through.
SUITE = re.compile(r"[a-z0-9][a-z0-9.+-]*\Z")
STACKS_DIR = DEFAULT_CACHE / "libvirt-stacks"
MANIFEST = "manifest.json"
# What the harness leaves in a stack root: part of its cache key, so a change builds a new one.
LAYOUT = 2
# The daemon, its QEMU driver (which pulls in virtlogd), the QEMU it runs with qemu-img, and
# both firmware; mmdebstrap's apt variant installs no recommends (swtpm, passt, ...).
STACK_PACKAGES = (
    "libvirt-daemon",
    "libvirt-daemon-driver-qemu",
    "qemu-system-x86",
    "qemu-utils",
    "seabios",
    "ovmf",
)
# What results.json names of a stack's packages, beside the running versions.
KEY_PACKAGES = (
    "libvirt-daemon",
    "libvirt0",
    "qemu-system-x86",
    "seabios",
    "ovmf",
    "ovmf-generic",  # where sid keeps the files, ovmf being a metapackage there
)
# An overlay suite is built on its base: sid under experimental, X under X-backports.
OVERLAY_BASES = {"experimental": "sid"}
# sid's and experimental's Release files carry a Valid-Until that a mirror lets lapse between
# syncs; signatures are still checked.
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"',)
DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
)
# Files the daemon runs from: a root without them is not a stack.
REQUIRED = (
    "usr/sbin/libvirtd",
    "usr/sbin/virtlogd",
    "usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
    "usr/bin/qemu-system-x86_64",
    "etc/ld.so.cache",
    "etc/libvirt/qemu.conf",
)


@dataclass(frozen=True)
class LibvirtStack:
    """A built root of ``suite``: what its daemon and QEMU are, and where their files are as
    the harness sees them (inside the daemon's namespace, ``<root>/usr`` is also ``/usr``)."""

    suite: str
    root: Path
    packages: dict[str, str]  # every package in the root: its Debian version
    debs: dict[str, str]  # package: sha256 of the .deb it was installed from

    @property
    def libvirt_version(self) -> str:
        return upstream(self.packages["libvirt-daemon"])

    @property
    def qemu_version(self) -> str:
        return upstream(self.packages["qemu-system-x86"])

    @property
    def emulator(self) -> Path:
        return self.root / "usr/bin/qemu-system-x86_64"

    @property
    def seabios(self) -> Path:
        return self.root / "usr/share/seabios/bios-256k.bin"

    @property
    def ovmf(self) -> tuple[Path, Path]:
        folder = self.root / "usr/share/OVMF"
        return folder / "OVMF_CODE_4M.fd", folder / "OVMF_VARS_4M.fd"

    @property
    def config_dir(self) -> Path:
        """The suite's own libvirt configuration, which the private daemon's copy starts from."""
        return self.root / "etc/libvirt"

    def facts(self) -> dict[str, Any]:
        """What results.json says of the stack: its suite, root and key packages."""
        return {
            "libvirt_stack": self.suite,
            "libvirt_stack_root": str(self.root),
            "libvirt_stack_packages": {
                name: {"version": self.packages[name], "sha256": self.debs.get(name, "")}
                for name in KEY_PACKAGES
                if name in self.packages
            },
        }

    @classmethod
    def load(cls, root: Path) -> LibvirtStack:
        manifest = json.loads((root / MANIFEST).read_text())
        return cls(manifest["suite"], root, manifest["packages"], manifest["debs"])


def checked_suite(suite: str) -> str:
    if not SUITE.match(suite):
        raise SetupError(f"{suite!r} is not a Debian suite name (such as sid or trixie-backports)")
    return suite


def sources(suite: str) -> tuple[str, list[str], list[str]]:
    """mmdebstrap's suite, its sources lines (none: its default) and apt options of its own.

    ``sid`` (or any plain suite) is built as it is. An overlay suite, ``X-backports`` or
    ``experimental``, is built on its base suite with the overlay's sources added and made
    apt's default release: whatever the overlay offers (libvirt, QEMU, the SeaBIOS and the
    libraries they need) comes from it, the rest from the base.
    """
    checked_suite(suite)
    base = OVERLAY_BASES.get(suite) or (
        suite.removesuffix("-backports") if suite.endswith("-backports") else None
    )
    if base is None:
        return suite, [], []
    lines = [f"deb {ARCHIVE} {base} main"]
    if base != "sid":
        lines.append(f"deb {ARCHIVE} {base}-updates main")
    lines.append(f"deb {ARCHIVE} {suite} main")
    return base, lines, [f'APT::Default-Release "{suite}"']


def cache_key(suite: str) -> str:
    """Names what the root is built from: the build's command line (all but where and how)
    and what the harness leaves in the root."""
    argv = build_argv(suite, Path("root"), "mode")
    return hashlib.sha256(json.dumps([LAYOUT, argv]).encode()).hexdigest()[:12]


def build_argv(suite: str, rootdir: Path, mode: str) -> list[str]:
    """The mmdebstrap command line that builds ``suite``'s stack into ``rootdir``; every
    package file (the essential ones too) is kept in the root's apt cache so that its sha256
    can be recorded."""
    base, lines, apt_options = sources(suite)
    return [
        "mmdebstrap",
        f"--mode={mode}",
        "--variant=apt",
        *(f"--aptopt={option}" for option in (*APT_OPTIONS, *apt_options)),
        *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
        "--include=" + ",".join(STACK_PACKAGES),
        "--skip=cleanup/apt/cache",
        "--skip=essential/unlink",
        base,
        str(rootdir),
        *lines,
    ]


def ensure_stack(suite: str, progress: Progress, stacks_dir: Path = STACKS_DIR) -> LibvirtStack:
    """``suite``'s stack, built first where it is not cached."""
    final = stacks_dir / f"{checked_suite(suite)}-{cache_key(suite)}"
    if (final / MANIFEST).is_file():
        return LibvirtStack.load(final)
    if os.geteuid() != 0:
        raise SetupError(f"building the libvirt stack of {suite} needs root (mmdebstrap)")
    if shutil.which("mmdebstrap") is None:
        raise SetupError("mmdebstrap not found: run ./run setup (installs mmdebstrap)")
    stacks_dir.mkdir(parents=True, exist_ok=True)
    with locked(stacks_dir / f".{final.name}.lock"):
        if (final / MANIFEST).is_file():  # another run built it while we waited
            return LibvirtStack.load(final)
        scratch.sweep_dead_builds(stacks_dir)
        work = stacks_dir / f"{scratch.BUILD_PREFIX}{final.name}-{os.getpid()}"
        scratch.remove_work_dir(work)
        work.mkdir(mode=0o755)  # apt downloads into it as _apt
        try:
            _build(suite, work, stacks_dir / f"{final.name}.log", progress)
            (work / "root").rename(final)
        finally:
            scratch.remove_work_dir(work)
    return LibvirtStack.load(final)


def _build(suite: str, work: Path, log_path: Path, progress: Progress) -> None:
    rootdir = work / "root"
    started = time.monotonic()
    progress(f"building the libvirt stack of {suite} into {work.parent} ...")
    argv = build_argv(suite, rootdir, build_mode())
    run_streaming(argv, log_path, progress, f"libvirt stack {suite}", SetupError)
    check_root(rootdir)
    debs = _hash_and_drop_debs(rootdir / "var/cache/apt/archives")
    manifest = {
        "suite": suite,
        "packages": installed_packages(rootdir),
        "debs": debs,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (rootdir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    progress(f"libvirt stack {suite}: done in {manifest['build_seconds']}s")


def check_root(rootdir: Path) -> None:
    """The root has what the daemon runs from, and a merged /usr (its /usr is all of it)."""
    missing = [name for name in REQUIRED if not (rootdir / name).exists()]
    if missing:
        raise SetupError(f"the libvirt stack at {rootdir} lacks {', '.join(missing)}")
    for name in ("bin", "lib", "lib64", "sbin"):
        path = rootdir / name
        if path.exists() and not path.is_symlink():
            raise SetupError(f"{path} is not a link into usr/: the stack needs a merged /usr")


def installed_packages(rootdir: Path) -> dict[str, str]:
    """Every package installed in ``rootdir``: its Debian version."""
    result = subprocess.run(
        ["dpkg-query", f"--admindir={rootdir}/var/lib/dpkg", "-W", "-f=${Package}\t${Version}\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise SetupError(f"dpkg-query in {rootdir} failed: {result.stderr.strip()[:200]}")
    return dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)


def _hash_and_drop_debs(archives: Path) -> dict[str, str]:
    """sha256 of each package file apt kept (``NAME_VERSION_ARCH.deb``), by package name;
    the files are removed afterwards."""
    hashes = {}
    for deb in sorted(archives.glob("*.deb")):
        hashes[deb.name.split("_", 1)[0]] = hashlib.sha256(deb.read_bytes()).hexdigest()
        deb.unlink()
    return hashes


__all__ = [
    "HOST",
    "LibvirtStack",
    "build_argv",
    "ensure_stack",
    "sources",
]
