"""A libvirtd (and its virtlogd) that the harness starts where no daemon answers, e.g. on a CI
runner without systemd; it runs as the harness's child and is stopped when the harness ends.

A Fedora host with socket activation never gets here: its ``qemu:///system`` answers.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import SetupError
from harness.process import ChildProcess

log = logging.getLogger(__name__)

QEMU_CONF = Path("/etc/libvirt/qemu.conf")
# QEMU runs as root so that it can open the harness's 0700 run directory; libvirt otherwise
# also re-probes QEMU's capabilities on every call when the cache owner does not match.
REQUIRED_SETTINGS = {"user": "root", "group": "root"}
READY_POLL_SECONDS = 0.2  # libvirtd has no readiness notification without systemd


def ensure_qemu_conf(path: Path = QEMU_CONF) -> list[str]:
    """Add ``user = "root"`` / ``group = "root"`` to qemu.conf where unset; the keys added.

    A value set to something else is the host owner's choice and is not overwritten.
    """
    text = path.read_text() if path.is_file() else ""
    added = []
    for key, value in REQUIRED_SETTINGS.items():
        match = re.search(rf'^\s*{key}\s*=\s*"([^"]*)"', text, re.MULTILINE)
        if match and match.group(1) != value:
            raise SetupError(
                f'{path} sets {key} = "{match.group(1)}": the harness needs {key} = "{value}" '
                "for the libvirtd it starts (edit the file or pass --libvirt-uri of a daemon "
                "you run)"
            )
        if not match:
            added.append(f'{key} = "{value}"')
    if added:
        with path.open("a") as out:
            out.write("\n# added by s3s4-harness\n" + "\n".join(added) + "\n")
    return added


class LibvirtDaemon:
    """virtlogd then libvirtd, in the foreground as children of the harness (so they die with
    it), with their output in ``log_dir``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._processes: list[ChildProcess] = []

    def start(self, ready: Callable[[], bool], timeout: float) -> float:
        """Start both daemons and wait until ``ready()`` holds; the seconds it took."""
        for tool in ("virtlogd", "libvirtd"):
            if shutil.which(tool) is None:
                raise SetupError(
                    f"{tool} not found: run ./run setup (installs libvirt-daemon-system)"
                )
        ensure_qemu_conf()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for argv in (["virtlogd"], ["libvirtd"]):
            process = ChildProcess(argv, self.log_dir / f"{argv[0]}.log")
            process.start()
            self._processes.append(process)
        libvirtd = self._processes[-1]
        deadline = started + timeout
        while not ready():
            if not libvirtd.running:
                tail = libvirtd.output_tail(400).replace("\n", " | ")
                self.stop()
                raise SetupError(f"libvirtd exited at start: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise SetupError(
                    f"libvirtd did not answer within {timeout:.0f}s; "
                    f"see {self.log_dir / 'libvirtd.log'}"
                )
            time.sleep(READY_POLL_SECONDS)
        return time.monotonic() - started

    def stop(self) -> None:
        """libvirtd first (it may still talk to virtlogd), then virtlogd."""
        for process in reversed(self._processes):
            process.kill(grace=15.0)
        self._processes.clear()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]


def installed() -> bool:
    return shutil.which("libvirtd") is not None


__all__ = ["LibvirtDaemon", "ensure_qemu_conf", "installed"]
