"""``./run doctor``: what this host can do and what is missing, on one screen: the accelerator
(KVM, or TCG and why), QEMU, firmware (through QEMU's firmware descriptors) and libvirt with
their versions, memory and disk, SELinux/AppArmor, and each missing package with the command
that installs it on this distribution.

It uses the standard library, ``harness.setup`` and the leaf modules only, so the system's
python3 runs it before anything is installed. Every path is read below ``Host.root`` and
programs are found on ``Host.path``, so a test can stand a KVM host in."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import SetupError
from harness.paths import REPO_ROOT
from harness.setup import default_guest, firmware_descriptors, host_distro, selinux
from harness.setup.accel import HARDWARE_KVM_MODULES, detect_accel

OK, NOTE, MISSING = "ok", "--", "!!"
GIB = 1024**3
MIN_AVAILABLE_MEMORY_GIB = 3.0  # a guest takes 1-2 GiB, a libvirt case two guests' worth
MIN_FREE_DISK_GIB = 10.0  # the built-in image, component caches and a run's evidence
QEMU_PROGRAMS = ("qemu-system-x86_64", "/usr/libexec/qemu-kvm")
SEABIOS_FILES = ("usr/share/seabios/bios-256k.bin", "usr/share/seabios/bios.bin")
# What provides each part of the guest build, by family.
GUEST_BUILD_PACKAGES = {
    "debian": {"mmdebstrap": "mmdebstrap", "apt": "apt", "keyring": "debian-archive-keyring"},
    "fedora": {"mmdebstrap": "mmdebstrap", "apt": "apt", "keyring": "debian-keyring"},
    "rhel": {"mmdebstrap": "mmdebstrap", "apt": "apt", "keyring": "debian-keyring"},
}


@dataclass(frozen=True)
class Host:
    """Where the facts are read: the file system below ``root``, programs on ``path``."""

    root: Path = Path("/")
    path: str | None = None  # None: this process's PATH
    run: host_distro.Runner = host_distro.run_quietly  # package queries
    disk: Path = REPO_ROOT / "images"
    access: Callable[[Path, int], bool] = os.access

    def file(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def program(self, name: str) -> str | None:
        if name.startswith("/"):
            candidate = self.file(name)
            return str(candidate) if os.access(candidate, os.X_OK) else None
        return shutil.which(name, path=self.path)


@dataclass(frozen=True)
class Finding:
    topic: str
    status: str  # OK, NOTE or MISSING
    text: str
    install: list[str] = field(default_factory=list)  # packages that would mend it


def read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def distribution(host: Host) -> tuple[host_distro.Distribution, Finding]:
    distro = host_distro.read_os_release(host.file("/etc/os-release"))
    if not distro.family:
        text = f"{distro.pretty_name}: no package map (apt: Debian, Ubuntu; dnf: Fedora, RHEL)"
        return distro, Finding("host", MISSING, text)
    tool = host_distro.TOOLS[distro.family].install[0]
    return distro, Finding("host", OK, f"{distro.pretty_name} ({distro.family} family, {tool})")


def accelerator(host: Host) -> Finding:
    modules = host.file("/sys/module")
    dev_kvm = host.file("/dev/kvm")
    hardware = [m for m in HARDWARE_KVM_MODULES if (modules / m).is_dir()]
    accel = detect_accel(modules, dev_kvm)
    if accel == "kvm" and not host.access(dev_kvm, os.R_OK | os.W_OK):
        return Finding(
            "accel",
            MISSING,
            f"TCG: {hardware[0]} is loaded but /dev/kvm is not read-write for uid "
            f"{os.getuid()} (add the user to group kvm, or run as root)",
        )
    if accel == "kvm":
        nested = read(modules / hardware[0] / "parameters" / "nested") or "?"
        return Finding("accel", OK, f"KVM: {hardware[0]} loaded, /dev/kvm usable, nested={nested}")
    if (modules / "kvm_pvm").is_dir():
        return Finding(
            "accel",
            NOTE,
            "TCG: /dev/kvm here comes from kvm_pvm, a software nested hypervisor (PVM: no "
            "VT-x/AMD-V underneath), under which stock guest kernels barely boot; the harness "
            "uses KVM only with kvm_intel/kvm_amd (harness/setup/accel.py)",
        )
    if hardware:
        return Finding("accel", MISSING, f"TCG: {hardware[0]} is loaded but there is no /dev/kvm")
    return Finding(
        "accel",
        NOTE,
        "TCG: neither kvm_intel nor kvm_amd is loaded (no vmx/svm offered to this host, or "
        "the module is not loaded: modprobe kvm_intel or kvm_amd)",
    )


def first_version(host: Host, argv: Sequence[str]) -> str:
    result = host_distro.run_quietly(argv)
    found = re.search(r"(\d+\.\d+(?:\.\d+)?)", result.stdout) if result.returncode == 0 else None
    return found.group(1) if found else "?"


def qemu(host: Host, family: str) -> Finding:
    program = next((p for p in map(host.program, QEMU_PROGRAMS) if p), None)
    if program is None:
        return Finding("qemu", MISSING, "no qemu-system-x86_64", packages(family, "qemu"))
    return Finding("qemu", OK, f"{program} {first_version(host, [program, '--version'])}")


def packages(family: str, component: str) -> list[str]:
    return [host_distro.COMPONENT_PACKAGES[family][component]] if family else []


def firmware(host: Host, family: str) -> list[Finding]:
    """SeaBIOS and plain UEFI as the harness picks them (harness.setup.firmware_descriptors),
    on the pc and q35 machines of any QEMU version."""
    dirs = [host.file(str(d)) for d in firmware_descriptors.SYSTEM_DIRS]
    try:
        descriptors = firmware_descriptors.load(dirs, root=host.root)
    except SetupError as exc:
        return [Finding("firmware", MISSING, str(exc))]
    bios = firmware_descriptors.matching(descriptors, firmware_descriptors.BIOS, "pc-i440fx-99")
    uefi = firmware_descriptors.matching(descriptors, firmware_descriptors.PLAIN_UEFI, "pc-q35-99")
    on_disk = [f"/{f}" for f in SEABIOS_FILES if host.file(f).is_file()]
    seabios_file = shown(host, bios[0].executable) if bios else next(iter(on_disk), "")
    if seabios_file:
        text = f"{seabios_file} {version_of(host, family, 'seabios')}".strip()
        seabios = Finding("seabios", OK, text)
    else:
        seabios = Finding("seabios", MISSING, "no SeaBIOS", packages(family, "seabios"))
    if uefi:
        text = f"{shown(host, uefi[0].executable)} {version_of(host, family, 'edk2')}".strip()
        edk2 = Finding("edk2", OK, f"{text} (descriptor {uefi[0].name})")
    else:
        edk2 = Finding("edk2", MISSING, "no UEFI firmware descriptor", packages(family, "edk2"))
    return [seabios, edk2]


def shown(host: Host, path: Path) -> str:
    """A file below the host's root as the host names it."""
    return "/" + str(path.relative_to(host.root)).lstrip("/")


def version_of(host: Host, family: str, component: str) -> str:
    if not family:
        return ""
    return host_distro.installed_version(
        family, host_distro.COMPONENT_PACKAGES[family][component], host.run
    )


def libvirt(host: Host, family: str) -> Finding:
    kinds = {"virtqemud": "modular", "libvirtd": "monolithic"}
    daemons = [f"{d} ({kind})" for d, kind in kinds.items() if host.program(f"/usr/sbin/{d}")]
    virsh = host.program("virsh")
    if not daemons or virsh is None:
        return Finding(
            "libvirt", MISSING, "no libvirt daemon or virsh", packages(family, "libvirt")
        )
    version = first_version(host, [virsh, "--version"])
    return Finding("libvirt", OK, f"{version}: {', '.join(daemons)}")


def memory(host: Host) -> Finding:
    fields = {}
    for line in read(host.file("/proc/meminfo")).splitlines():
        key, _, value = line.partition(":")
        if value.split():
            fields[key] = int(value.split()[0]) * 1024
    total, available = fields.get("MemTotal", 0) / GIB, fields.get("MemAvailable", 0) / GIB
    status = OK if available >= MIN_AVAILABLE_MEMORY_GIB else NOTE
    return Finding("memory", status, f"{total:.1f} GiB, {available:.1f} GiB available")


def disk(host: Host) -> Finding:
    place = host.disk if host.disk.exists() else host.disk.parent
    free = shutil.disk_usage(place).free / GIB
    status = OK if free >= MIN_FREE_DISK_GIB else NOTE
    return Finding("disk", status, f"{free:.0f} GiB free at {place}")


def security(host: Host) -> Finding:
    """The SELinux and AppArmor modes, and what the harness does about SELinux."""
    mode = selinux.SelinuxHost(host.root).mode()
    apparmor = "on" if read(host.file("/sys/module/apparmor/parameters/enabled")) == "Y" else "off"
    text = f"SELinux {mode}, AppArmor {apparmor}: {selinux.plan(mode)}"
    if mode == selinux.OFF:
        return Finding("security", OK, text)
    return Finding("security", NOTE, f"{text} (not run on an SELinux host yet: docs/hosts.md)")


def guest_build(host: Host, distro: host_distro.Distribution) -> Finding:
    """Whether the built-in Debian guest builds here, and which guest is the default
    (harness.setup.default_guest): a Fedora host that cannot build it runs its own release's
    Fedora Cloud Base image."""
    missing = default_guest.BuildHost(host.root, host.path).missing()
    chosen = default_guest.choose(distro, missing)
    if not missing:
        return Finding("guest", OK, chosen.reason)
    names = GUEST_BUILD_PACKAGES.get(distro.family, {})
    wanted = [names[part] for part in missing if part in names]
    if chosen.cloud_image is None:
        return Finding("guest", MISSING, chosen.reason, wanted)
    text = f"{chosen.reason}; {' '.join(wanted)} would build the built-in one"
    return Finding("guest", NOTE, text, wanted)


def missing_packages(host: Host, family: str) -> Finding:
    if not family:
        return Finding("packages", MISSING, "install by hand: see host-packages.txt")
    absent = host_distro.missing(family, host.run)
    if not absent:
        count = len(host_distro.packages(family))
        return Finding("packages", OK, f"all {count} of host-packages.txt installed")
    return Finding("packages", MISSING, f"{len(absent)} missing", absent)


def examine(host: Host) -> tuple[host_distro.Distribution, list[Finding]]:
    distro, found = distribution(host)
    family = distro.family
    findings = [found, accelerator(host), qemu(host, family), *firmware(host, family)]
    findings += [libvirt(host, family), guest_build(host, distro), memory(host), disk(host)]
    findings.append(security(host))
    findings.append(missing_packages(host, family))
    return distro, findings


def render(distro: host_distro.Distribution, findings: list[Finding]) -> list[str]:
    lines = [f"{f.topic:9} {f.status} {f.text}" for f in findings]
    wanted = sorted({p for f in findings if f.status == MISSING for p in f.install})
    if wanted and distro.family:
        lines.append(f"to install: {host_distro.install_command(distro.family, wanted)}")
    return lines


def command(args: argparse.Namespace) -> int:
    """``python -m harness doctor``."""
    return main(["--root", args.root])


def main(argv: list[str] | None = None, write: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="./run doctor", description=__doc__)
    parser.add_argument("--root", default="/", help="read /sys, /dev, /proc, /etc below this")
    args = parser.parse_args(argv)
    distro, findings = examine(Host(root=Path(args.root)))
    for line in render(distro, findings):
        write(line)
    return 1 if any(f.status == MISSING for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
