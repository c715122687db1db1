"""Private per-run directories for sockets, disks and keys; stale ones are swept on start."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from harness.process import process_alive

RUNTIME_ROOT = Path(tempfile.gettempdir()) / "s3s4-harness"


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


def make_run_dir(root: Path = RUNTIME_ROOT) -> Path:
    """A fresh 0700 directory named after this process, so a sweep knows its owner."""
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    sweep_stale(root)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
