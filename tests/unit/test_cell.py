import argparse
from pathlib import Path
from typing import Any

import pytest

from harness.errors import SetupError
from harness.machines.platform_args import disable_sleep_state
from harness.matrix.cell import (
    Cell,
    PackageUsed,
    follow_guest_firmware,
    qemu_bios,
    qemu_version,
    seabios_version,
)
from harness.plugin.options import firmware_option, settings_from


def test_cell_id_is_readable_and_stable() -> None:
    cell = Cell("6.1.0-56-amd64", "7.2.22", "seabios1.16.2", "pc", "tcg")
    assert cell.id == "k6.1.0-56-q7.2.22-seabios1.16.2-pc-tcg"


def test_seabios_version_is_read_from_the_binary(tmp_path: Path) -> None:
    bios = tmp_path / "bios.bin"
    bios.write_bytes(b"\x00junk\x001.16.3-debian-1.16.3-2\x00SeaBIOS (version %s)\x00")
    assert seabios_version(bios) == "1.16.3"


def test_missing_qemu_names_the_fix() -> None:
    with pytest.raises(SetupError, match=r"not found: run \./run setup"):
        qemu_version("/nonexistent/qemu-system-x86_64")


def test_disable_args_per_machine_type() -> None:
    assert disable_sleep_state("pc", "s3") == ("-global", "PIIX4_PM.disable_s3=1")
    assert disable_sleep_state("q35", "s4") == ("-global", "ICH9-LPC.disable_s4=1")
    with pytest.raises(ValueError):
        disable_sleep_state("microvm", "s3")


def fake_qemu(path: Path, data_dirs: list[Path]) -> Path:
    """A 'QEMU' that lists ``data_dirs`` for ``-L help`` as QEMU does, one a line."""
    listing = "".join(f"echo {d}\n" for d in data_dirs)
    path.write_text(f'#!/bin/sh\n[ "$1 $2" = "-L help" ] || exit 1\n{listing}')
    path.chmod(0o755)
    return path


def test_the_bios_is_the_one_qemu_finds_first(tmp_path: Path) -> None:
    # A wrapper that brings its own -L lists it first: its file wins over the host's.
    own, host, empty = tmp_path / "own", tmp_path / "host", tmp_path / "empty"
    for folder in (own, host, empty):
        folder.mkdir()
    (own / "bios-256k.bin").write_bytes(b"\x001.17.0-debian-1.17.0-1\x00")
    (host / "bios-256k.bin").write_bytes(b"\x001.16.2-debian-1.16.2-1\x00")
    binary = fake_qemu(tmp_path / "qemu", [empty, own, host])
    assert qemu_bios(str(binary)) == own / "bios-256k.bin"
    assert seabios_version(qemu_bios(str(binary))) == "1.17.0"


def test_a_qemu_that_cannot_list_its_data_dirs_gives_no_bios(tmp_path: Path) -> None:
    binary = tmp_path / "qemu"
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    assert qemu_bios(str(binary)) is None
    assert qemu_bios(str(tmp_path / "absent")) is None


def test_packages_and_notes_are_not_part_of_a_cells_identity() -> None:
    plain = Cell("6.1.0-56-amd64", "11.1.3", "seabios1.17.0", "pc", "tcg")
    used = PackageUsed("qemu", "qemu-system-x86", "1:11.1.3+ds-1", "ab" * 32)
    recorded = Cell("6.1.0-56-amd64", "11.1.3", "seabios1.17.0", "pc", "tcg", packages=(used,))
    assert recorded == plain and hash(recorded) == hash(plain) and recorded.id == plain.id


def record(cell_id: str, *bios_versions: str) -> dict[str, Any]:
    cycles = [{"combination": {"bios_version": version}} for version in bios_versions]
    return {"cell": cell_id, "series": [{"cycles": cycles}]}


def test_the_reported_id_follows_the_seabios_the_guest_saw() -> None:
    cell = Cell(
        "6.1.0-56-amd64",
        "11.1.3",
        "seabios1.16.2",
        "pc",
        "tcg",
        firmware_file="/usr/share/seabios/bios-256k.bin",
    )
    records = [record(cell.id, "1.17.0-debian-1.17.0-1", "1.17.0-debian-1.17.0-1")]
    followed = follow_guest_firmware(cell, records)
    assert followed.id == "k6.1.0-56-q11.1.3-seabios1.17.0-pc-tcg"
    assert "/usr/share/seabios/bios-256k.bin says SeaBIOS 1.16.2" in followed.firmware_note
    assert "1.17.0-debian-1.17.0-1" in followed.firmware_note and cell.id in followed.firmware_note
    assert records[0]["cell"] == followed.id


@pytest.mark.parametrize(
    ("firmware", "seen"),
    [
        ("seabios1.16.2", ["1.16.2-debian-1.16.2-1"]),  # agrees
        ("seabios1.16.2", ["1.17.0-debian-1.17.0-1", "1.16.3-debian-1.16.3-2"]),  # ambiguous
        ("seabios1.16.2", []),  # no guest reported
        ("ovmf1a2b3c4d", ["2026.08-2"]),  # OVMF's id is its content hash
    ],
)
def test_the_id_stays_where_the_guest_does_not_contradict_it(
    firmware: str, seen: list[str]
) -> None:
    cell = Cell("6.1.0-56-amd64", "11.1.3", firmware, "pc", "tcg")
    records = [record(cell.id, *seen)]
    assert follow_guest_firmware(cell, records) is cell
    assert records[0]["cell"] == cell.id


class Options:
    def __init__(self, **given: Any) -> None:
        self.given = given

    def getoption(self, name: str) -> Any:
        return self.given.get(name)


def test_firmware_with_a_version_is_the_firmware_and_its_option() -> None:
    assert firmware_option("ovmf:2026.08") == "ovmf:2026.08"
    with pytest.raises(argparse.ArgumentTypeError, match="one of seabios, ovmf"):
        firmware_option("coreboot")
    config: Any = Options(
        firmware="ovmf:2026.08",
        libvirt_stack="host",
        libvirt_daemon="libvirtd",
        backend="qemu",
        offline=True,
    )
    settings = settings_from(config)
    assert (settings.firmware, settings.ovmf, settings.seabios) == ("ovmf", "2026.08", None)
    assert settings.offline is True
