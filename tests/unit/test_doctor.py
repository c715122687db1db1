"""`./run doctor` on stand-in hosts (a file tree for /sys, /dev, /proc, /etc and /usr, programs
on a PATH of their own, a recording package query) and on this host for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.setup import host_distro
from harness.tools import doctor

FEDORA = 'ID=fedora\nVERSION_ID=41\nPRETTY_NAME="Fedora Linux 41 (Server Edition)"\n'
MEMINFO = "MemTotal:       16303384 kB\nMemAvailable:   12303384 kB\n"


def put(root: Path, path: str, text: str = "", mode: int = 0o644) -> Path:
    file = root / path.lstrip("/")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    file.chmod(mode)
    return file


def fedora_kvm_host(tmp_path: Path, *, kvm_mode: int = 0o666) -> doctor.Host:
    root = tmp_path / "root"
    put(root, "/etc/os-release", FEDORA)
    put(root, "/sys/module/kvm/refcnt", "1")
    put(root, "/sys/module/kvm_intel/parameters/nested", "Y\n")
    put(root, "/dev/kvm", "", kvm_mode)
    put(root, "/proc/meminfo", MEMINFO)
    put(root, "/sys/fs/selinux/enforce", "1")
    put(root, "/usr/sbin/virtqemud", "", 0o755)
    put(root, "/usr/share/seabios/bios-256k.bin", "bios")
    put(root, "/usr/share/edk2/ovmf/x.fd", "code")
    put(root, "/usr/share/edk2/ovmf/vars.fd", "vars")
    descriptor = {
        "interface-types": ["uefi"],
        "mapping": {
            "device": "flash",
            "executable": {"filename": "/usr/share/edk2/ovmf/x.fd", "format": "raw"},
            "nvram-template": {"filename": "/usr/share/edk2/ovmf/vars.fd", "format": "raw"},
        },
        "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
        "features": ["acpi-s3"],
    }
    put(root, "/usr/share/qemu/firmware/60-edk2-ovmf-x86_64.json", json.dumps(descriptor))
    secure = {**descriptor, "features": ["secure-boot", "requires-smm", "enrolled-keys"]}
    put(root, "/usr/share/qemu/firmware/50-edk2-ovmf-x86_64-secure.json", json.dumps(secure))
    bin_dir = tmp_path / "bin"
    put(bin_dir, "qemu-system-x86_64", "#!/bin/sh\necho 'QEMU emulator version 9.1.2'\n", 0o755)
    put(bin_dir, "virsh", "#!/bin/sh\necho 10.6.0\n", 0o755)
    put(bin_dir, "mmdebstrap", "", 0o755)
    put(bin_dir, "apt-get", "", 0o755)
    put(root, "/usr/share/keyrings/debian-archive-keyring.gpg", "keys")
    return doctor.Host(root=root, path=str(bin_dir), run=fake_rpm({"edk2-ovmf", "ShellCheck"}))


def fake_rpm(absent: set[str]) -> host_distro.Runner:
    versions = {"seabios-bin": "1.16.3-4.fc41", "edk2-ovmf": "20241117-3.fc41"}

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        args, package = list(argv), argv[-1]
        if package in absent:
            return subprocess.CompletedProcess(args, 1, "", "")
        return subprocess.CompletedProcess(args, 0, versions.get(package, "1-1"), "")

    return run


def by_topic(host: doctor.Host) -> tuple[dict[str, doctor.Finding], list[str]]:
    distro, findings = doctor.examine(host)
    return {f.topic: f for f in findings}, doctor.render(distro, findings)


def test_a_fedora_kvm_host(tmp_path: Path) -> None:
    found, lines = by_topic(fedora_kvm_host(tmp_path))
    assert found["host"].text == "Fedora Linux 41 (Server Edition) (fedora family, dnf)"
    assert found["accel"].status == doctor.OK
    assert found["accel"].text == "KVM: kvm_intel loaded, /dev/kvm usable, nested=Y"
    assert found["qemu"].text.endswith("qemu-system-x86_64 9.1.2")
    assert found["seabios"].text == "/usr/share/seabios/bios-256k.bin 1.16.3-4.fc41"
    # the descriptor names the firmware; with its package not installed there is no version
    assert found["edk2"].text == "/usr/share/edk2/ovmf/x.fd (descriptor 60-edk2-ovmf-x86_64.json)"
    assert found["libvirt"].text == "10.6.0: virtqemud (modular)"
    assert found["memory"].text == "15.5 GiB, 11.7 GiB available"
    assert found["security"].text.startswith("SELinux enforcing, AppArmor off")
    assert found["packages"].install == ["edk2-ovmf", "ShellCheck"]
    assert lines[-1] == (
        "to install: dnf install -y --setopt=install_weak_deps=False ShellCheck edk2-ovmf"
    )
    assert len(lines) <= 15  # one screen


def test_the_built_in_guest_needs_mmdebstrap_apt_and_debians_keys(tmp_path: Path) -> None:
    host = fedora_kvm_host(tmp_path)
    found, _ = by_topic(host)
    assert found["guest"].status == doctor.OK
    for part in ("bin/mmdebstrap", "bin/apt-get", "root/usr/share/keyrings"):
        target = tmp_path / part
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    found, _ = by_topic(host)
    # Fedora: the default guest is the release's cloud image (harness.setup.default_guest)
    assert found["guest"].status == doctor.NOTE
    assert found["guest"].text == (
        "no mmdebstrap, apt, keyring: the built-in Debian guest cannot be built; the default "
        "is --cloud-image fedora:41; mmdebstrap apt debian-keyring would build the built-in one"
    )
    assert found["guest"].install == ["mmdebstrap", "apt", "debian-keyring"]
    put(host.root, "/etc/os-release", "ID=centos\nVERSION_ID=9\n")  # no fallback there
    found, _ = by_topic(host)
    assert found["guest"].status == doctor.MISSING
    assert found["guest"].text.endswith("or --cloud-image fedora:<release>")


def test_the_uefi_descriptor_is_the_one_without_secure_boot(tmp_path: Path) -> None:
    host = fedora_kvm_host(tmp_path)
    host = doctor.Host(root=host.root, path=host.path, run=fake_rpm(set()))
    found, _ = by_topic(host)
    assert found["edk2"].text == (
        "/usr/share/edk2/ovmf/x.fd 20241117-3.fc41 (descriptor 60-edk2-ovmf-x86_64.json)"
    )


def test_dev_kvm_without_access_is_tcg_and_says_why(tmp_path: Path) -> None:
    kvm_host = fedora_kvm_host(tmp_path, kvm_mode=0o600)

    def access(path: Path, mode: int) -> bool:  # a user outside group kvm (root may do all)
        return path != kvm_host.file("/dev/kvm") and os.access(path, mode)

    host = doctor.Host(root=kvm_host.root, path=kvm_host.path, run=kvm_host.run, access=access)
    found, _ = by_topic(host)
    assert found["accel"].status == doctor.MISSING
    assert "not read-write" in found["accel"].text


def test_kvm_pvm_is_tcg_and_explained(tmp_path: Path) -> None:
    host = fedora_kvm_host(tmp_path)
    (host.file("/sys/module/kvm_intel/parameters/nested")).unlink()
    (host.file("/sys/module/kvm_intel/parameters")).rmdir()
    (host.file("/sys/module/kvm_intel")).rmdir()
    put(host.root, "/sys/module/kvm_pvm/parameters/verbose", "N")
    found, _ = by_topic(host)
    assert found["accel"].status == doctor.NOTE
    assert "kvm_pvm" in found["accel"].text and found["accel"].text.startswith("TCG")


def test_nothing_installed_names_each_missing_piece_with_its_package(tmp_path: Path) -> None:
    root = tmp_path / "root"
    put(root, "/etc/os-release", FEDORA)
    everything = set(host_distro.packages("fedora"))
    host = doctor.Host(root=root, path=str(tmp_path / "empty"), run=fake_rpm(everything))
    found, lines = by_topic(host)
    assert found["qemu"].install == ["qemu-system-x86-core"]
    assert found["edk2"].install == ["edk2-ovmf"]
    assert found["libvirt"].install == ["libvirt-daemon-kvm"]
    assert found["accel"].text.startswith("TCG: neither kvm_intel nor kvm_amd")
    assert "qemu-system-x86-core" in lines[-1] and lines[-1].startswith("to install: dnf")


def test_a_broken_descriptor_is_named(tmp_path: Path) -> None:
    host = fedora_kvm_host(tmp_path)
    put(host.root, "/usr/share/qemu/firmware/70-broken.json", "{not json")
    found, _ = by_topic(host)
    assert found["firmware"].status == doctor.MISSING
    assert "70-broken.json: not a QEMU firmware descriptor" in found["firmware"].text


def test_an_unknown_distribution_says_so(tmp_path: Path) -> None:
    root = tmp_path / "root"
    put(root, "/etc/os-release", 'ID=arch\nPRETTY_NAME="Arch Linux"\n')
    found, lines = by_topic(doctor.Host(root=root, path=str(tmp_path)))
    assert found["host"].status == doctor.MISSING
    assert "no package map" in found["host"].text
    assert not lines[-1].startswith("to install")


def test_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    status = doctor.main([])
    out = capsys.readouterr().out
    assert status in (0, 1)
    assert out.splitlines()[1].startswith("accel")
    if Path("/sys/module/kvm_pvm").is_dir():
        assert "TCG" in out and "kvm_pvm" in out
