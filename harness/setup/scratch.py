"""Work directories of an image build: removed without ever crossing into a mount, and the
leftovers of builds whose process is gone swept.

A build in mmdebstrap's root mode mounts the host's /dev, /dev/shm, /proc and /sys below its
work directory while it runs; a build killed outright leaves them mounted. A plain recursive
delete would then empty the host's /dev/shm. So a work directory is deleted only after
/proc/self/mountinfo shows nothing mounted below it (what is, is unmounted first; what cannot
be, keeps the directory), and the delete itself never descends into another file system.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
from pathlib import Path

from harness.errors import SetupError
from harness.process import process_alive

log = logging.getLogger(__name__)

MOUNTINFO = Path("/proc/self/mountinfo")
UMOUNT_TIMEOUT_S = 30.0
BUILD_PREFIX = ".build-"
BUILD_PID = re.compile(r"-(\d+)\Z")  # a work directory's name ends with its build's pid


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(directory: Path, mountinfo: Path = MOUNTINFO) -> list[Path]:
    """Mount points at or below ``directory`` in this mount namespace, deepest first."""
    top = os.path.realpath(directory)
    found = []
    for line in mountinfo.read_text().splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            point = _unescape(fields[4])
            if point == top or point.startswith(top.rstrip("/") + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_under(directory: Path) -> list[Path]:
    """Unmount (lazily: a busy mount is detached at once) everything below ``directory``;
    what is still mounted afterwards."""
    for point in mounts_under(directory):
        try:
            subprocess.run(
                ["umount", "--lazy", str(point)],
                capture_output=True,
                timeout=UMOUNT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("umount %s: %s", point, exc)
    return mounts_under(directory)


def remove_tree(top: Path) -> None:
    """Delete ``top`` and what is below it, on its own file system only: a directory of
    another file system (a mount point) is left, and named in the SetupError raised."""
    try:
        device = os.lstat(top).st_dev
    except FileNotFoundError:
        return
    kept = _remove_below(top, device)
    if kept:
        raise SetupError(
            f"{top} not fully removed: {', '.join(map(str, kept[:3]))} on another file "
            f"system (a mount): unmount it, then delete {top}"
        )
    top.rmdir()


def _remove_below(directory: Path, device: int) -> list[Path]:
    kept: list[Path] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            path = Path(entry.path)
            info = entry.stat(follow_symlinks=False)
            if info.st_dev != device:
                kept.append(path)  # a mount point (a bind-mounted file is one too)
            elif not stat.S_ISDIR(info.st_mode):
                path.unlink()
            else:
                below = _remove_below(path, device)
                if below:
                    kept += below
                else:
                    path.rmdir()
    return kept


def remove_work_dir(work: Path) -> None:
    """Remove a build's work directory: its mounts first, never the host's files through
    them (see the module)."""
    if not work.exists():
        return
    still = unmount_under(work)
    if still:
        raise SetupError(
            f"{work} not removed: {still[0]} is still mounted there; unmount it "
            f"(umount --recursive {still[0]}), then delete {work}"
        )
    remove_tree(work)


def sweep_dead_builds(root: Path) -> list[Path]:
    """Remove ``.build-*`` work directories whose build process is gone; the ones removed. A
    leftover that cannot be removed safely is kept and logged."""
    removed = []
    for entry in sorted(root.glob(f"{BUILD_PREFIX}*")) if root.is_dir() else []:
        match = BUILD_PID.search(entry.name)
        if match is None or process_alive(int(match.group(1))) or entry.is_symlink():
            continue
        try:
            remove_work_dir(entry)
        except (SetupError, OSError) as exc:
            log.warning("leftover of a dead image build kept: %s", exc)
            continue
        removed.append(entry)
    return removed
