"""The libvirt domain for one guest, from the same description as the direct QEMU backend
(QemuConfig): direct kernel boot (or, for a cloud image, the firmware booting its disk, with
the cloud-init seed), root overlay, swap and scratch disks, the agent channel, S3 and S4
enabled in ``<pm>``, user networking, and the harness process that owns it in ``<metadata>``.
Of the device profile (harness.machines.devices) it attaches the NIC model and the data
disk's bus, as virt-install writes them; the other parts are a one-line refusal.
Pure: no I/O, easy to unit test."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError
from harness.machines.config import SECURE_UEFI, QemuConfig
from harness.machines.devices import DeviceProfile
from harness.machines.libvirt.owner import OWNER_NS, OWNER_PREFIX, Owner
from harness.setup.selinux import SVIRT_SECLABEL

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
AGENT_CHANNEL = "org.qemu.guest_agent.0"
NETDEV_ID = "hostnet0"  # libvirt's id for the first interface's backend (for hostfwd_add)
NIC_MODELS = {"virtio-net": "virtio", "e1000e": "e1000e"}  # the profile's NIC: <model type>
# The profile's data disk: its <target bus>. libvirt adds the SATA (AHCI) controller itself,
# q35's built-in one there; virtio-scsi needs its controller named (_devices).
DATA_DISK_BUSES = {"virtio-blk": "virtio", "virtio-scsi": "scsi", "ahci": "sata"}


@dataclass(frozen=True)
class DomainFiles:
    """One guest's disks (qcow2: internal snapshots need every disk in qcow2) and sockets."""

    root: Path
    swap: Path
    data: Path
    console_socket: Path
    nvram: Path | None = None
    owner: tuple[int, int] = (0, 0)  # uid, gid QEMU runs as: the harness's own
    esp: Path | None = None  # secure boot: a qcow2 overlay of the ESP disk the firmware boots


def build_domain_xml(
    name: str,
    config: QemuConfig,
    files: DomainFiles,
    owner: Owner | None = None,
    svirt: bool = False,
) -> str:
    """The domain; with ``svirt`` (SELinux on the host: harness.setup.selinux) it asks libvirt
    to confine QEMU and relabel every file it names."""
    _refuse_unattached(config.devices)
    ET.register_namespace("qemu", QEMU_NS)
    ET.register_namespace(OWNER_PREFIX, OWNER_NS)
    domain = ET.Element("domain", type="kvm" if config.accel == "kvm" else "qemu")
    _text(domain, "name", name)
    if owner is not None:  # what lets a later sweep tell a dead harness's domain (see owner)
        ET.SubElement(domain, "metadata").append(owner.element())
    _text(domain, "memory", str(config.memory_mib), unit="MiB")
    _text(domain, "vcpu", str(config.cpus))
    domain.append(_os(config, files))
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    if config.firmware.kind == SECURE_UEFI:
        # Secure boot's variables are writable from SMM only (libvirt then sets the pflash
        # secure, as the direct backend's -global does).
        ET.SubElement(features, "smm", state="on")
    pm = ET.SubElement(domain, "pm")
    ET.SubElement(pm, "suspend-to-mem", enabled="yes")
    ET.SubElement(pm, "suspend-to-disk", enabled="yes")
    ET.SubElement(domain, "clock", offset="utc")
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "restart")):
        _text(domain, event, action)
    _text(domain, "on_crash", "destroy")
    domain.append(_devices(config, files))
    # QEMU runs as the harness's own user, whatever qemu.conf says, so that it can open the
    # harness's private 0700 run directory; nothing is chowned.
    seclabel = ET.SubElement(domain, "seclabel", type="static", model="dac", relabel="no")
    _text(seclabel, "label", f"+{files.owner[0]}:+{files.owner[1]}")
    if svirt:
        ET.SubElement(domain, "seclabel", SVIRT_SECLABEL)
    # A QEMU provisioned from the archive needs its own data (-L) and module directories,
    # which libvirt knows nothing of; the direct backend passes the same.
    args = (["-L", str(config.data_dir)] if config.data_dir else []) + list(config.extra_args)
    if args or config.env:
        commandline = ET.SubElement(domain, f"{{{QEMU_NS}}}commandline")
        for arg in args:
            ET.SubElement(commandline, f"{{{QEMU_NS}}}arg", value=arg)
        for name, value in config.env:
            ET.SubElement(commandline, f"{{{QEMU_NS}}}env", name=name, value=value)
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def _refuse_unattached(devices: DeviceProfile) -> None:
    """A one-line error for the profile's parts this backend does not attach."""
    rest = DeviceProfile(
        usb=devices.usb,
        display=devices.display,
        balloon=devices.balloon,
        tpm=devices.tpm,
        share=devices.share,
    )
    if not rest.is_default:
        raise SetupError(
            f"the libvirt backend does not yet attach {rest.id_suffix}: use --backend qemu "
            "for --usb/--display/--balloon/--tpm/--share"
        )
    if devices.disk not in DATA_DISK_BUSES:
        raise SetupError(
            f"the libvirt backend cannot attach --disk {devices.disk}: this host's libvirt has "
            "no emulated NVMe disk bus (its domain schema's disk buses have none): "
            "use --backend qemu"
        )


def _os(config: QemuConfig, files: DomainFiles) -> ET.Element:
    os_el = ET.Element("os")
    _text(os_el, "type", "hvm", arch="x86_64", machine=config.machine)
    firmware = config.firmware
    if firmware.kind == SECURE_UEFI and files.esp is None:
        raise ValueError("secure boot needs the ESP disk the firmware boots")
    if firmware.kind in ("ovmf", SECURE_UEFI):
        if firmware.ovmf_code is None or files.nvram is None:
            raise ValueError("OVMF needs a code file and an NVRAM copy")
        secure = {"secure": "yes"} if firmware.kind == SECURE_UEFI else {}
        _text(os_el, "loader", str(firmware.ovmf_code), readonly="yes", type="pflash", **secure)
        _text(os_el, "nvram", str(files.nvram))
    elif firmware.bios is not None:
        _text(os_el, "loader", str(firmware.bios), type="rom")
    if config.kernel is None:
        return os_el  # a cloud image: the firmware boots its own disk (boot order 1)
    _text(os_el, "kernel", str(config.kernel))
    if config.initrd is not None:
        _text(os_el, "initrd", str(config.initrd))
    _text(os_el, "cmdline", config.append)
    return os_el


def _devices(config: QemuConfig, files: DomainFiles) -> ET.Element:
    devices = ET.Element("devices")
    _text(devices, "emulator", shutil.which(config.binary) or config.binary)
    data_bus = DATA_DISK_BUSES[config.devices.disk]
    if data_bus == "scsi":
        ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    # Root and swap stay virtio-blk; the data disk is on the profile's bus, after the secure
    # boot ESP (sda on SATA) where there is one, since two disks cannot share a target name.
    data_target = "vdc" if data_bus == "virtio" else ("sdb" if files.esp is not None else "sda")
    for path, target, bus in (
        (files.root, "vda", "virtio"),
        (files.swap, "vdb", "virtio"),
        (files.data, data_target, data_bus),
    ):
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="qcow2", cache="unsafe")
        ET.SubElement(disk, "source", file=str(path))
        ET.SubElement(disk, "target", dev=target, bus=bus)
        if target == "vda" and config.kernel is None and files.esp is None:
            ET.SubElement(disk, "boot", order="1")
    if files.esp is not None:
        # On q35's own SATA (AHCI) bus, so that the guest's virtio disks keep their names, as
        # the direct backend has it; an overlay, since internal snapshots need qcow2 disks.
        esp = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(esp, "driver", name="qemu", type="qcow2", cache="unsafe")
        ET.SubElement(esp, "source", file=str(files.esp))
        ET.SubElement(esp, "target", dev="sda", bus="sata")
        ET.SubElement(esp, "boot", order="1")
    if config.seed is not None:
        # The cloud-init seed, read-only, after the harness's disks (as the direct backend).
        seed = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(seed, "driver", name="qemu", type="raw")
        ET.SubElement(seed, "source", file=str(config.seed))
        ET.SubElement(seed, "target", dev="vdd", bus="virtio")
        ET.SubElement(seed, "readonly")
    interface = ET.SubElement(devices, "interface", type="user")
    ET.SubElement(interface, "model", type=NIC_MODELS[config.devices.nic])
    ET.SubElement(interface, "rom", enabled="no")  # as the direct backend: no iPXE ROM
    serial = ET.SubElement(devices, "serial", type="unix")
    # QEMU connects to the harness's console socket, which listens for every (re)start.
    ET.SubElement(serial, "source", mode="connect", path=str(files.console_socket))
    ET.SubElement(serial, "target", port="0")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name=AGENT_CHANNEL)
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    rng = ET.SubElement(devices, "rng", model="virtio")
    _text(rng, "backend", "/dev/urandom", model="random")
    video = ET.SubElement(devices, "video")
    ET.SubElement(video, "model", type="vga")
    return devices


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = text
    return element
