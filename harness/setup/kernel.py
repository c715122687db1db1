"""A user's own guest kernel (a bzImage, e.g. from a ``git bisect`` step) on the built-in image.

The kernel boots by direct kernel boot with the image's command line (``root=/dev/vda``). It
needs, built in (``=y``) unless an ``--initrd`` that loads them is given: CONFIG_VIRTIO_PCI,
VIRTIO_BLK, EXT4_FS (to mount the root), VIRTIO_NET, VIRTIO_CONSOLE (the guest agent's
channel), SERIAL_8250_CONSOLE, and SUSPEND and HIBERNATION for the cases themselves. The
image's own modules match only its own kernel, so anything modular is absent on the root
filesystem.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

from harness.errors import SetupError
from harness.setup.image import GuestImage

BOOT_MAGIC_OFFSET = 0x202  # "HdrS": the x86 boot protocol's setup header
KERNEL_VERSION_OFFSET = 0x20E  # u16: offset of the version string, less 0x200


def bzimage_release(path: Path) -> str:
    """``6.1.0-28-amd64`` from a bzImage's setup header (what ``uname -r`` will say)."""
    if not path.is_file():
        raise SetupError(f"guest kernel {path} not found: pass --kernel arch/x86/boot/bzImage")
    with path.open("rb") as image:
        header = image.read(0x400)
        if header[BOOT_MAGIC_OFFSET : BOOT_MAGIC_OFFSET + 4] != b"HdrS":
            raise SetupError(
                f"{path} is not an x86 bzImage (no boot header): pass arch/x86/boot/bzImage"
            )
        (pointer,) = struct.unpack_from("<H", header, KERNEL_VERSION_OFFSET)
        image.seek(pointer + 0x200)
        text = image.read(256).split(b"\0", 1)[0].decode(errors="replace")
    release = text.split(" ", 1)[0]
    if not release:
        raise SetupError(f"{path} carries no kernel version string")
    return release


def with_kernel(image: GuestImage, kernel: Path, initrd: Path | None) -> GuestImage:
    """``image`` booted with ``kernel`` (and ``initrd``, or none) instead of its own."""
    release = bzimage_release(kernel)
    if initrd is not None and not initrd.is_file():
        raise SetupError(f"initrd {initrd} not found")
    return replace(
        image,
        kernel=kernel.resolve(),
        initrd=initrd.resolve() if initrd else None,
        kernel_release=release,
    )
