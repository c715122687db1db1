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
SHARES = ("virtiofs", "9p")  # a host folder shared into the guest (harness.machines.shares)
DEFAULT_NIC = NICS[0]
DEFAULT_DISK = DISKS[0]
DRIVERS_PROFILE = "devices"  # the guest profile whose image keeps these devices' drivers
# Devices whose guest drivers the default image leaves out (drivers/net/ethernet, and
# drivers/scsi, which libata needs too).
NEED_DRIVERS_PROFILE = frozenset({"e1000e", "virtio-scsi", "ahci"})
DATA_DISK_ID = "data-disk"  # the data disk's device id, whatever its bus


@dataclass(frozen=True)
class DeviceProfile:
    """The NIC model and the data disk's controller."""

    nic: str = DEFAULT_NIC
    disk: str = DEFAULT_DISK
    tpm: bool = False  # a TPM 2.0 (tpm-crb) backed by swtpm (harness.machines.swtpm)
    share: str = ""  # "", or one of SHARES

    def __post_init__(self) -> None:
        if self.nic not in NICS:
            raise ValueError(f"unknown NIC {self.nic!r}: use one of {', '.join(NICS)}")
        if self.disk not in DISKS:
            raise ValueError(f"unknown disk {self.disk!r}: use one of {', '.join(DISKS)}")
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
        return bool({self.nic, self.disk} & NEED_DRIVERS_PROFILE)


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
