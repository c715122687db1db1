"""The guest's device profile: which NIC and which controller its scratch (data) disk sits on.

The root and swap disks stay on virtio-blk whatever the profile (``/dev/vda`` and
``/dev/vdb``, as the image's command line and fstab name them); the profile changes the
disk the block checks write through across a sleep and the NIC the network checks use. The
default profile (virtio-net, virtio-blk) adds nothing to a cell id; any other is named
there by a suffix such as ``nic-e1000e-disk-nvme``.

The built-in image leaves out the kernel's ethernet and SCSI driver trees; a device whose
driver lives there needs the ``devices`` guest profile, which keeps those modules
(harness.setup.guest_profiles). NVMe's driver is outside those trees: the default image has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import SetupError

NICS = ("virtio-net", "e1000e")
DISKS = ("virtio-blk", "virtio-scsi", "nvme", "ahci")
DISPLAYS = ("std", "virtio-gpu", "qxl")  # the display adapter, where one is asked for
SHARES = ("virtiofs", "9p")  # a host folder shared into the guest (harness.machines.shares)
DEFAULT_NIC = NICS[0]
DEFAULT_DISK = DISKS[0]
DRIVERS_PROFILE = "devices"  # the guest profile whose image keeps these devices' drivers
# Devices whose guest drivers the default image leaves out (drivers/net/ethernet, and
# drivers/scsi, which libata needs too).
NEED_DRIVERS_PROFILE = frozenset({"e1000e", "virtio-scsi", "ahci"})
DATA_DISK_ID = "data-disk"  # the data disk's device id, whatever its bus
# The ids of the USB, display and balloon devices, by which the host acts on them (QMP).
USB_CONTROLLER_ID = "usb0"
USB_TABLET_ID = "usb-tablet0"
USB_KEYBOARD_ID = "usb-kbd0"
DISPLAY_ID = "display0"
BALLOON_ID = "balloon0"
# Each display's QEMU device (VGA-compatible, so that the firmware and the boot show on it
# too) and the guest driver that drives it.
DISPLAY_DEVICES = {"std": "VGA", "virtio-gpu": "virtio-vga", "qxl": "qxl-vga"}
DISPLAY_DRIVERS = {"std": "bochs-drm", "virtio-gpu": "virtio_gpu", "qxl": "qxl"}


@dataclass(frozen=True)
class DeviceProfile:
    """The NIC model and the data disk's controller."""

    nic: str = DEFAULT_NIC
    disk: str = DEFAULT_DISK
    tpm: bool = False  # a TPM 2.0 (tpm-crb) backed by swtpm (harness.machines.swtpm)
    share: str = ""  # "", or one of SHARES
    usb: bool = False  # a qemu-xhci controller with a usb-tablet and a usb-kbd
    display: str = ""  # "" (the machine's std VGA, unchecked), or one of DISPLAYS
    balloon: bool = False  # a virtio-balloon-pci

    def __post_init__(self) -> None:
        if self.nic not in NICS:
            raise ValueError(f"unknown NIC {self.nic!r}: use one of {', '.join(NICS)}")
        if self.disk not in DISKS:
            raise ValueError(f"unknown disk {self.disk!r}: use one of {', '.join(DISKS)}")
        if self.display and self.display not in DISPLAYS:
            raise ValueError(f"unknown display {self.display!r}: use one of {', '.join(DISPLAYS)}")
        if self.share and self.share not in SHARES:
            raise ValueError(f"unknown share {self.share!r}: use one of {', '.join(SHARES)}")

    @property
    def is_default(self) -> bool:
        return not self.id_suffix

    @property
    def id_suffix(self) -> str:
        """``nic-e1000e-disk-nvme``: the non-default parts, for a cell id ("" by default)."""
        parts = []
        if self.nic != DEFAULT_NIC:
            parts.append(f"nic-{self.nic}")
        if self.disk != DEFAULT_DISK:
            parts.append(f"disk-{self.disk}")
        parts += ["tpm"] if self.tpm else []
        parts += [f"share-{self.share}"] if self.share else []
        parts += ["usb"] if self.usb else []
        parts += [f"display-{self.display}"] if self.display else []
        parts += ["balloon"] if self.balloon else []
        return "-".join(parts)

    @property
    def migratable(self) -> bool:
        """Whether QEMU can save these devices' state, which a checkpoint is: its NVMe
        controller refuses (a "non-migratable device"), so an NVMe guest cold boots; so does
        vhost-user-fs (virtiofs), whose state lives in virtiofsd."""
        return self.disk != "nvme" and self.share != "virtiofs"

    @property
    def needs_drivers_profile(self) -> bool:
        """Whether the guest must be the ``devices`` profile's image to drive these."""
        # The USB core, xHCI and HID, and the DRM drivers, are outside the default image.
        return bool({self.nic, self.disk} & NEED_DRIVERS_PROFILE) or self.usb or bool(self.display)


def vga_option(devices: DeviceProfile) -> str:
    """``-vga``'s value: the machine's std VGA unless a display was chosen, which is then a
    ``-device`` of its own (peripheral_devices), with an id the host acts on."""
    return "none" if devices.display else "std"


def peripheral_devices(devices: DeviceProfile) -> list[str]:
    """The ``-device`` values of the profile's USB devices, display and balloon."""
    values = []
    if devices.usb:
        values += [
            f"qemu-xhci,id={USB_CONTROLLER_ID}",
            f"usb-tablet,bus={USB_CONTROLLER_ID}.0,id={USB_TABLET_ID}",
            f"usb-kbd,bus={USB_CONTROLLER_ID}.0,id={USB_KEYBOARD_ID}",
        ]
    if devices.display:
        values.append(f"{DISPLAY_DEVICES[devices.display]},id={DISPLAY_ID}")
    if devices.balloon:
        values.append(f"virtio-balloon-pci,id={BALLOON_ID}")
    return values


def nic_device(nic: str, netdev: str, device_id: str) -> str:
    """The ``-device`` value of the guest's NIC. No option ROM (iPXE): the guest boots its
    kernel directly or from disk, never over the network, and under TCG the ROM's setup adds
    about a second to every firmware boot."""
    model = {"virtio-net": "virtio-net-pci", "e1000e": "e1000e"}[nic]
    return f"{model},netdev={netdev},id={device_id},romfile="


def data_disk_devices(disk: str, node: str) -> list[str]:
    """The ``-device`` values that put block node ``node`` on a ``disk`` controller (the
    controller first where the disk needs one of its own), the disk with id DATA_DISK_ID.
    AHCI gets a controller of its own on every machine type (q35's built-in one has no free
    port naming that holds on pc), NVMe a serial (QEMU requires one)."""
    if disk == "virtio-blk":
        return [f"virtio-blk-pci,drive={node},id={DATA_DISK_ID}"]
    if disk == "nvme":
        return [f"nvme,drive={node},id={DATA_DISK_ID},serial={DATA_DISK_ID}"]
    if disk == "ahci":
        return ["ahci,id=sata0", f"ide-hd,drive={node},bus=sata0.0,id={DATA_DISK_ID}"]
    if disk == "virtio-scsi":
        return ["virtio-scsi-pci,id=scsi0", f"scsi-hd,drive={node},bus=scsi0.0,id={DATA_DISK_ID}"]
    raise ValueError(f"unknown disk {disk!r}: use one of {', '.join(DISKS)}")


def image_profile(devices: DeviceProfile, guest_profile: str | None) -> str | None:
    """The guest profile the built-in image is built with: the one asked for, or the
    ``devices`` profile where a device's driver is not in the default image; a one-line
    error when another profile was asked for (a profile's image keeps only its own changes)."""
    if not devices.needs_drivers_profile or guest_profile == DRIVERS_PROFILE:
        return guest_profile
    if guest_profile in (None, "", "partition"):
        return DRIVERS_PROFILE
    raise SetupError(
        f"{devices.id_suffix} needs the guest profile {DRIVERS_PROFILE!r} (the default image "
        f"has no driver for it), not {guest_profile!r}: drop --guest-profile"
    )
