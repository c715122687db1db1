"""A combination of components under test (guest kernel, QEMU, firmware, machine, accel).

The id is stable and readable (``k6.1.0-56-q7.2.22-seabios1.16.2-pc-tcg``) and is known at
collection time from cheap probes of the components; the versions the running system reports
(QMP query-version, guest uname -r and DMI bios_version) go into the report beside it. The
SeaBIOS a QEMU loads is the one QEMU finds, so it is looked up in QEMU's own data directories
(``-L help``, a wrapper's own ``-L`` included); should the guest's DMI still name another
version, the reported cell follows the guest and says why (``follow_guest_firmware``).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import SetupError

SEABIOS_SEARCH = (Path("/usr/share/seabios/bios-256k.bin"), Path("/usr/share/qemu/bios-256k.bin"))
SEABIOS_FILE = "bios-256k.bin"  # what the pc and q35 machines load when not given -bios
VERSION = re.compile(r"(\d+\.\d+\.\d+)")


@dataclass(frozen=True)
class PackageUsed:
    """A Debian package a cell ran from: its component, exact version and ``.deb``'s sha256."""

    component: str
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class Cell:
    kernel: str
    qemu: str
    firmware: str
    machine: str
    accel: str
    backend: str = "qemu"
    # What the id was found from; not part of the combination's identity.
    packages: tuple[PackageUsed, ...] = field(default=(), compare=False)
    firmware_file: str = field(default="", compare=False)
    firmware_note: str = field(default="", compare=False)  # why the id differs from the file
    libvirt: str = ""  # a libvirt stack's version (e.g. 12.8.0); "" for the host's libvirt
    guest: str = ""  # the guest's Debian suite (e.g. sid) where not the default guest's
    profile: str = ""  # the guest's profile (e.g. swapfile-ext4) where not the default layout
    devices: str = ""  # the device profile (e.g. nic-e1000e-disk-nvme) where not virtio's

    @property
    def id(self) -> str:
        parts = (self.kernel.removesuffix("-amd64"), self.guest, self.profile)
        kernel = "-".join(filter(None, parts))
        base = f"k{kernel}-q{self.qemu}-{self.firmware}-{self.machine}-{self.accel}"
        base += f"-{self.devices}" if self.devices else ""
        # A libvirt stack is part of the whole cell (its direct-QEMU cases run the stack's
        # QEMU too); the host's libvirt is named only where the cell runs through it.
        if self.libvirt:
            return f"{base}-libvirt{self.libvirt}"
        return base if self.backend == "qemu" else f"{base}-{self.backend}"


def qemu_version(binary: str) -> str:
    """``7.2.22`` from ``qemu-system-x86_64 --version``; a clear error if it cannot run."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except FileNotFoundError as exc:
        raise SetupError(
            f"QEMU binary {binary!r} not found: run ./run setup "
            "(installs qemu-system-x86) or pass --qemu PATH|VERSION"
        ) from exc
    match = re.search(r"version (\d+\.\d+\.\d+)", out)
    if not match:
        raise SetupError(f"{binary} --version printed no version: {out.strip()[:200]!r}")
    return match.group(1)


def qemu_bios(binary: str) -> Path | None:
    """The ``bios-256k.bin`` QEMU loads without ``-bios``: the first of its data directories
    (``-L help``: those given first, a wrapper's included, then its compiled-in ones) that
    holds one; None if QEMU cannot list them."""
    try:
        listing = subprocess.run(
            [binary, "-L", "help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listing.returncode != 0:
        return None
    for line in listing.stdout.splitlines():
        candidate = Path(line.strip()) / SEABIOS_FILE
        if line.strip() and candidate.is_file():
            return candidate.resolve()
    return None


def seabios_version(path: Path | None = None) -> str:
    """The version string SeaBIOS embeds (it is also what the guest's DMI reports)."""
    candidates = [path] if path else list(SEABIOS_SEARCH)
    for candidate in candidates:
        if candidate.is_file():
            # NUL-terminated; before it a NUL, or the NOP padding (0x90) of 1.17's build
            match = re.search(rb"[\x00\x90](\d+\.\d+\.\d+)[-\w.~+]*\x00", candidate.read_bytes())
            if match:
                return match.group(1).decode()
            return "unknown"
    raise SetupError("SeaBIOS not found: run ./run setup (installs seabios) or pass --bios PATH")


def ovmf_version(code: Path, package_version: str = "") -> str:
    """OVMF's upstream version where its package names one (``2022.11`` of Debian's
    ``2022.11-6+deb12u2``); else a short content hash, as OVMF builds carry no plain version
    string."""
    if not code.is_file():
        raise SetupError(f"OVMF not found at {code}: run ./run setup (installs ovmf)")
    if package_version:
        return re.split(r"[-+~]", package_version.split(":", 1)[-1], maxsplit=1)[0]
    return hashlib.sha256(code.read_bytes()).hexdigest()[:8]


def follow_guest_firmware(cell: Cell, records: list[dict[str, Any]]) -> Cell:
    """``cell`` as its guests saw it: where every guest's DMI ``bios_version`` names one SeaBIOS
    version and the file the id was read from another, the firmware (and so the id) follows
    the guest, the note says why, and the records of the cell's tests take the new id."""
    if not cell.firmware.startswith("seabios"):
        return cell
    seen = set(_bios_versions(records))
    versions = {match.group(1) for text in seen if (match := VERSION.search(text))}
    declared = cell.firmware.removeprefix("seabios")
    if len(versions) != 1 or declared in versions:
        return cell
    (version,) = versions
    followed = replace(
        cell,
        firmware=f"seabios{version}",
        firmware_note=(
            f"{cell.firmware_file or 'the firmware file'} says SeaBIOS {declared}, the guest's "
            f"DMI bios_version said {' / '.join(sorted(seen))}: the id follows the guest "
            f"(was {cell.id})"
        ),
    )
    for record in records:
        if record.get("cell") == cell.id:
            record["cell"] = followed.id
    return followed


def _bios_versions(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    for record in records:
        for series in record.get("series", []):
            for cycle in series.get("cycles", []):
                version = (cycle.get("combination") or {}).get("bios_version")
                if version:
                    yield str(version)
