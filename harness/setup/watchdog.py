"""A watchdog process that outlives the harness only to clean up after it.

QEMU children of the harness die with it (PR_SET_PDEATHSIG), but a libvirt domain's QEMU is
libvirtd's, daemonised: when a harness is killed outright (SIGKILL, OOM) its libvirtd dies
with it and the domain's QEMU runs on. The watchdog holds the read end of a pipe whose write
end only the harness has; end of file means the harness is gone. Unless the harness said it
cleaned up, the watchdog then kills every process whose command line names the harness's run
directory (each guest's sockets and disks live there) and removes the directory.

Run as ``python -m harness.setup.watchdog RUN_DIR``; started by ``Watchdog.start``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

CLEAN_EXIT = b"clean\n"


class Watchdog:
    """The harness's end: start once per run directory, ``stop`` after a clean shutdown."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "harness.setup.watchdog", str(self.run_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # neither the terminal's Ctrl-C nor the harness's group
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Tell the watchdog the harness cleaned up after itself; it exits without acting."""
        if self._popen is None or self._popen.stdin is None:
            return
        try:
            self._popen.stdin.write(CLEAN_EXIT)
            self._popen.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._popen.kill()
        self._popen = None


def processes_naming(path: Path) -> list[int]:
    """Processes (other than this one) whose command line contains ``path``."""
    needle = str(path).rstrip("/").encode() + b"/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def clean_up(run_dir: Path) -> list[int]:
    """SIGKILL what still runs from ``run_dir``, then remove it; the pids killed."""
    killed = []
    for pid in processes_naming(run_dir):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    shutil.rmtree(run_dir, ignore_errors=True)
    return killed


def main(argv: list[str]) -> int:
    run_dir = Path(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only end of file decides
    said = sys.stdin.buffer.read()
    if said != CLEAN_EXIT:
        clean_up(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
