"""The device axis's pure parts: the command line and domain XML of a device profile, its cell
id, the image it needs, and the guest script that finds the data disk whatever its bus."""

import subprocess
from pathlib import Path

import pytest

from harness.checks.guest_scripts import code
from harness.errors import SetupError
from harness.machines.config import QemuConfig
from harness.machines.devices import DeviceProfile, image_profile
from harness.machines.libvirt.domain_xml import DomainFiles, build_domain_xml
from harness.machines.qemu.cmdline import RunPaths, build_argv
from harness.matrix.cell import Cell
from harness.setup.guest_profiles import DEVICES, SWAPFILE_EXT4, profile_named
from harness.setup.image import MODULE_ROOTS, Recipe

PATHS = RunPaths(*(Path(f"/r/{name}") for name in ("q", "a", "c", "root", "swap", "data")))


def argv(nic: str = "virtio-net", disk: str = "virtio-blk") -> list[str]:
    config = QemuConfig(
        binary="qemu-system-x86_64",
        kernel=Path("/i/vmlinuz"),
        initrd=None,
        append="root=/dev/vda",
        devices=DeviceProfile(nic, disk),
    )
    return build_argv(config, PATHS, 1)


def devices_of(args: list[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == "-device"]


def test_the_default_profile_is_virtio_net_and_three_virtio_disks() -> None:
    devices = devices_of(argv())
    assert "virtio-net-pci,netdev=net0,id=nic0,romfile=" in devices
    assert "virtio-blk-pci,drive=data,id=data-disk" in devices
    assert sum(d.startswith("virtio-blk-pci,") for d in devices) == 3  # root, swap, data


@pytest.mark.parametrize(
    ("disk", "wanted"),
    [
        ("nvme", ["nvme,drive=data,id=data-disk,serial=data-disk"]),
        ("ahci", ["ahci,id=sata0", "ide-hd,drive=data,bus=sata0.0,id=data-disk"]),
        (
            "virtio-scsi",
            ["virtio-scsi-pci,id=scsi0", "scsi-hd,drive=data,bus=scsi0.0,id=data-disk"],
        ),
    ],
)
def test_the_data_disk_goes_on_its_controller_root_and_swap_stay_virtio(
    disk: str, wanted: list[str]
) -> None:
    devices = devices_of(argv(disk=disk))
    start = devices.index(wanted[0])
    assert devices[start : start + len(wanted)] == wanted  # the controller before its disk
    assert sum(d.startswith("virtio-blk-pci,") for d in devices) == 2  # root and swap
    # The data disk's block node stays where a fault is slid under it (blockdev-reopen).
    assert "driver=raw,node-name=data,file=data-file" in argv(disk=disk)


def test_an_e1000e_nic_has_no_option_rom_and_keeps_the_netdev() -> None:
    devices = devices_of(argv(nic="e1000e"))
    assert "e1000e,netdev=net0,id=nic0,romfile=" in devices
    assert not any(d.startswith("virtio-net-pci") for d in devices)


def test_an_unknown_device_is_a_one_line_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="use one of virtio-net, e1000e"):
        DeviceProfile(nic="rtl8139")
    with pytest.raises(ValueError, match="use one of virtio-blk, virtio-scsi, nvme, ahci"):
        DeviceProfile(disk="floppy")


def test_the_cell_id_names_a_non_default_profile_only() -> None:
    assert DeviceProfile().id_suffix == ""
    assert DeviceProfile("e1000e", "nvme").id_suffix == "nic-e1000e-disk-nvme"
    assert DeviceProfile(disk="ahci").id_suffix == "disk-ahci"
    plain = Cell("6.1.0-57-amd64", "7.2.22", "seabios1.16.2", "pc", "tcg")
    assert plain.id == "k6.1.0-57-q7.2.22-seabios1.16.2-pc-tcg"
    cell = Cell(
        "6.1.0-57-amd64",
        "7.2.22",
        "seabios1.16.2",
        "pc",
        "tcg",
        profile="devices",
        devices="nic-e1000e-disk-nvme",
    )
    assert cell.id == "k6.1.0-57-devices-q7.2.22-seabios1.16.2-pc-tcg-nic-e1000e-disk-nvme"
    assert cell != plain


def test_devices_whose_drivers_the_default_image_drops_boot_the_devices_profile() -> None:
    assert image_profile(DeviceProfile(), None) is None
    assert image_profile(DeviceProfile(), "swapfile-ext4") == "swapfile-ext4"
    assert image_profile(DeviceProfile(disk="nvme"), None) is None  # drivers/nvme is kept
    for devices in (DeviceProfile(nic="e1000e"), DeviceProfile(disk="ahci")):
        assert image_profile(devices, None) == "devices"
        assert image_profile(devices, "devices") == "devices"
    with pytest.raises(SetupError, match=r"needs the guest profile 'devices'.*drop --guest"):
        image_profile(DeviceProfile(disk="virtio-scsi"), "swapfile-ext4")


def test_the_libvirt_backend_refuses_a_non_default_profile_in_one_line() -> None:
    config = QemuConfig(
        binary="q", kernel=None, initrd=None, append="", devices=DeviceProfile(usb=True)
    )
    files = DomainFiles(Path("/r/root"), Path("/r/swap"), Path("/r/data"), Path("/r/c"))
    with pytest.raises(SetupError, match="not yet attach usb: use --backend qemu"):
        build_domain_xml("g", config, files)


def test_the_devices_profile_keeps_the_drivers_out_of_the_excluded_trees() -> None:
    assert profile_named("devices") is DEVICES and DEVICES.cmdline == ""  # the recipe's
    includes = DEVICES.module_paths(MODULE_ROOTS)
    assert "/lib/modules/*/kernel/drivers/net/ethernet/intel/e1000e/*" in includes
    assert "/usr/lib/modules/*/kernel/drivers/scsi/sd_mod.ko*" in includes
    excluded = Recipe.load("debian").settings["exclude_modules"]
    for module in DEVICES.include_modules:  # each one an exception to an excluded tree
        assert any(module.startswith(f"{tree}/") for tree in excluded), module
    assert SWAPFILE_EXT4.module_paths(MODULE_ROOTS) == []


def test_a_new_profile_field_at_its_default_leaves_existing_keys_alone() -> None:
    """The swapfile-ext4 image's key, as computed before include_modules existed."""
    assert SWAPFILE_EXT4.content_key("f2736b5d9dce5976") == "873fe96686922c93"
    assert DEVICES.content_key("f2736b5d9dce5976") != DEVICES.content_key("0" * 16)


def _block(root: Path, disk: str, chain: list[tuple[str, str]]) -> None:
    """/sys/block/DISK/device -> a device whose ancestors are ``chain`` (dir, driver)."""
    path = root / "devices"
    for part, driver in chain:
        path = path / part
        path.mkdir(parents=True, exist_ok=True)
        if driver:
            (root / "drivers" / driver).mkdir(parents=True, exist_ok=True)
            (path / "driver").symlink_to(root / "drivers" / driver)
    (root / "block" / disk).mkdir(parents=True)
    (root / "block" / disk / "device").symlink_to(path)


def _found(root: Path) -> str:
    text = code("data_disk.sh").replace("/sys/", f"{root}/")
    script = text + 'echo "$data_disk $data_disk_driver $data_disk_dev"\n'
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize(
    ("disk", "chain", "found"),
    [
        ("vdc", [("pci0/0000:00:06.0", "virtio-pci"), ("virtio3", "virtio_blk")], "virtio_blk"),
        ("nvme0n1", [("pci0/0000:00:04.0", "nvme"), ("nvme", ""), ("nvme0", "")], "nvme"),
        (
            "sda",
            [("pci0/0000:00:05.0", "ahci"), ("ata1/host0/target0:0:0", ""), ("0:0:0:0", "sd")],
            "ahci",
        ),
        (
            "sda",
            [
                ("pci0/0000:00:05.0", "virtio-pci"),
                ("virtio2", "virtio_scsi"),
                ("host0/target0:0:0", ""),
                ("0:0:0:0", "sd"),
            ],
            "virtio_scsi",
        ),
    ],
)
def test_the_data_disk_is_found_with_its_controllers_driver(
    tmp_path: Path, disk: str, chain: list[tuple[str, str]], found: str
) -> None:
    root = tmp_path / "sys"
    for other in ("vda", "vdb"):  # root and swap: never the data disk
        _block(root, other, [(f"pci0/{other}", "virtio-pci"), (f"v{other}", "virtio_blk")])
    _block(root, disk, chain)
    assert _found(root) == f"{disk} {found} /dev/{disk}"


def test_an_nvme_guest_cold_boots_qemu_cannot_checkpoint_it() -> None:
    assert DeviceProfile().migratable and DeviceProfile("e1000e", "ahci").migratable
    assert not DeviceProfile(disk="nvme").migratable
