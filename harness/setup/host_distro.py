"""The host's distribution: its family (from /etc/os-release's ID and ID_LIKE), the packages the
harness needs on it (host-packages.txt, the same map the ``run`` script installs from) and the
commands that query and install them."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.paths import REPO_ROOT

OS_RELEASE = Path("/etc/os-release")
OS_RELEASE_FALLBACK = "usr/lib/os-release"  # os-release(5): read when /etc has none
PACKAGE_MAP = REPO_ROOT / "host-packages.txt"

# An os-release ID (or one of ID_LIKE's) -> the family whose package names and tools apply.
FAMILY_OF_ID = {
    "debian": "debian",
    "ubuntu": "debian",
    "fedora": "fedora",
    "rhel": "rhel",
    "centos": "rhel",
}


@dataclass(frozen=True)
class PackageTool:
    """How a family queries and installs packages."""

    query: tuple[str, ...]  # + package; exit 0 when installed
    installed_marker: str  # what the query prints for an installed package ("" = exit code only)
    install: tuple[str, ...]  # + packages
    version: tuple[str, ...]  # + package; prints the installed version


TOOLS = {
    "debian": PackageTool(
        query=("dpkg-query", "-W", "-f=${Status}"),
        installed_marker="install ok installed",
        install=("apt-get", "install", "-y", "--no-install-recommends"),
        version=("dpkg-query", "-W", "-f=${Version}"),
    ),
    "fedora": PackageTool(
        query=("rpm", "-q", "--quiet"),
        installed_marker="",
        install=("dnf", "install", "-y", "--setopt=install_weak_deps=False"),
        version=("rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}"),
    ),
}
TOOLS["rhel"] = TOOLS["fedora"]


@dataclass(frozen=True)
class Distribution:
    id: str
    id_like: tuple[str, ...]
    pretty_name: str
    version_id: str = ""

    @property
    def family(self) -> str:
        """``debian``, ``fedora``, ``rhel`` or "" (a distribution the map does not cover)."""
        return next((FAMILY_OF_ID[i] for i in (self.id, *self.id_like) if i in FAMILY_OF_ID), "")


def read_os_release(path: Path = OS_RELEASE) -> Distribution:
    """The distribution os-release describes; empty fields where the file is missing."""
    fields: dict[str, str] = {}
    if not path.is_file() and path.name == "os-release" and path.parent.name == "etc":
        path = path.parent.parent / OS_RELEASE_FALLBACK
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                try:
                    fields[key.strip()] = " ".join(shlex.split(value))
                except ValueError:  # an unbalanced quote: the value as written
                    fields[key.strip()] = value.strip()
    return Distribution(
        fields.get("ID", ""),
        tuple(fields.get("ID_LIKE", "").split()),
        fields.get("PRETTY_NAME", fields.get("ID", "unknown")),
        fields.get("VERSION_ID", ""),
    )


def packages(family: str, path: Path = PACKAGE_MAP) -> list[str]:
    """The map's packages of ``family``, in its order."""
    names = []
    for line in path.read_text().splitlines():
        words = line.partition("#")[0].split()
        if len(words) >= 2 and words[0] == family:
            names.append(words[1])
    return names


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_quietly(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a query; a missing tool reads as "not installed" (exit 127), never as an error."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except OSError as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


def is_installed(family: str, package: str, run: Runner = run_quietly) -> bool:
    tool = TOOLS[family]
    result = run([*tool.query, package])
    return result.returncode == 0 and tool.installed_marker in result.stdout


def installed_version(family: str, package: str, run: Runner = run_quietly) -> str:
    """The installed version of ``package``, or "" when it is not installed."""
    if family not in TOOLS or not is_installed(family, package, run):
        return ""
    result = run([*TOOLS[family].version, package])
    return result.stdout.strip() if result.returncode == 0 else ""


def missing(family: str, run: Runner = run_quietly, path: Path = PACKAGE_MAP) -> list[str]:
    """The map's packages of ``family`` that are not installed."""
    return [p for p in packages(family, path) if not is_installed(family, p, run)]


def install_command(family: str, names: Sequence[str]) -> str:
    """The command line that installs ``names`` on ``family`` (as root)."""
    return shlex.join([*TOOLS[family].install, *names])


# The package that carries each component under test, by family: what `./run doctor` names
# when one is missing and where `./run testday` reads the installed versions.
COMPONENT_PACKAGES = {
    "debian": {
        "qemu": "qemu-system-x86",
        "seabios": "seabios",
        "edk2": "ovmf",
        "libvirt": "libvirt-daemon-system",
    },
    "fedora": {
        "qemu": "qemu-system-x86-core",
        "seabios": "seabios-bin",
        "edk2": "edk2-ovmf",
        "libvirt": "libvirt-daemon-kvm",
    },
    "rhel": {
        "qemu": "qemu-kvm-core",
        "seabios": "seabios-bin",
        "edk2": "edk2-ovmf",
        "libvirt": "libvirt-daemon-kvm",
    },
}
