"""Which libvirt daemon the harness's private daemon is: the monolithic ``libvirtd`` or the
modular QEMU daemon ``virtqemud`` (with its ``virtlogd``), and where their programs are.

Fedora and current libvirt run the modular daemons; Debian's packages (12 to sid) install
only ``libvirtd``. ``virtqemud`` is taken from the host where it is installed, else built once
from the host's own libvirt source package (the same version as its ``libvirtd``, with
Debian's patches) into the cache: a minimal build, the QEMU driver and what it needs, with no
other hypervisor, network, secret or storage-pool driver, no docs and no tests.

The build's prefix is its cache directory, but its configuration, state and runtime
directories are libvirt's usual ``/etc``, ``/var`` and ``/run`` paths: the private daemon binds
its own directories over those (harness.machines.libvirt.daemon), exactly as for libvirtd, and
the build's installed programs find their own library, connection drivers and helpers through
the prefix (an rpath and compiled-in paths), never the host's libvirt. QEMU, its firmware and
everything else stay the host's. Installing puts nothing outside the cache: the defaults for
``/etc/libvirt`` go to ``<prefix>/etc/libvirt``, from which the private daemon's configuration
is copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SetupError
from harness.setup import scratch
from harness.setup.image import ARCHIVE, DEFAULT_CACHE, Progress, locked, run_streaming

LIBVIRTD = "libvirtd"
VIRTQEMUD = "virtqemud"
DAEMONS = (LIBVIRTD, VIRTQEMUD)
LOG_DAEMON = "virtlogd"
BUILDS_DIR = DEFAULT_CACHE / "libvirt-modular"
MANIFEST = "manifest.json"
# What the harness leaves in a build: part of its cache key, so a change builds a new one.
LAYOUT = 1
SOURCE_PACKAGE = "libvirt"
HOST_LIBVIRT_PACKAGE = "libvirt-daemon"  # its version is the source version built
# Two cores are shared with guest runs: the build takes at most two jobs, at the lowest
# priority.
BUILD_JOBS = 2
NICE = ("nice", "-n", "19")
# What the minimal build needs from Debian (the libvirt source package's Build-Depends, less
# what the disabled drivers and features use).
BUILD_DEPENDS = (
    "dpkg-dev",
    "meson",
    "ninja-build",
    "pkg-config",
    "gcc",
    "libc6-dev",
    "libglib2.0-dev",
    "libxml2-dev",
    "libxml2-utils",
    "xsltproc",
    "python3-docutils",
    "libgnutls28-dev",
    "libtirpc-dev",
    "libyajl-dev",
    "libnl-3-dev",
    "libnl-route-3-dev",
    "libcap-ng-dev",
    "libudev-dev",
    "libpciaccess-dev",
    "libdevmapper-dev",
    "libacl1-dev",
    "libattr1-dev",
    "libselinux1-dev",
)
# The QEMU driver, the daemons and the local-file storage backend the QEMU driver uses for
# disks; every other driver and optional feature off, so no other build dependency is needed.
ENABLED = ("driver_qemu", "driver_libvirtd", "driver_remote", "yajl", "storage_dir", "storage_fs")
DISABLED = (
    "docs",
    "tests",
    "expensive_tests",
    "nls",
    "driver_bhyve",
    "driver_esx",
    "driver_hyperv",
    "driver_interface",
    "driver_libxl",
    "driver_lxc",
    "driver_ch",
    "driver_network",
    "driver_openvz",
    "driver_secrets",
    "driver_test",
    "driver_vbox",
    "driver_vmware",
    "driver_vz",
    "storage_disk",
    "storage_gluster",
    "storage_iscsi",
    "storage_iscsi_direct",
    "storage_lvm",
    "storage_mpath",
    "storage_rbd",
    "storage_scsi",
    "storage_vstorage",
    "storage_zfs",
    "apparmor",
    "secdriver_apparmor",
    "apparmor_profiles",
    "wireshark_dissector",
    "polkit",
    "firewalld",
    "firewalld_zone",
    "dtrace",
    "sanlock",
    "glusterfs",
    "libiscsi",
    "curl",
    "fuse",
    "netcf",
    "openwsman",
    "libssh",
    "sasl",
    "readline",
    "numactl",
    "numad",
    "bash_completion",
    "host_validate",
    "login_shell",
    "nss",
    "sysctl_config",
    "pm_utils",
    "audit",
    "libpcap",
)
# Files a build must hold, relative to its prefix.
REQUIRED = (
    f"sbin/{VIRTQEMUD}",
    f"sbin/{LOG_DAEMON}",
    "lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
    "etc/libvirt/virtqemud.conf",
    "etc/libvirt/qemu.conf",
)
APT_TIMEOUT_S = 900.0  # installing the build dependencies: minutes from a near mirror
QUERY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DaemonPrograms:
    """The hypervisor daemon the private daemon runs (``libvirtd`` or ``virtqemud``), and
    where it and its ``virtlogd`` are: ``sbin`` None for the host's, by PATH."""

    name: str = LIBVIRTD
    sbin: Path | None = None
    config_dir: Path | None = None  # its own default configuration, where not the host's
    origin: str = "host"  # what results.json says it is

    def program(self, tool: str) -> str:
        """``tool`` (the daemon or virtlogd) as the command line names it."""
        return tool if self.sbin is None else str(self.sbin / tool)

    @property
    def socket_name(self) -> str:
        """Its read-write socket in libvirt's run directory."""
        return "libvirt-sock" if self.name == LIBVIRTD else f"{self.name}-sock"

    @property
    def config_name(self) -> str:
        """The configuration file it reads from libvirt's configuration directory."""
        return f"{self.name}.conf"

    def facts(self) -> dict[str, Any]:
        return {"libvirt_daemon_program": self.name, "libvirt_daemon_origin": self.origin}


HOST_LIBVIRTD = DaemonPrograms()


def checked_daemon(name: str) -> str:
    if name not in DAEMONS:
        raise SetupError(f"--libvirt-daemon {name!r}: use one of {', '.join(DAEMONS)}")
    return name


def check_with_stack(daemon: str, stack: str, host_stack: str) -> None:
    """A libvirt stack of another suite runs that suite's libvirtd: Debian's packages have no
    virtqemud."""
    if checked_daemon(daemon) != LIBVIRTD and stack != host_stack:
        raise SetupError(
            f"--libvirt-daemon {daemon} runs the host's libvirt, and --libvirt-stack {stack} "
            "its suite's libvirtd (Debian's packages have no virtqemud): drop one"
        )


def unavailable_reason(
    builds_dir: Path = BUILDS_DIR,
    which: Any = shutil.which,
    version: Any = None,
    geteuid: Any = os.geteuid,
) -> str | None:
    """Why this host can have no virtqemud, or None where one is installed, built or can be
    built: as root, with dpkg and apt, from the source of the installed Debian libvirt
    (``version``: host_libvirt_version)."""
    if which(VIRTQEMUD) is not None and which(LOG_DAEMON) is not None:
        return None
    for tool in ("dpkg-query", "apt-get"):
        if which(tool) is None:
            return f"no {VIRTQEMUD} installed, and no {tool} to build one from Debian's source"
    try:
        built = builds_dir / build_dir_name((version or host_libvirt_version)())
    except SetupError as exc:
        return str(exc)
    if geteuid() != 0 and not (built / MANIFEST).is_file():
        return f"no {VIRTQEMUD} installed or built, and building one needs root"
    return None


def resolve_daemon(
    name: str,
    progress: Progress,
    builds_dir: Path = BUILDS_DIR,
    which: Any = shutil.which,
) -> DaemonPrograms:
    """The programs of daemon ``name``: libvirtd and an installed virtqemud are the host's;
    a virtqemud the host lacks is built from the host's libvirt source (cached)."""
    checked_daemon(name)
    if name == LIBVIRTD:
        return HOST_LIBVIRTD
    if which(VIRTQEMUD) is not None and which(LOG_DAEMON) is not None:
        return DaemonPrograms(VIRTQEMUD)
    build = ensure_build(host_libvirt_version(), progress, builds_dir)
    return build.programs


@dataclass(frozen=True)
class ModularBuild:
    """A cached build of libvirt's modular daemons under ``prefix``."""

    prefix: Path
    version: str  # the Debian version of the source package built

    @property
    def programs(self) -> DaemonPrograms:
        return DaemonPrograms(
            VIRTQEMUD,
            self.prefix / "sbin",
            self.prefix / "etc/libvirt",
            f"built from Debian's libvirt {self.version} source into {self.prefix}",
        )


def host_libvirt_version() -> str:
    """The Debian version of the host's libvirt, whose source the build takes."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", HOST_LIBVIRT_PACKAGE],
        capture_output=True,
        text=True,
        timeout=QUERY_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise SetupError(
            f"virtqemud is not installed and is built from the host's libvirt source, but "
            f"{HOST_LIBVIRT_PACKAGE} is not installed: run ./run setup"
        )
    return result.stdout.strip()


def meson_argv(source: Path, build: Path, prefix: Path) -> list[str]:
    """``meson setup`` of the minimal build: installed under ``prefix``, run with libvirt's
    usual configuration, state and runtime directories (the private daemon binds its own over
    them), finding its own library by rpath."""
    return [
        "meson",
        "setup",
        str(build),
        str(source),
        f"--prefix={prefix}",
        "--libdir=lib/x86_64-linux-gnu",
        "--sysconfdir=/etc",
        "--localstatedir=/var",
        "-Drunstatedir=/run",
        # No optimisation and no debug information: the daemon only relays a few commands to
        # QEMU per test, while -O3 about doubles the compile, the build's largest step.
        "-Dbuildtype=plain",
        "-Drpath=enabled",
        "-Dinit_script=none",
        *(f"-D{option}=enabled" for option in ENABLED),
        *(f"-D{option}=disabled" for option in DISABLED),
    ]


def cache_key(version: str) -> str:
    """Names what a build is made from: the source version, the configure options (all but
    where) and what the harness leaves in it."""
    argv = meson_argv(Path("src"), Path("build"), Path("prefix"))
    return hashlib.sha256(json.dumps([LAYOUT, version, argv]).encode()).hexdigest()[:12]


def build_dir_name(version: str) -> str:
    safe = version.replace(":", "_").replace("~", "_")
    return f"libvirt-{safe}-{cache_key(version)}"


def ensure_build(version: str, progress: Progress, builds_dir: Path = BUILDS_DIR) -> ModularBuild:
    """The build of Debian's libvirt ``version``, made first where it is not cached."""
    final = builds_dir / build_dir_name(version)
    if (final / MANIFEST).is_file():
        return ModularBuild(final, version)
    if os.geteuid() != 0:
        raise SetupError("building virtqemud needs root (it installs its build dependencies)")
    builds_dir.mkdir(parents=True, exist_ok=True)
    with locked(builds_dir / f".{final.name}.lock"):
        if (final / MANIFEST).is_file():  # another run built it while we waited
            return ModularBuild(final, version)
        scratch.sweep_dead_builds(builds_dir)
        work = builds_dir / f"{scratch.BUILD_PREFIX}{final.name}-{os.getpid()}"
        scratch.remove_work_dir(work)
        work.mkdir(mode=0o755)  # apt downloads into it as _apt
        try:
            _build(version, work, final, builds_dir / f"{final.name}.log", progress)
        finally:
            scratch.remove_work_dir(work)
    return ModularBuild(final, version)


def _build(version: str, work: Path, final: Path, log_path: Path, progress: Progress) -> None:
    started = time.monotonic()
    progress(f"building virtqemud from Debian's libvirt {version} into {final} ...")
    install_build_depends(progress)
    source = fetch_source(version, work, log_path.with_suffix(".source.log"), progress)
    build = work / "build"
    staging = work / "staging"
    steps = [
        ("configure", meson_argv(source, build, final)),
        ("compile", [*NICE, "ninja", "-C", str(build), f"-j{BUILD_JOBS}"]),
        ("install", ["meson", "install", "-C", str(build), "--destdir", str(staging)]),
    ]
    for label, argv in steps:
        progress(f"virtqemud build: {label} ...")
        run_streaming(argv, log_path.with_suffix(f".{label}.log"), progress, label, SetupError)
    installed = staging / final.relative_to("/")
    # The defaults for libvirt's /etc/libvirt, kept inside the build: nothing lands in /etc.
    shutil.copytree(staging / "etc/libvirt", installed / "etc/libvirt")
    check_build(installed)
    manifest = {
        "source": SOURCE_PACKAGE,
        "version": version,
        "meson": meson_argv(Path("src"), Path("build"), final)[4:],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (installed / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    installed.rename(final)
    progress(f"virtqemud build: done in {manifest['build_seconds']}s")


def check_build(prefix: Path) -> None:
    missing = [name for name in REQUIRED if not (prefix / name).exists()]
    if missing:
        raise SetupError(f"the virtqemud build at {prefix} lacks {', '.join(missing)}")


def missing_build_depends(installed: Any = None) -> list[str]:
    """The build dependencies the host lacks (``installed``: a package -> bool probe)."""
    probe = installed or _dpkg_installed
    return [package for package in BUILD_DEPENDS if not probe(package)]


def _dpkg_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
        capture_output=True,
        text=True,
        timeout=QUERY_TIMEOUT_S,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "installed"


def install_build_depends(progress: Progress, run: Any = subprocess.run) -> None:
    """The missing build dependencies, installed with apt after refreshing its package lists
    (a machine's lists may be older than the archive's files); ``run`` is subprocess.run."""
    missing = missing_build_depends()
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise SetupError(f"building virtqemud needs {' '.join(missing)}: install them")
    progress(f"virtqemud build: installing {' '.join(missing)} ...")
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
    ):
        result = run(
            argv,
            capture_output=True,
            text=True,
            timeout=APT_TIMEOUT_S,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise SetupError(
                f"{' '.join(argv[:2])} of virtqemud's build dependencies failed ({last}): "
                f"install {' '.join(missing)} by hand, or use --libvirt-daemon libvirtd"
            )


def apt_options(state: Path) -> list[str]:
    """A private apt state over ``state`` that sees only the host release's source indices;
    the host's own apt state and sources are not touched."""
    return [
        "-o",
        f"Dir::Etc::SourceList={state / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={state / 'lists'}",
        "-o",
        f"Dir::State::status={state / 'status'}",
        "-o",
        f"Dir::Cache={state / 'cache'}",
        "-o",
        "Debug::NoLocking=1",
        "-o",
        "APT::Sandbox::User=root",
        "-o",
        "Acquire::Languages=none",
    ]


def source_lines(codename: str) -> str:
    return "".join(
        f"deb-src {ARCHIVE} {suite} main\n" for suite in (codename, f"{codename}-updates")
    )


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    for line in os_release.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise SetupError(f"{os_release} names no VERSION_CODENAME: cannot find the libvirt source")


def fetch_source(version: str, work: Path, log_path: Path, progress: Progress) -> Path:
    """Debian's libvirt ``version`` source, fetched by apt (its files checked against the
    signed source index) and unpacked with Debian's patches applied."""
    state = work / "apt"
    for directory in ("lists/partial", "cache/archives/partial"):
        (state / directory).mkdir(parents=True, exist_ok=True)
    (state / "status").write_text("")
    (state / "sources.list").write_text(source_lines(host_codename()))
    options = apt_options(state)
    progress(f"virtqemud build: fetching Debian's {SOURCE_PACKAGE} {version} source ...")
    for label, argv in (
        ("apt-get update", ["apt-get", *options, "update", "-q"]),
        (
            "apt-get source",
            ["apt-get", *options, "source", "--download-only", f"{SOURCE_PACKAGE}={version}"],
        ),
    ):
        run_streaming_in(argv, work, log_path, label)
    dsc = next(work.glob(f"{SOURCE_PACKAGE}_*.dsc"), None)
    if dsc is None:
        raise SetupError(f"apt-get source left no {SOURCE_PACKAGE} .dsc in {work}")
    source = work / "source"
    # apt checked each file's hash against the signed Sources index; the .dsc's own
    # signature would need the Debian developers' keyring.
    run_streaming_in(
        ["dpkg-source", "--no-check", "-x", str(dsc), str(source)], work, log_path, "dpkg-source -x"
    )
    return source


def run_streaming_in(argv: list[str], cwd: Path, log_path: Path, label: str) -> None:
    """A short step run in ``cwd`` (apt-get source writes where it runs), its output appended
    to ``log_path``; its failure names the step and the log."""
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        try:
            result = subprocess.run(
                argv,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=APT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SetupError(f"{label} took over {APT_TIMEOUT_S:.0f}s; see {log_path}") from exc
    if result.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-2:]
        raise SetupError(f"{label} failed ({result.returncode}): {tail}; see {log_path}")


__all__ = [
    "DAEMONS",
    "HOST_LIBVIRTD",
    "DaemonPrograms",
    "ModularBuild",
    "check_with_stack",
    "checked_daemon",
    "ensure_build",
    "meson_argv",
    "resolve_daemon",
    "unavailable_reason",
]
