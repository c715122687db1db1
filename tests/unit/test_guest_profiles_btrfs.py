"""The fedora-like profile's btrfs root: the swapfile's resume_offset read from the trees of an
unmounted file system (dump-tree excerpts of mkfs.btrfs 7.3's output), and the profile's
packages and keys."""

from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks.judges import classify_kernel_log
from harness.errors import ImageBuildError, SetupError
from harness.machines.config import Firmware, QemuConfig
from harness.machines.qemu.cmdline import RunPaths, build_argv
from harness.setup.btrfs_profile import first_extent, resume_offset, subvolume_id
from harness.setup.guest_profiles import FEDORA_LIKE, SWAPFILE_EXT4, profile_named

ROOT_TREE = """	item 4 key (FS_TREE ROOT_REF 256) itemoff 14927 itemsize 22
		root ref key dirid 256 sequence 2 name root
	item 5 key (FS_TREE ROOT_REF 258) itemoff 14905 itemsize 22
		root ref key dirid 256 sequence 3 name home
	item 14 key (256 ROOT_BACKREF 5) itemoff 12479 itemsize 22
		root backref key dirid 256 sequence 2 name root
	item 15 key (256 ROOT_REF 257) itemoff 12457 itemsize 22
		root ref key dirid 256 sequence 5 name swap
"""
SWAP_TREE = """	item 5 key (257 INODE_REF 256) itemoff 15857 itemsize 18
		index 2 namelen 8 name: swapfile
	item 6 key (257 EXTENT_DATA 0) itemoff 15804 itemsize 53
		generation 6 type 1 (regular)
		extent data disk byte 299892736 nr 1048576
		extent data offset 0 nr 1048576 ram 1048576
	item 7 key (257 EXTENT_DATA 1048576) itemoff 15751 itemsize 53
		generation 6 type 1 (regular)
		extent data disk byte 300941312 nr 1048576
"""
CHUNK_TREE = """	item 1 key (FIRST_CHUNK_TREE CHUNK_ITEM 13631488) itemoff 16105 itemsize 80
		length 8388608 owner 2 stripe_len 65536 type DATA|single
		io_align 65536 io_width 65536 sector_size 4096
		num_stripes 1 sub_stripes 1
			stripe 0 devid 1 offset 13631488
			dev_uuid d12036e3-0949-4024-ae45-1c52f9608ad5
	item 3 key (FIRST_CHUNK_TREE CHUNK_ITEM 30408704) itemoff 15881 itemsize 112
		length 268435456 owner 2 stripe_len 65536 type METADATA|DUP
		io_align 65536 io_width 65536 sector_size 4096
		num_stripes 2 sub_stripes 1
			stripe 0 devid 1 offset 38797312
			dev_uuid d12036e3-0949-4024-ae45-1c52f9608ad5
			stripe 1 devid 1 offset 307232768
	item 4 key (FIRST_CHUNK_TREE CHUNK_ITEM 298844160) itemoff 15801 itemsize 80
		length 8388608 owner 2 stripe_len 65536 type DATA|single
		io_align 65536 io_width 65536 sector_size 4096
		num_stripes 1 sub_stripes 1
			stripe 0 devid 1 offset 575668224
"""


def test_the_swapfiles_first_page_on_the_device() -> None:
    assert subvolume_id(ROOT_TREE, "swap") == 257
    assert subvolume_id(ROOT_TREE, "home") == 258
    logical = first_extent(SWAP_TREE, "swapfile")
    assert logical == 299892736
    # In the chunk at logical 298844160, placed at 575668224 on the device.
    assert resume_offset(logical, CHUNK_TREE) == (575668224 + 299892736 - 298844160) // 4096


def test_what_cannot_be_a_resume_offset_is_named() -> None:
    with pytest.raises(ImageBuildError, match="no subvolume 'var'"):
        subvolume_id(ROOT_TREE, "var")
    with pytest.raises(ImageBuildError, match="0 files called 'other'"):
        first_extent(SWAP_TREE, "other")
    hole = SWAP_TREE.replace("disk byte 299892736", "disk byte 0")
    with pytest.raises(ImageBuildError, match="starts with a hole"):
        first_extent(hole, "swapfile")
    with pytest.raises(ImageBuildError, match="METADATA\\|DUP chunk"):
        resume_offset(30408704 + 4096, CHUNK_TREE)
    with pytest.raises(ImageBuildError, match="no chunk holds"):
        resume_offset(1, CHUNK_TREE)


def test_fedora_like_is_sid_with_dracut_instead_of_initramfs_tools() -> None:
    assert profile_named("fedora-like") is FEDORA_LIKE
    assert FEDORA_LIKE.suite == "sid" and FEDORA_LIKE.boot == "disk"
    packages = FEDORA_LIKE.packages(["systemd-sysv", "initramfs-tools", "zstd"])
    assert "initramfs-tools" not in packages and packages[:2] == ["systemd-sysv", "zstd"]
    assert {"dracut", "btrfs-progs", "systemd-zram-generator"} <= set(packages)
    # A new field left at its default keeps an existing profile's key (and image).
    assert SWAPFILE_EXT4.packages(["a"]) == ["a"]
    assert FEDORA_LIKE.content_key("k") != SWAPFILE_EXT4.content_key("k")


def test_a_disk_booted_guest_without_uefi_is_refused_in_one_line() -> None:
    paths = RunPaths(*(Path(f"/r/{n}") for n in ("q.sock", "a.sock", "c.sock", "o", "s", "d")))
    config = QemuConfig("qemu", kernel=None, initrd=None, append="")
    with pytest.raises(SetupError, match="needs UEFI: add --firmware ovmf"):
        build_argv(config, paths, 2222)
    uefi = replace(config, firmware=Firmware("ovmf", ovmf_code=Path("c"), ovmf_vars=Path("v")))
    assert "-kernel" not in build_argv(uefi, paths, 2222)


def test_a_resume_device_set_at_run_time_is_no_pm_failure() -> None:
    """systemd-sleep writing /sys/power/resume (efi-hibernate-location) makes the kernel
    look at the partition in use, which answers EBUSY: not a failure; other codes are."""
    busy = "kern  :debug : PM: Image not found (code -16)"
    assert "pm_failure" not in classify_kernel_log([busy])
    assert classify_kernel_log(["PM: Image not found (code -22)"])["pm_failure"]
