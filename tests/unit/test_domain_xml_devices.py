"""The libvirt domain's share of a device profile: the NIC model and the data disk's bus (as
virt-install writes them), root and swap staying virtio-blk; NVMe and the profile's other
parts refused in one line naming the fix; and the guest's data disk beside the ESP."""

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.checks.guest_scripts import code
from harness.errors import SetupError
from harness.machines.config import Firmware, QemuConfig
from harness.machines.devices import DeviceProfile
from harness.machines.libvirt.domain_xml import DomainFiles, build_domain_xml

FILES = DomainFiles(Path("/r/root"), Path("/r/swap"), Path("/r/data"), Path("/r/c"))


def domain(devices: DeviceProfile, files: DomainFiles = FILES) -> ET.Element:
    config = QemuConfig(
        binary="q", kernel=Path("/i/vmlinuz"), initrd=None, append="", devices=devices
    )
    return ET.fromstring(build_domain_xml("g", config, files))


def targets(root: ET.Element) -> list[tuple[str | None, str | None, str | None]]:
    """(source file, target dev, target bus) of each disk."""
    return [
        (d.find("source").get("file"), d.find("target").get("dev"), d.find("target").get("bus"))  # type: ignore[union-attr]
        for d in root.findall("./devices/disk")
    ]


@pytest.mark.parametrize(("nic", "model"), [("virtio-net", "virtio"), ("e1000e", "e1000e")])
def test_the_nic_is_the_profiles_model_on_user_networking_without_a_rom(
    nic: str, model: str
) -> None:
    (interface,) = domain(DeviceProfile(nic)).findall("./devices/interface")
    assert interface.get("type") == "user"
    assert interface.find("model").get("type") == model  # type: ignore[union-attr]
    assert interface.find("rom").get("enabled") == "no"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("disk", "target", "controllers"),
    [
        ("virtio-blk", ("vdc", "virtio"), []),
        ("virtio-scsi", ("sda", "scsi"), [("scsi", "virtio-scsi")]),
        ("ahci", ("sda", "sata"), []),  # libvirt adds the AHCI controller (q35: its own)
    ],
)
def test_the_data_disk_goes_on_its_bus_root_and_swap_stay_virtio(
    disk: str, target: tuple[str, str], controllers: list[tuple[str, str]]
) -> None:
    root = domain(DeviceProfile(disk=disk))
    assert targets(root) == [
        ("/r/root", "vda", "virtio"),
        ("/r/swap", "vdb", "virtio"),
        ("/r/data", *target),
    ]
    added = [
        (c.get("type"), c.get("model"))
        for c in root.findall("./devices/controller")
        if c.get("type") != "usb"
    ]
    assert added == controllers


@pytest.mark.parametrize("disk", ["virtio-scsi", "ahci"])
def test_beside_the_secure_boot_esp_the_data_disk_takes_the_next_target_name(disk: str) -> None:
    secure = Firmware("ovmf-secure", ovmf_code=Path("/fw/CODE"), ovmf_vars=Path("/r/V"))
    guest = QemuConfig(
        binary="q",
        kernel=None,
        initrd=None,
        append="",
        firmware=secure,
        machine="q35",
        devices=DeviceProfile("e1000e", disk),
    )
    files = DomainFiles(**{**FILES.__dict__, "nvram": Path("/r/VARS"), "esp": Path("/r/esp")})
    found = targets(ET.fromstring(build_domain_xml("g", guest, files)))
    assert ("/r/esp", "sda", "sata") in found
    assert ("/r/data", "sdb", {"ahci": "sata", "virtio-scsi": "scsi"}[disk]) in found


def test_nvme_is_refused_in_one_line_naming_why_and_the_fix() -> None:
    with pytest.raises(SetupError) as raised:
        domain(DeviceProfile(disk="nvme"))
    message = str(raised.value)
    assert "\n" not in message
    assert "no emulated NVMe disk bus" in message and message.endswith("use --backend qemu")


@pytest.mark.parametrize(
    ("devices", "named"),
    [
        (DeviceProfile(usb=True), "usb"),
        (DeviceProfile("e1000e", "ahci", display="qxl"), "display-qxl"),
        (DeviceProfile(balloon=True, tpm=True), "tpm-balloon"),
        (DeviceProfile(share="9p"), "share-9p"),
    ],
)
def test_the_parts_libvirt_does_not_attach_are_refused_in_one_line(
    devices: DeviceProfile, named: str
) -> None:
    with pytest.raises(SetupError, match=f"does not yet attach {named}: use --backend qemu"):
        domain(devices)


def test_the_guest_takes_the_unpartitioned_disk_after_the_esp_for_its_data_disk(
    tmp_path: Path,
) -> None:
    """Beside the secure-boot ESP the guest names the ESP sda (its partition sda1) and the
    data disk sdb on the same AHCI controller: the block checks must take sdb."""
    sys_root = tmp_path / "sys"
    for disk in ("vda", "vdb", "sda", "sdb"):
        (sys_root / "block" / disk).mkdir(parents=True)
    (sys_root / "block" / "sda" / "sda1").mkdir()
    script = code("data_disk.sh").replace("/sys/", f"{sys_root}/") + 'echo "$data_disk"\n'
    found = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "sdb"
