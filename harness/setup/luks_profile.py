"""An encrypted swap partition for a guest profile, made without mapping anything.

The root disk becomes a GPT disk: the packed ext4 root as partition ``root``, then a LUKS2
container (partition ``cryptswap``) holding the swap. The guest's own ``cryptsetup
luksFormat`` writes the header into a plain file (no device mapper needed), unlocked by the
key file the profile's hook put in the guest (``KEY_FILE``), with a volume key chosen here;
mkswap's header page is then encrypted here as dm-crypt would write it (aes-xts-plain64,
512-byte sectors, each sector's number as its IV) at the start of the data segment, so the
guest's initramfs unlocks a ready swap device at the first boot. The rest of the swap stays
as it is: whatever it decrypts to, swap and a hibernation image overwrite it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from harness.errors import ImageBuildError
from harness.setup.build_steps import guest_program, run_step

KEY_FILE = "etc/cryptsetup-keys.d/cryptswap.key"  # below the guest's root, as the hook writes it
SECTOR = 512
PAGE = 4096
# Both partitions "Linux filesystem", as installers mark a LUKS partition: the swap type
# would invite systemd's gpt-auto to activate the encrypted bytes as swap.
LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
DATA_OFFSET = re.compile(r"Data segments:\s*\n\s*0: crypt\s*\n\s*offset: (\d+) \[bytes\]")

Progress = Callable[[str], None]


def luks_swap_disk(
    guest_root: Path, root_fs: Path, root_mib: int, swap_mib: int, progress: Progress
) -> Path:
    """The GPT disk of ``root_fs`` (partition 1) and the encrypted swap (partition 2); the
    files it was made of are removed."""
    key = guest_root / KEY_FILE
    if not key.is_file():
        raise ImageBuildError(f"the guest has no key file /{KEY_FILE} (the profile's hook)")
    container = root_fs.with_name("cryptswap.raw")
    volume_key = root_fs.with_name("volume.key")
    header_mib = 16  # LUKS2's default metadata and keyslots area
    with container.open("wb") as handle:
        handle.truncate((header_mib + swap_mib) * 1024 * 1024)
    volume_key.write_bytes(os.urandom(64))
    volume_key.chmod(0o600)
    try:
        progress(f"luksFormat: a {swap_mib} MiB swap in LUKS2, unlocked by /{KEY_FILE}")
        _guest_tool(
            guest_root, "usr/sbin/cryptsetup", "luksFormat", "-q", "--type", "luks2",
            "--cipher", "aes-xts-plain64", "--key-size", "512", "--sector-size", str(SECTOR),
            "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
            "--label", "cryptswap", "--key-file", str(key),
            "--volume-key-file", str(volume_key), str(container),
        )  # fmt: skip
        dump = _guest_tool(guest_root, "usr/sbin/cryptsetup", "luksDump", str(container))
        found = DATA_OFFSET.search(dump)
        if found is None:
            raise ImageBuildError(f"luksDump names no data segment: {dump[:300]!r}")
        offset = int(found.group(1))
        header = swap_header(container.stat().st_size - offset)
        with container.open("r+b") as handle:
            handle.seek(offset)
            handle.write(encrypt_sectors(volume_key.read_bytes(), header))
    finally:
        volume_key.unlink()
    disk = root_fs.with_name("disk.raw")
    with disk.open("wb") as handle:
        handle.truncate((1 + root_mib + header_mib + swap_mib + 1) * 1024 * 1024)
    layout = (
        "label: gpt\n"
        f"start=1MiB, size={root_mib}MiB, type={LINUX_TYPE}, name=root\n"
        f"start={1 + root_mib}MiB, size={header_mib + swap_mib}MiB, type={LINUX_TYPE}, "
        "name=cryptswap\n"
    )
    run_step(["sfdisk", "-q", str(disk)], "sfdisk", stdin=layout)
    for part, offset_mib in ((root_fs, 1), (container, 1 + root_mib)):
        run_step(["dd", f"if={part}", f"of={disk}", "bs=1M", f"seek={offset_mib}",
              "conv=notrunc,sparse", "status=none"], "dd")  # fmt: skip
        part.unlink()
    return disk


def swap_header(size_bytes: int) -> bytes:
    """mkswap's header page for a swap area of ``size_bytes``."""
    area = Path(os.environ.get("TMPDIR", "/tmp")) / f"swap-header-{os.getpid()}"
    try:
        with area.open("wb") as handle:
            handle.truncate(size_bytes)
        run_step(["mkswap", "-q", "-L", "cryptswap", str(area)], "mkswap")
        with area.open("rb") as handle:
            return handle.read(PAGE)
    finally:
        area.unlink(missing_ok=True)


def encrypt_sectors(volume_key: bytes, plain: bytes, first_sector: int = 0) -> bytes:
    """``plain`` as dm-crypt's aes-xts-plain64 writes it: each 512-byte sector encrypted
    with the sector's number (little-endian, 64 bits, zero-padded) as the XTS tweak."""
    if len(plain) % SECTOR:
        raise ValueError(f"{len(plain)} bytes is not a whole number of {SECTOR}-byte sectors")
    out = bytearray()
    for index in range(len(plain) // SECTOR):
        tweak = (first_sector + index).to_bytes(16, "little")
        encryptor = Cipher(algorithms.AES(volume_key), modes.XTS(tweak)).encryptor()
        sector = plain[index * SECTOR : (index + 1) * SECTOR]
        out += encryptor.update(sector) + encryptor.finalize()
    return bytes(out)


def _guest_tool(guest_root: Path, program: str, *args: str) -> str:
    return guest_program(guest_root, program, *args, package="cryptsetup")
