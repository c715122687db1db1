"""What decides the virtual machine a guest runs in, whichever backend starts it: the QEMU
binary, accelerator, machine type, firmware, memory, vCPUs, kernel and extra arguments.
The direct backend turns it into a command line, the libvirt backend into domain XML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.machines.devices import DeviceProfile

ROOT_DRIVE = "root"  # the root disk's drive id (the monitor's name for it)
DATA_NODE = "data"
DATA_FILE_NODE = "data-file"
SECURE_UEFI = "ovmf-secure"  # the firmware kind of OVMF with secure boot (and so SMM)


@dataclass(frozen=True)
class Firmware:
    """SeaBIOS (``-bios`` or QEMU's default) or OVMF (two pflash units, ``vars`` a copy);
    ``ovmf-secure`` is OVMF with secure boot, which needs SMM and the secure pflash."""

    kind: str = "seabios"
    bios: Path | None = None
    ovmf_code: Path | None = None
    ovmf_vars: Path | None = None


@dataclass(frozen=True)
class QemuConfig:
    """Everything that decides a guest's QEMU command line."""

    binary: str
    kernel: Path | None  # None: the firmware boots the root disk (a cloud image)
    initrd: Path | None
    append: str
    accel: str = "tcg"
    machine: str = "pc"
    memory_mib: int = 1024
    cpus: int = 2
    firmware: Firmware = field(default_factory=Firmware)
    data_dir: Path | None = None
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # added to QEMU's environment (e.g. its module dir)
    qemu_img: tuple[str, ...] = ("qemu-img",)  # the argv that runs the same build's qemu-img
    seed: Path | None = None  # a cloud-init NoCloud seed, attached read-only after the disks
    devices: DeviceProfile = field(default_factory=DeviceProfile)  # NIC, data disk's bus
    # An ESP disk the firmware boots instead of the kernel (secure boot: shim, GRUB, kernel).
    esp: Path | None = None
    # The root disk without a volatile cache (each write's qcow2 metadata handed to the host
    # at once): a profile whose swap is on it, whose image a power loss must not take away.
    root_writethrough: bool = False
