"""Guest profiles: names, keys, the swapfile made in an unmounted ext4, the cell id."""

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.errors import ImageBuildError, SetupError
from harness.matrix.cell import Cell
from harness.setup.debian_suites import GuestSuite
from harness.setup.guest_profiles import (
    BLOCK_SIZE,
    SWAPFILE_EXT4,
    add_swapfile,
    first_physical_block,
    profile_named,
)
from harness.setup.image import Build, Recipe

DEBUGFS_FILEFRAG = """debugfs 1.47.0 (5-Feb-2023)
/swapfile has 65536 block(s), i_size is 268435456
 ext logical physical expected  length
   0       0     2493            30275
   1   30275    32844    32768   32692
/swapfile: 2 contiguous extents
"""
E2FSPROGS_FILEFRAG = """Filesystem type is: ef53
File size of /swapfile is 1342177280 (327680 blocks of 4096 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..       0:     103050..    103050:      1:
   1:        1..   60789:     103051..    163839:  60789:             unwritten
"""


def test_default_and_unknown_profiles() -> None:
    assert profile_named(None) is None and profile_named("partition") is None
    assert profile_named("swapfile-ext4") is SWAPFILE_EXT4
    with pytest.raises(SetupError, match="unknown guest profile 'zfs': use one of partition, "):
        profile_named("zfs")


def test_first_physical_block_from_either_filefrag() -> None:
    assert first_physical_block(DEBUGFS_FILEFRAG) == 2493
    assert first_physical_block(E2FSPROGS_FILEFRAG) == 103050
    with pytest.raises(ImageBuildError, match="no first extent"):
        first_physical_block("/swapfile has 0 block(s)\n")


def test_a_profile_image_has_its_own_key_and_name() -> None:
    recipe = Recipe.load("debian")
    bookworm = GuestSuite("bookworm")
    plain = Build(recipe, bookworm, [], "linux-image-amd64", "k")
    assert plain.name == "debian-bookworm"  # the default image's name and key are untouched
    key = SWAPFILE_EXT4.content_key("0123456789abcdef")
    assert key != "0123456789abcdef" and len(key) == 16
    assert key == SWAPFILE_EXT4.content_key("0123456789abcdef")
    assert key != SWAPFILE_EXT4.content_key("fedcba9876543210")
    profiled = Build(recipe, bookworm, [], "linux-image-amd64", key, SWAPFILE_EXT4)
    assert profiled.name == "debian-bookworm-swapfile-ext4"
    assert SWAPFILE_EXT4.hook("customize") is not None


def test_the_cell_id_names_the_profile() -> None:
    cell = Cell(kernel="6.1.0-57-amd64", qemu="7.2.22", firmware="seabios1.16.2", machine="pc",
                accel="tcg", profile="swapfile-ext4")  # fmt: skip
    assert cell.id.startswith("k6.1.0-57-swapfile-ext4-q7.2.22-"), cell.id
    assert Cell(kernel="6.1.0-57-amd64", qemu="7.2.22", firmware="seabios1.16.2",
                machine="pc", accel="tcg").id.startswith("k6.1.0-57-q7.2.22-")  # fmt: skip


@pytest.mark.skipif(shutil.which("debugfs") is None, reason="needs e2fsprogs")
def test_swapfile_in_an_unmounted_ext4_has_no_holes_and_its_header_where_said(
    tmp_path: Path,
) -> None:
    (tmp_path / "root").mkdir()
    fs = tmp_path / "root.raw"
    with fs.open("wb") as handle:
        handle.truncate(96 * 1024 * 1024)
    mke2fs = ["mke2fs", "-q", "-t", "ext4", "-d", str(tmp_path / "root"), str(fs)]
    subprocess.run([*mke2fs[:-1], "-b", "1024", str(fs)], check=True)
    with pytest.raises(ImageBuildError, match="needs 4096-byte blocks"):
        add_swapfile(fs, "/swapfile", 32)
    subprocess.run([*mke2fs[:-1], "-F", "-b", "4096", str(fs)], check=True)
    offset = add_swapfile(fs, "/swapfile", 32)
    check = subprocess.run(["e2fsck", "-fn", str(fs)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    stat = subprocess.run(["debugfs", "-R", "stat /swapfile", str(fs)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "Size: 33554432" in stat and "Mode:  0600" in stat, stat
    assert "Blockcount: 65536" in stat, stat  # every block allocated: no hole
    with fs.open("rb") as disk:
        disk.seek(offset * BLOCK_SIZE)
        header = disk.read(BLOCK_SIZE)
    assert header.endswith(b"SWAPSPACE2"), header[-16:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root", "root.raw"]  # no leftovers
