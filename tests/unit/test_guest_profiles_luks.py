"""The luks-swap profile's disk: a GPT disk of the root and a LUKS2 container whose data
segment starts with mkswap's header, encrypted as dm-crypt's aes-xts-plain64 writes it."""

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from harness.setup.guest_profiles import LUKS_SWAP, profile_named
from harness.setup.luks_profile import KEY_FILE, SECTOR, encrypt_sectors, luks_swap_disk

KEY = bytes(range(64))


def _decrypt(key: bytes, data: bytes) -> bytes:
    out = b""
    for index in range(len(data) // SECTOR):
        tweak = index.to_bytes(16, "little")  # plain64: the sector's number
        decryptor = Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor()
        out += decryptor.update(data[index * SECTOR : (index + 1) * SECTOR]) + decryptor.finalize()
    return out


def test_each_sector_is_encrypted_with_its_own_number() -> None:
    plain = bytes(2 * SECTOR)
    sealed = encrypt_sectors(KEY, plain)
    assert len(sealed) == len(plain) and sealed[:SECTOR] != sealed[SECTOR:]  # tweaks differ
    assert _decrypt(KEY, sealed) == plain
    with pytest.raises(ValueError, match="whole number"):
        encrypt_sectors(KEY, b"x")


def test_luks_swap_is_a_profile_of_the_default_suite() -> None:
    assert profile_named("luks-swap") is LUKS_SWAP
    assert LUKS_SWAP.suite == "" and "resume=/dev/mapper/cryptswap" in LUKS_SWAP.cmdline
    assert LUKS_SWAP.packages(["initramfs-tools"]) == ["initramfs-tools", "cryptsetup-initramfs"]


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("cryptsetup", "sfdisk", "mkswap")),
    reason="needs cryptsetup, sfdisk and mkswap",
)
def test_the_container_opens_with_the_key_file_to_a_swap_header(tmp_path: Path) -> None:
    guest = tmp_path / "guest"
    (guest / KEY_FILE).parent.mkdir(parents=True)
    (guest / KEY_FILE).write_bytes(bytes(range(32)))
    (guest / "usr").symlink_to("/usr")  # the build host's cryptsetup stands in for the guest's
    root_fs = tmp_path / "root.raw"
    root_fs.write_bytes(b"")
    disk = luks_swap_disk(guest, root_fs, 4, 8, lambda line: None)
    part = tmp_path / "part2"
    with disk.open("rb") as source:
        source.seek(5 * 1024 * 1024)  # 1 MiB, then the 4 MiB root
        part.write_bytes(source.read())
    dump = subprocess.run(
        ["cryptsetup", "luksDump", "--dump-volume-key", "--batch-mode",
         "--key-file", str(guest / KEY_FILE), str(part)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    hex_key = "".join(dump.split("MK dump:")[-1].split()[:64]).replace(":", "")
    volume_key = bytes.fromhex(hex_key)
    assert len(volume_key) == 64
    with part.open("rb") as source:
        source.seek(16 * 1024 * 1024)  # LUKS2's default data offset
        page = _decrypt(volume_key, source.read(4096))
    assert page[-10:] == b"SWAPSPACE2"
