"""Private per-run directories for sockets, disks and keys; stale ones are swept on start.

The run root holds every run's QMP sockets, disks and ssh keys, and the harness deletes what
it takes for dead runs' entries there: a root another user could make, swap or write into
would hand them root's sweep and root's QEMU. So the root is checked before every use: a
symbolic link, a directory owned by another user, or one writable by group or others is
refused. As root, with no TMPDIR given, it lives in /run (root's own), else under the
temporary directory (TMPDIR: also where to point it at a larger or shorter-named disk).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from harness.errors import SetupError
from harness.process import process_alive

ROOT_NAME = "s3s4-harness"
ROOT_ONLY_PARENT = Path("/run")  # root-owned and not world-writable: nobody else can make it
AF_UNIX_PATH_MAX = 107  # sun_path is 108 bytes with its NUL
# The longest socket path below a run directory: <pid>-<8 random>/libvirt-NNN/console.sock.
LONGEST_SOCKET_TAIL = "/4194304-abcdefgh/libvirt-999/console.sock"


def runtime_root() -> Path:
    """``$TMPDIR/s3s4-harness`` when TMPDIR is set; as root ``/run/s3s4-harness``; else the
    temporary directory's ``s3s4-harness``."""
    if not os.environ.get("TMPDIR") and os.geteuid() == 0 and ROOT_ONLY_PARENT.is_dir():
        return ROOT_ONLY_PARENT / ROOT_NAME
    return Path(tempfile.gettempdir()) / ROOT_NAME


RUNTIME_ROOT = runtime_root()


def check_root(root: Path) -> None:
    """Refuse a run root that another user could have made or can change (see the module)."""
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return
    fix = f"remove {root} (or set TMPDIR to a directory of your own)"
    if stat.S_ISLNK(info.st_mode):
        raise SetupError(f"run root {root} is a symbolic link, not a directory: {fix}")
    if not stat.S_ISDIR(info.st_mode):
        raise SetupError(f"run root {root} is not a directory: {fix}")
    if info.st_uid != os.geteuid():
        raise SetupError(
            f"run root {root} belongs to uid {info.st_uid}, not to this user (uid "
            f"{os.geteuid()}): {fix}"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SetupError(
            f"run root {root} is writable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): chmod 0700 {root}, or {fix}"
        )


def ensure_root(root: Path) -> None:
    """The run root, made 0700 if missing, and checked."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # an earlier run's, or someone else's
        root.mkdir(mode=0o700)
    check_root(root)


def sweep_stale(root: Path = RUNTIME_ROOT) -> list[Path]:
    """Remove run directories whose owning harness process no longer exists."""
    removed: list[Path] = []
    check_root(root)
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


def check_run_root(root: Path = RUNTIME_ROOT) -> None:
    """At the start of a run, before anything is built or booted: the root fits the guests'
    sockets, and is one this user alone controls (or is not there yet)."""
    check_socket_room(root)
    check_root(root)


def make_run_dir(root: Path = RUNTIME_ROOT) -> Path:
    """A fresh 0700 directory named after this process, so a sweep knows its owner."""
    check_socket_room(root)
    ensure_root(root)
    sweep_stale(root)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
