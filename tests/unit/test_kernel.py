"""A user's bzImage: its release read from the boot header, clear errors for anything else."""

import struct
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.setup.image import GuestImage
from harness.setup.kernel import bzimage_release, with_kernel


def fake_bzimage(path: Path, version: bytes) -> Path:
    data = bytearray(0x800)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x400 - 0x200)
    data[0x400 : 0x400 + len(version) + 1] = version + b"\0"
    path.write_bytes(bytes(data))
    return path


def test_release_comes_from_the_boot_header(tmp_path: Path) -> None:
    kernel = fake_bzimage(tmp_path / "bzImage", b"6.13.0-rc1+ (me@box) #3 SMP PREEMPT")
    assert bzimage_release(kernel) == "6.13.0-rc1+"


def test_a_file_that_is_not_a_bzimage_is_refused(tmp_path: Path) -> None:
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(b"\x7fELF" + bytes(0x400))
    with pytest.raises(SetupError, match=r"is not an x86 bzImage .*arch/x86/boot/bzImage"):
        bzimage_release(vmlinux)


def test_a_missing_kernel_is_named(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"guest kernel .*/nope not found"):
        bzimage_release(tmp_path / "nope")


def test_the_image_boots_the_given_kernel_without_initrd(tmp_path: Path) -> None:
    image = GuestImage(
        "debian",
        "key",
        tmp_path / "d",
        tmp_path / "vmlinuz",
        tmp_path / "initrd.img",
        "6.1.0-28-amd64",
        "root=/dev/vda",
        {},
    )
    kernel = fake_bzimage(tmp_path / "bzImage", b"6.13.0 (x) #1")
    mine = with_kernel(image, kernel, None)
    assert (mine.kernel, mine.initrd, mine.kernel_release) == (kernel, None, "6.13.0")
    with pytest.raises(SetupError, match=r"initrd .* not found"):
        with_kernel(image, kernel, tmp_path / "missing.img")
