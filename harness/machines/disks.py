"""A guest's own disks: a qcow2 overlay on the read-only base image, a fresh swap disk (the
hibernation image goes there) and a scratch disk for the block checks."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from harness.errors import SetupError

SCRATCH_DISK_MIB = 64  # the scratch disk the block checks write to (the guest's /dev/vdc)
SWAP_HEADROOM_MIB = 256  # swap beyond the guest's RAM, so an image always fits


def create_overlay(
    base: Path,
    overlay: Path,
    qemu_img: Sequence[str] = ("qemu-img",),
    backing_format: str = "qcow2",
) -> None:
    """A qcow2 overlay backed by ``base``; the base itself is never written. ``qemu_img``: the
    argv of the qemu-img to run (that of the QEMU under test)."""
    overlay.unlink(missing_ok=True)
    create = [*qemu_img, "create", "-q", "-f", "qcow2", "-b", str(base), "-F", backing_format]
    run_tool([*create, str(overlay)])


def create_swap(path: Path, memory_mib: int, fmt: str = "raw") -> None:
    """A freshly formatted swap disk as large as RAM plus headroom (destroys any S4 image)."""
    raw = path if fmt == "raw" else path.with_name(path.name + ".raw")
    path.unlink(missing_ok=True)
    raw.unlink(missing_ok=True)
    with raw.open("wb") as handle:
        handle.truncate((memory_mib + SWAP_HEADROOM_MIB) * 1024 * 1024)
    raw.chmod(0o600)
    run_tool(["mkswap", "-q", str(raw)])
    if fmt != "raw":
        run_tool(["qemu-img", "convert", "-q", "-O", fmt, str(raw), str(path)])
        raw.unlink()


def create_scratch(path: Path, fmt: str = "raw", size_mib: int = SCRATCH_DISK_MIB) -> None:
    path.unlink(missing_ok=True)
    if fmt == "raw":
        with path.open("wb") as handle:
            handle.truncate(size_mib * 1024 * 1024)
        return
    run_tool(["qemu-img", "create", "-q", "-f", fmt, str(path), f"{size_mib}M"])


def run_tool(argv: list[str]) -> str:
    """Run a disk tool; a missing tool or a failure is a one-line SetupError."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    except FileNotFoundError as exc:
        raise SetupError(f"{argv[0]} not found: run ./run setup") from exc
    if result.returncode != 0:
        raise SetupError(f"{shlex.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def copy_sparse(source: Path, target: Path) -> None:
    """A copy that keeps holes (a swap disk is mostly empty) and shares blocks where the
    filesystem can (reflink)."""
    target.unlink(missing_ok=True)
    run_tool(["cp", "--sparse=always", "--reflink=auto", str(source), str(target)])
