"""The matrix's device axis: a cell's ``devices`` table read into the profile a run's options
make, checked against the options' own choices, named in the label and id as a run names it,
and handed to the cell's pytest run as those options."""

import os
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.machines.devices import DISKS, DISPLAYS, NICS, DeviceProfile
from harness.matrix.spec import CellSpec, load, path_of, select
from harness.plugin.options import settings_from
from harness.session import HarnessSession
from harness.tools.matrix_run import settings_for

pytest_plugins = ("pytester",)

CELL = 'kernel = "k1"\nqemu = "q1"\nfirmware = "seabios"\nmachine = "pc"\naccel = "tcg"\n'
AXES = "[axes]\n" + CELL.replace('= "', '= ["').replace('"\n', '"]\n')


def _load(tmp_path: Path, text: str) -> list[CellSpec]:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return load(path)


def _include(devices: str) -> str:
    return f"{AXES}\n[[include]]\n{CELL}devices = {devices}\n"


def test_an_include_names_its_devices_as_a_table_of_the_options(tmp_path: Path) -> None:
    plain, cell = _load(tmp_path, _include('{ nic = "e1000e", disk = "nvme" }'))
    assert plain.devices == DeviceProfile() and plain.label == "k1_q1_seabios_pc_tcg"
    assert cell.devices == DeviceProfile(nic="e1000e", disk="nvme")
    assert cell.label == "k1_q1_seabios_pc_tcg_devices-nic-e1000e-disk-nvme"
    assert cell.pytest_args()[-4:] == ["--nic", "e1000e", "--disk", "nvme"]


def test_a_devices_axis_multiplies_the_cells_and_excludes_match_by_name_or_table(
    tmp_path: Path,
) -> None:
    axis = 'devices = [{}, { tpm = true }, { disk = "ahci" }, { disk = "nvme" }]\n'
    text = AXES + axis + '\n[[exclude]]\ndevices = "*nvme*"\n\n[[exclude]]\ndevices = {}\n'
    cells = _load(tmp_path, text)
    assert [cell.devices for cell in cells] == [DeviceProfile(tpm=True), DeviceProfile(disk="ahci")]
    assert [cell.label.rsplit("_", 1)[1] for cell in cells] == ["devices-tpm", "devices-disk-ahci"]
    # `--cell` picks the device cells by their label
    assert select(cells, ["*_devices-tpm"], {}) == cells[:1]


def test_switches_and_choices_become_the_runs_options(tmp_path: Path) -> None:
    (_, cell) = _load(
        tmp_path, _include('{ usb = true, display = "std", balloon = true, share = "9p" }')
    )
    assert cell.pytest_args() == [
        "--kernel-package", "k1", "--qemu", "q1", "--firmware", "seabios",
        "--machine-type", "pc", "--accel", "tcg",
        "--share", "9p", "--usb", "--display", "std", "--balloon",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ('{ nic = "e1000" }', f"devices: unknown NIC 'e1000': use one of {', '.join(NICS)}$"),
        ('{ disk = "sata" }', f"unknown disk 'sata': use one of {', '.join(DISKS)}$"),
        ('{ display = "vga" }', f"unknown display 'vga': use one of {', '.join(DISPLAYS)}$"),
        ('{ gpu = "qxl" }', "devices has no option 'gpu': name only nic, disk, tpm, share"),
        ('{ usb = "yes" }', "devices usb = 'yes': write true or false$"),
        ("{ nic = 1 }", 'devices nic = 1: write a string, e.g. "e1000e"$'),
        ('"nic-e1000e"', 'devices is a table of device options, e.g. devices = { nic = "e1000e"'),
    ],
)
def test_an_unknown_device_is_a_one_line_error_naming_the_choices(
    tmp_path: Path, devices: str, message: str
) -> None:
    with pytest.raises(SetupError, match=message) as caught:
        _load(tmp_path, _include(devices))
    assert "\n" not in str(caught.value) and "m.toml: an [[include]]" in str(caught.value)


def test_an_axis_of_devices_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="axis devices: devices: unknown NIC 'rtl8139'"):
        _load(tmp_path, AXES + 'devices = [{ nic = "rtl8139" }]\n')
    with pytest.raises(SetupError, match="axis devices must be a non-empty list"):
        _load(tmp_path, AXES + "devices = []\n")


@pytest.fixture
def no_device_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The options' defaults, not a developer's S3S4_NIC and the like."""
    for name in list(os.environ):
        if name.startswith("S3S4_"):
            monkeypatch.delenv(name)


PROFILES = [
    DeviceProfile(nic="e1000e", disk="nvme"),
    DeviceProfile(disk="virtio-scsi"),
    DeviceProfile(usb=True, display="std", balloon=True),
    DeviceProfile(tpm=True, share="virtiofs"),
    DeviceProfile(),
]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.id_suffix or "default")
@pytest.mark.usefixtures("no_device_environment")
def test_the_cells_options_and_settings_make_its_profile_and_id(
    pytester: pytest.Pytester, tmp_path: Path, profile: DeviceProfile
) -> None:
    """The cell's pytest run (its options, through the plugin's parser) and the matrix's own
    session for ``--list`` (settings_for) both make the cell's profile, whose id suffix the
    session's cell id ends with, as a run given those options by hand."""
    cell = CellSpec(
        "linux-image-amd64", "qemu-system-x86_64", "seabios", "pc", "tcg", devices=profile
    )
    from_options = settings_from(pytester.parseconfig(*cell.pytest_args()))
    for settings in (from_options, settings_for(cell)):
        session = HarnessSession(settings, tmp_path, lambda _: None)
        try:
            assert session.devices == profile
        finally:
            session.close()
    suffix = profile.id_suffix
    assert cell.label.endswith(f"_devices-{suffix}" if suffix else "_pc_tcg")


def test_the_platform_matrix_has_the_device_profiles_on_the_default_kernel_and_qemu() -> None:
    cells = [cell for cell in load(path_of("platform")) if not cell.devices.is_default]
    assert {cell.devices for cell in cells} == {
        DeviceProfile(nic="e1000e"),
        DeviceProfile(disk="nvme"),
        DeviceProfile(disk="ahci"),
        DeviceProfile(disk="virtio-scsi"),
        DeviceProfile(usb=True, display="std", balloon=True),
        DeviceProfile(tpm=True),
    }
    assert {(c.kernel, c.qemu, c.guest, c.libvirt) for c in cells} == {
        ("linux-image-amd64", "qemu-system-x86_64", "default", "host")
    }
    assert select(cells, ["*_devices-*"], {}) == cells
