"""A combination of components under test (guest kernel, QEMU, firmware, machine, accel).

The id is stable and readable (``k6.1.0-56-q7.2.22-seabios1.16.2-pc-tcg``) and is known at
collection time from cheap probes of the components; the versions the running system reports
(QMP query-version, guest uname -r and DMI bios_version) go into the report beside it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError

SEABIOS_SEARCH = (Path("/usr/share/seabios/bios-256k.bin"), Path("/usr/share/qemu/bios-256k.bin"))
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


@dataclass(frozen=True)
class Cell:
    kernel: str
    qemu: str
    firmware: str
    machine: str
    accel: str
    backend: str = "qemu"
    libvirt: str = ""  # a libvirt stack's version (e.g. 12.8.0); "" for the host's libvirt
    guest: str = ""  # the guest's Debian suite (e.g. sid) where not the default guest's

    @property
    def id(self) -> str:
        kernel = "-".join(filter(None, (self.kernel.removesuffix("-amd64"), self.guest)))
        base = f"k{kernel}-q{self.qemu}-{self.firmware}-{self.machine}-{self.accel}"
        return base if self.backend == "qemu" else f"{base}-{self.backend}{self.libvirt}"


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


def seabios_version(path: Path | None = None) -> str:
    """The version string SeaBIOS embeds (it is also what the guest's DMI reports)."""
    candidates = [path] if path else list(SEABIOS_SEARCH)
    for candidate in candidates:
        if candidate.is_file():
            match = re.search(rb"\x00(\d+\.\d+\.\d+)[-\w.~+]*\x00", candidate.read_bytes())
            if match:
                return match.group(1).decode()
            return "unknown"
    raise SetupError("SeaBIOS not found: run ./run setup (installs seabios) or pass --bios PATH")


def ovmf_version(code: Path = OVMF_CODE) -> str:
    """OVMF builds carry no plain version string; a short content hash identifies the build."""
    if not code.is_file():
        raise SetupError(f"OVMF not found at {code}: run ./run setup (installs ovmf)")
    return hashlib.sha256(code.read_bytes()).hexdigest()[:8]
