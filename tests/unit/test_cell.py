from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.machines.platform_args import disable_sleep_state
from harness.matrix.cell import Cell, qemu_version, seabios_version


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
