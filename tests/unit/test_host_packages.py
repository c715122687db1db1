"""`./run packages` on each distribution family: a stand-in os-release and recording package
tools (apt-get, dpkg-query, dnf, rpm, sudo on PATH) prove the exact install command, that only
missing packages are installed, and the one-line error on a distribution the map lacks. The
Python side (harness.setup.host_distro) reads the same map and must agree."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.setup import host_distro

ROOT = Path(__file__).resolve().parents[2]

# Each tool appends its argv to $CALLS; the query tools answer from $INSTALLED (one name a line).
FAKE_TOOLS = {
    "apt-get": 'echo "apt-get $*" >> "$CALLS"',
    # dnf refuses (as for a package it does not offer) when $REFUSE is among its arguments.
    "dnf": 'echo "dnf $*" >> "$CALLS"; [[ " $* " != *" ${REFUSE:-@} "* ]]',
    "sudo": 'echo "sudo $1" >> "$CALLS"; exec "$@"',
    "dpkg-query": (
        'pkg="${!#}"; grep -qx "$pkg" "$INSTALLED" || exit 1; printf "install ok installed"'
    ),
    "rpm": 'pkg="${!#}"; grep -qx "$pkg" "$INSTALLED"',
}

OS_RELEASES = {
    "debian": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    "ubuntu": 'ID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 24.04 LTS"\n',
    "fedora": 'ID=fedora\nVERSION_ID=41\nPRETTY_NAME="Fedora Linux 41 (Server Edition)"\n',
    "centos": 'ID="centos"\nID_LIKE="rhel fedora"\nPRETTY_NAME="CentOS Stream 10"\n',
    "rhel": 'ID="rhel"\nID_LIKE="fedora"\nPRETTY_NAME="Red Hat Enterprise Linux 10.0"\n',
    "arch": 'ID=arch\nPRETTY_NAME="Arch Linux"\n',
}


def run_packages(
    tmp_path: Path, distro: str, installed: list[str], refuse: str = "@"
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKE_TOOLS.items():
        tool = bin_dir / name
        tool.write_text(f"#!/bin/bash\n{body}\n")
        tool.chmod(0o755)
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES[distro])
    (tmp_path / "installed").write_text("".join(f"{p}\n" for p in installed))
    calls = tmp_path / "calls"
    calls.touch()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "S3S4_OS_RELEASE": str(os_release),
        "CALLS": str(calls),
        "INSTALLED": str(tmp_path / "installed"),
        "REFUSE": refuse,
    }
    env.pop("S3S4_SKIP_HOST_PACKAGES", None)
    result = subprocess.run(
        [str(ROOT / "run"), "packages"], capture_output=True, text=True, env=env, check=False
    )
    recorded = [c for c in calls.read_text().splitlines() if not c.startswith("sudo ")]
    return result, recorded


@pytest.mark.parametrize("distro", ["debian", "ubuntu"])
def test_debian_family_installs_only_the_missing_with_apt(tmp_path: Path, distro: str) -> None:
    wanted = host_distro.packages("debian")
    result, calls = run_packages(tmp_path, distro, [p for p in wanted if p != "ovmf"])
    assert result.returncode == 0, result.stderr
    assert calls == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends ovmf",
    ]


@pytest.mark.parametrize(
    ("distro", "family"), [("fedora", "fedora"), ("centos", "rhel"), ("rhel", "rhel")]
)
def test_dnf_families_install_only_the_missing_with_dnf(
    tmp_path: Path, distro: str, family: str
) -> None:
    wanted = host_distro.packages(family) + host_distro.packages(f"{family}-if-offered")
    absent = {"edk2-ovmf", "mmdebstrap"}
    result, calls = run_packages(tmp_path, distro, [p for p in wanted if p not in absent])
    assert result.returncode == 0, result.stderr
    assert calls == [
        "dnf install -y -q --setopt=install_weak_deps=False edk2-ovmf",
        "dnf install -y -q --setopt=install_weak_deps=False mmdebstrap",  # if dnf offers it
    ]


def test_what_dnf_does_not_offer_is_a_note_and_the_default_guest_changes(tmp_path: Path) -> None:
    wanted = host_distro.packages("fedora")
    result, calls = run_packages(tmp_path, "fedora", wanted, refuse="debian-keyring")
    assert result.returncode == 0, result.stderr
    offered = " ".join(host_distro.packages("fedora-if-offered"))
    assert calls == [f"dnf install -y -q --setopt=install_weak_deps=False {offered}"]
    assert (
        f"dnf does not offer {offered} here: the default guest is this release's Fedora "
        "cloud image (./run doctor)"
    ) in result.stderr


def test_a_bare_fedora_gets_the_map_in_one_dnf_call_then_what_dnf_may_offer(tmp_path: Path) -> None:
    result, calls = run_packages(tmp_path, "fedora", [])
    assert result.returncode == 0, result.stderr
    wanted = host_distro.packages("fedora")
    offered = host_distro.packages("fedora-if-offered")
    assert calls == [
        f"dnf install -y -q --setopt=install_weak_deps=False {' '.join(wanted)}",
        f"dnf install -y -q --setopt=install_weak_deps=False {' '.join(offered)}",
    ]
    assert {"qemu-system-x86-core", "edk2-ovmf", "seabios-bin", "libvirt-daemon-kvm"} <= set(wanted)
    assert offered == ["mmdebstrap", "apt", "debian-keyring"]


@pytest.mark.parametrize("distro", ["debian", "fedora", "rhel"])
def test_nothing_missing_installs_nothing(tmp_path: Path, distro: str) -> None:
    everything = host_distro.packages(distro) + host_distro.packages(f"{distro}-if-offered")
    result, calls = run_packages(tmp_path, distro, everything)
    assert result.returncode == 0, result.stderr
    assert calls == []


def test_an_unknown_distribution_is_a_one_line_error_naming_what_to_install(
    tmp_path: Path,
) -> None:
    result, calls = run_packages(tmp_path, "arch", [])
    assert result.returncode == 1
    assert calls == []
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "qemu-system-x86 qemu-utils seabios ovmf" in lines[0]
    assert "S3S4_SKIP_HOST_PACKAGES=1" in lines[0]


@pytest.mark.parametrize(
    ("distro", "family"),
    [
        ("debian", "debian"),
        ("ubuntu", "debian"),
        ("fedora", "fedora"),
        ("centos", "rhel"),
        ("rhel", "rhel"),
        ("arch", ""),
    ],
)
def test_python_reads_the_same_family(tmp_path: Path, distro: str, family: str) -> None:
    path = tmp_path / "os-release"
    path.write_text(OS_RELEASES[distro])
    assert host_distro.read_os_release(path).family == family


def test_python_install_command_matches_the_maps() -> None:
    assert host_distro.install_command("fedora", ["edk2-ovmf"]) == (
        "dnf install -y --setopt=install_weak_deps=False edk2-ovmf"
    )
    assert host_distro.install_command("debian", ["ovmf"]) == (
        "apt-get install -y --no-install-recommends ovmf"
    )


def test_python_missing_asks_the_familys_query_tool() -> None:
    asked: list[list[str]] = []

    def fake(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        args = list(argv)
        asked.append(args)
        return subprocess.CompletedProcess(args, 0 if args[-1] != "edk2-ovmf" else 1, "", "")

    assert host_distro.missing("fedora", fake) == ["edk2-ovmf"]
    assert asked[0][:3] == ["rpm", "-q", "--quiet"]


def test_os_release_falls_back_to_usr_lib(tmp_path: Path) -> None:
    fallback = tmp_path / "usr" / "lib" / "os-release"
    fallback.parent.mkdir(parents=True)
    fallback.write_text(OS_RELEASES["fedora"])
    distro = host_distro.read_os_release(tmp_path / "etc" / "os-release")
    assert (distro.family, distro.version_id) == ("fedora", "41")
