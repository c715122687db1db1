"""A lock one harness process at a time holds on this host, for an action that reaches beyond
its own guests: libvirt-guests ``stop`` and ``start`` act on every running domain of a daemon.

The lock file lives in /run, which only root can write (the service needs root anyway, for its
private mount namespace), so no other user can make, replace or hold it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import SetupError, StageTimeout

GUESTS_SERVICE_LOCK = Path("/run/s3s4-harness-libvirt-guests.lock")
POLL_SECONDS = 0.2  # flock has no timeout of its own


@contextmanager
def host_lock(path: Path, timeout: float, what: str) -> Iterator[None]:
    """Hold ``path``'s exclusive flock while the block runs; waits at most ``timeout`` s for
    another holder (``what`` names the action in the error). The kernel drops the lock when the
    holder dies, so a killed run never leaves it taken."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SetupError(f"{what}: cannot open the host-wide lock {path}: {exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            if time.monotonic() > deadline:
                raise StageTimeout(f"another run to release the {what} lock {path}", timeout)
            time.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(fd)


__all__ = ["GUESTS_SERVICE_LOCK", "host_lock"]
