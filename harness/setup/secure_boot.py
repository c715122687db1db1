"""The way a guest boots under UEFI secure boot with Microsoft's keys enrolled, as installed
Debian and Fedora guests do: OVMF starts the Microsoft-signed shim, shim the distribution's
signed GRUB, GRUB the image's own kernel (signed by the distribution, whose key shim carries).
Direct kernel boot cannot stand in for it: OVMF would refuse a kernel no key in db signed.

The boot files sit on a small ESP disk of their own (GPT, FAT made with mtools: no mounts),
built once per image, kernel command line and loader versions, so that the guest's own disks
and their names stay what every other cell has. shim and GRUB come from Debian's archive as
data (``harness.setup.components``), from the guest's release; their versions and sha256 are
recorded like every provisioned package.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError
from harness.setup.build_steps import run_step
from harness.setup.components import RELEASES, DebianArchive, Package, release_of
from harness.setup.image import DEFAULT_CACHE, locked

DEFAULT_RELEASE = "bookworm"  # the built-in guest's, where an image names no suite
LOADERS = {
    "shim-signed": "usr/lib/shim/shimx64.efi.signed",
    "shim-helpers-amd64-signed": "usr/lib/shim/mmx64.efi.signed",
    "grub-efi-amd64-signed": "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
}
ESP_MIB = 64  # shim, MokManager, GRUB, the kernel and its initrd, with room to spare
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ESP_OFFSET_SECTORS = 2048
# Debian's signed GRUB reads its configuration from its prefix, /EFI/debian on the ESP it was
# started from; shim started as the removable-media loader looks for GRUB beside itself.
GRUB_CONFIG = """set timeout=0
menuentry 'guest' {{
  search --no-floppy --set=root --file /vmlinuz
  linux /vmlinuz {cmdline}
  initrd /initrd.img
}}
"""


@dataclass(frozen=True)
class SecureBootDisk:
    """The ESP disk a secure-boot guest starts from, and the packages its loaders came from."""

    path: Path
    packages: tuple[Package, ...]


def loaders(suite: str, archive: DebianArchive) -> tuple[Path, tuple[Package, ...]]:
    """shim, MokManager and GRUB, signed, at the newest versions the guest's release itself
    offers (an installed system's, never its backports': a backported GRUB need not pass the
    release's shim), unpacked as data; (tree, packages)."""
    release = release_of(suite or DEFAULT_RELEASE)
    suites = [s for s in RELEASES[release] if not s.endswith("-backports")]
    wanted = []
    for package in LOADERS:
        versions = [v for v, s in archive.offers(package) if s in suites]
        if not versions:
            raise SetupError(
                f"{package} is not offered for {release} by Debian's archive: secure boot "
                "needs the signed shim and GRUB of the guest's release"
            )
        wanted.append((package, versions[0]))
    name = "secure-boot-" + "-".join(v.replace(":", "_").replace("~", "_") for _, v in wanted)
    return archive.unpacked(name) or archive.unpack(wanted, name)


def esp_disk(
    kernel: Path,
    initrd: Path | None,
    cmdline: str,
    suite: str,
    archive: DebianArchive | None = None,
    cache: Path = DEFAULT_CACHE / "secure-boot",
) -> SecureBootDisk:
    """The ESP disk that boots ``kernel`` with ``cmdline`` through shim and GRUB; cached."""
    tree, packages = loaders(suite, archive or DebianArchive())
    key = hashlib.sha256(
        "\n".join(
            [str(kernel.resolve()), str(initrd.resolve() if initrd else ""), cmdline]
            + [f"{p.name}={p.sha256}" for p in packages]
        ).encode()
    ).hexdigest()[:16]
    disk = cache / f"esp-{key}.raw"
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache / f".esp-{key}.lock"):
        if not disk.is_file():
            _build(disk, tree, kernel, initrd, cmdline)
    return SecureBootDisk(disk, packages)


def _build(disk: Path, tree: Path, kernel: Path, initrd: Path | None, cmdline: str) -> None:
    """Build aside, then rename into place: a half-built disk is never found."""
    work = Path(tempfile.mkdtemp(prefix=".esp-", dir=disk.parent))
    try:
        image = work / "esp.raw"
        with image.open("wb") as handle:
            handle.truncate((ESP_MIB + 2) * 1024 * 1024)
        run_step(["sfdisk", "-q", str(image)], stdin=f"label: gpt\nstart={ESP_OFFSET_SECTORS}, "
                 f"type={ESP_TYPE}, name=ESP\n")  # fmt: skip
        run_step(["mkfs.vfat", "-F", "32", "-n", "ESP", "--offset", str(ESP_OFFSET_SECTORS),
              str(image)])  # fmt: skip
        grub_cfg = work / "grub.cfg"
        grub_cfg.write_text(GRUB_CONFIG.format(cmdline=cmdline))
        fat = f"{image}@@{ESP_OFFSET_SECTORS * 512}"
        run_step(["mmd", "-i", fat, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"])
        files = [
            (tree / LOADERS["shim-signed"], "::/EFI/BOOT/BOOTX64.EFI"),
            (tree / LOADERS["shim-helpers-amd64-signed"], "::/EFI/BOOT/mmx64.efi"),
            (tree / LOADERS["grub-efi-amd64-signed"], "::/EFI/BOOT/grubx64.efi"),
            (grub_cfg, "::/EFI/debian/grub.cfg"),
            (kernel, "::/vmlinuz"),
        ]
        files += [(initrd, "::/initrd.img")] if initrd else []
        for source, target in files:
            run_step(["mcopy", "-i", fat, str(source), target])
        os.replace(image, disk)
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()
