"""Private per-run directories for sockets, disks and keys; stale ones are swept on start."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import SetupError
from harness.process import process_alive

RUNTIME_ROOT = Path(tempfile.gettempdir()) / "s3s4-harness"
AF_UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its NUL
# The longest socket path below a run directory: <pid>-<8 random>/libvirt-NNN/console.sock.
LONGEST_SOCKET_TAIL = "/4194304-abcdefgh/libvirt-999/console.sock"


def sweep_stale(root: Path = RUNTIME_ROOT) -> list[Path]:
    """Remove run directories whose owning harness process no longer exists."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        pid_text = entry.name.split("-", 1)[0]
        if pid_text.isdigit() and not process_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def check_socket_room(root: Path = RUNTIME_ROOT) -> None:
    """Sockets live in run directories under ``root``; AF_UNIX paths have 108 bytes."""
    longest = len(str(root)) + len(LONGEST_SOCKET_TAIL)
    if longest > AF_UNIX_PATH_MAX:
        raise SetupError(
            f"{root} is too long a path for the guests' sockets ({longest} of at most "
            f"{AF_UNIX_PATH_MAX} bytes): set TMPDIR to a shorter directory"
        )


def make_run_dir(root: Path = RUNTIME_ROOT) -> Path:
    """A fresh 0700 directory named after this process, so a sweep knows its owner."""
    check_socket_room(root)
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    sweep_stale(root)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
