"""Build the qemu-system command line for one guest. Pure: no I/O, easy to unit test.

QEMU runs as root on images from elsewhere, so it is confined as far as the harness lets it
be: a seccomp sandbox (no obsolete system calls, no privilege changes, no new programs, no
scheduler or memory-policy changes; the checkpoints pass QEMU open files instead of
``exec:``), and user networking that carries only the host's forward to the guest's sshd and
the guest's DHCP (``restrict=on``: the guest reaches no other address). Paths go into QEMU's
option strings with their commas doubled, as QEMU's option syntax escapes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError
from harness.machines.config import (
    DATA_FILE_NODE,
    DATA_NODE,
    ROOT_DRIVE,
    SECURE_UEFI,
    Firmware,
    QemuConfig,
)
from harness.machines.device_helpers import HelperPaths, helper_args
from harness.machines.devices import (
    data_disk_devices,
    nic_device,
    peripheral_devices,
    vga_option,
)

SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
# A disk with no volatile cache as the guest sees it (virtio-blk without writeback): QEMU
# flushes after every write, which writes a qcow2's new cluster mappings to the host file, so
# a write the guest saw completed survives QEMU's end; the host's own fsync is still skipped.
WRITETHROUGH = "cache.writeback=off,cache.direct=off,cache.no-flush=on"


@dataclass(frozen=True)
class RunPaths:
    """Where one guest's sockets, disks and logs live."""

    qmp_socket: Path
    agent_socket: Path
    console_socket: Path
    root_overlay: Path
    swap_disk: Path
    data_disk: Path


def build_argv(config: QemuConfig, paths: RunPaths, ssh_port: int) -> list[str]:
    """The argv for one launch; a relaunch (S4 resume) must use the identical list."""
    argv = [
        config.binary,
        "-accel",
        config.accel,
        "-machine",
        config.machine + (",smm=on" if config.firmware.kind == SECURE_UEFI else ""),
        "-m",
        str(config.memory_mib),
        "-smp",
        str(config.cpus),
        "-nodefaults",
        "-no-user-config",
        "-sandbox",
        SANDBOX,
        "-display",
        "none",
        "-vga",
        vga_option(config.devices),
        # The harness listens on the console socket and logs what the guest prints.
        "-chardev",
        f"socket,id=serial0,path={option_value(paths.console_socket)}",
        "-serial",
        "chardev:serial0",
        "-chardev",
        f"socket,id=qmp0,path={option_value(paths.qmp_socket)}",
        "-mon",
        "chardev=qmp0,mode=control",
    ]
    if config.data_dir is not None:
        argv += ["-L", str(config.data_dir)]
    argv += _firmware_args(config.firmware)
    root_cache = WRITETHROUGH if config.root_writethrough else ""
    argv += _disk_args(ROOT_DRIVE, paths.root_overlay, "qcow2", cache=root_cache)
    argv += _disk_args("swap", paths.swap_disk, "raw")
    # The scratch disk is set up with -blockdev so that a fault can later be slid under it
    # (blockdev-reopen onto a blkdebug node) without the guest noticing anything but errors.
    argv += [
        "-blockdev",
        f"driver=file,node-name={DATA_FILE_NODE},filename={option_value(paths.data_disk)},"
        "cache.direct=off,cache.no-flush=on",
        "-blockdev",
        f"driver=raw,node-name={DATA_NODE},file={DATA_FILE_NODE}",
    ]
    for device in data_disk_devices(config.devices.disk, DATA_NODE):
        argv += ["-device", device]
    argv += [
        "-netdev",
        f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        "-device",
        nic_device(config.devices.nic, "net0", "nic0"),
        "-device",
        "virtio-serial-pci,id=vser0",
        "-chardev",
        f"socket,id=qga0,path={option_value(paths.agent_socket)}",
        "-device",
        "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        "-device",
        "virtio-rng-pci",
    ]
    for device in peripheral_devices(config.devices):
        argv += ["-device", device]
    # The TPM and the share, their helpers' sockets beside QEMU's own.
    helpers = HelperPaths.under(paths.qmp_socket.parent)
    argv += helper_args(config.devices, helpers, config.memory_mib)
    if config.seed is not None:
        argv += _disk_args("seed", config.seed, "raw", readonly=True)
    if config.esp is not None:
        # On q35's own AHCI bus, so that the guest's virtio disks keep their names; the
        # firmware and its loaders only read it.
        argv += [
            "-drive",
            f"file={option_value(config.esp)},if=none,id=esp,format=raw,snapshot=on",
            "-device",
            "ide-hd,drive=esp,bus=ide.0,bootindex=0",
        ]
    if config.kernel is None and config.seed is None and config.firmware.kind == "seabios":
        raise SetupError(
            "this guest boots systemd-boot from its disk's ESP, which needs UEFI: "
            "add --firmware ovmf (and --machine-type q35)"
        )
    if config.kernel is not None:
        argv += ["-kernel", str(config.kernel)]
        argv += ["-initrd", str(config.initrd)] if config.initrd else []
        argv += ["-append", config.append]
    argv += list(config.extra_args)
    return argv


def option_value(path: Path) -> str:
    """``path`` as a value in a QEMU option string: a comma there would start a new option."""
    return str(path).replace(",", ",,")


def _disk_args(
    name: str, path: Path, fmt: str, readonly: bool = False, cache: str = ""
) -> list[str]:
    options = "readonly=on" if readonly else (cache or "cache=unsafe")
    return [
        "-drive",
        f"file={option_value(path)},if=none,id={name},format={fmt},{options}",
        "-device",
        f"virtio-blk-pci,drive={name},id={name}-disk",
    ]


def _firmware_args(firmware: Firmware) -> list[str]:
    if firmware.kind == "seabios":
        return ["-bios", str(firmware.bios)] if firmware.bios else []
    if firmware.kind in ("ovmf", SECURE_UEFI):
        if firmware.ovmf_code is None or firmware.ovmf_vars is None:
            raise ValueError("OVMF needs both a code and a vars file")
        # Secure boot's variables are writable only from SMM: the vars pflash says so.
        secure = ["-global", "driver=cfi.pflash01,property=secure,value=on"]
        return (secure if firmware.kind == SECURE_UEFI else []) + [
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={option_value(firmware.ovmf_code)}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={option_value(firmware.ovmf_vars)}",
        ]
    raise ValueError(
        f"unknown firmware kind {firmware.kind!r} (use seabios, ovmf or {SECURE_UEFI})"
    )
