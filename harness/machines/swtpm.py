"""A TPM 2.0 for one guest: an ``swtpm socket --tpm2`` process and QEMU's tpm-crb on it.

QEMU's TPM emulator backend talks to swtpm over its control socket, and swtpm
(``--terminate``) ends when that connection closes, so swtpm lives as long as one QEMU: it is
started before each launch (a cold boot, a checkpoint restore, the relaunch that resumes an S4
guest) on the guest's one state directory, which keeps the TPM's permanent state (its seeds,
NV) between launches as a machine's TPM keeps it across power-off. A checkpoint carries the
TPM's whole state: QEMU fetches swtpm's state blobs into the migration stream and gives them
to the new swtpm.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from harness.errors import QemuStartError, SetupError
from harness.process import ChildProcess

SWTPM = "swtpm"
TPM_DEVICE = "tpm-crb"  # the TPM interface the guest sees (a CRB, as on current PCs)
SOCKET_POLL_S = 0.02  # between looks at whether a helper listens yet
PROC_NET_UNIX = "/proc/net/unix"
SO_ACCEPTCON = 0x10000  # a listening socket, in /proc/net/unix's Flags column


def swtpm_argv(binary: str, state_dir: Path, ctrl_socket: Path, log: Path) -> list[str]:
    """swtpm for one QEMU: TPM 2.0, state in ``state_dir``, control on ``ctrl_socket``
    (QEMU's chardev), gone once that QEMU has closed its connection (``--terminate``)."""
    return [
        binary,
        "socket",
        "--tpm2",
        "--tpmstate",
        f"dir={state_dir},mode=0600",
        "--ctrl",
        f"type=unixio,path={ctrl_socket},mode=0600",
        "--log",
        f"file={log},level=1",
        "--terminate",
    ]


def tpm_args(ctrl_socket: Path) -> list[str]:
    """QEMU's arguments for a TPM on the swtpm listening at ``ctrl_socket``."""
    path = str(ctrl_socket).replace(",", ",,")
    return [
        "-chardev",
        f"socket,id=chrtpm,path={path}",
        "-tpmdev",
        "emulator,id=tpm0,chardev=chrtpm",
        "-device",
        f"{TPM_DEVICE},tpmdev=tpm0,id=tpm",
    ]


def swtpm_binary() -> str:
    """The swtpm program; a one-line error naming ./run setup when it is missing."""
    found = shutil.which(SWTPM)
    if found is None:
        raise SetupError("--tpm needs swtpm, which is not installed: run ./run setup")
    return found


class Swtpm:
    """One guest's swtpm process: started before each QEMU launch, stopped with QEMU."""

    def __init__(self, state_dir: Path, ctrl_socket: Path, evidence_dir: Path) -> None:
        self.state_dir = state_dir
        self.ctrl_socket = ctrl_socket
        self._evidence_dir = evidence_dir
        self._process: ChildProcess | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def start(self, timeout: float) -> None:
        """A fresh swtpm on the state directory, once it listens on its control socket
        (QEMU connects at once and refuses to start if nothing listens)."""
        self.stop()
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.ctrl_socket.unlink(missing_ok=True)
        self._evidence_dir.mkdir(parents=True, exist_ok=True)
        argv = swtpm_argv(
            swtpm_binary(), self.state_dir, self.ctrl_socket, self._evidence_dir / "swtpm.log"
        )
        self._process = ChildProcess(argv, self._evidence_dir / "swtpm-output.log")
        try:
            self._process.start()
        except OSError as exc:
            raise QemuStartError(f"cannot run {argv[0]}: {exc}") from exc
        wait_listening(self.ctrl_socket, self._process, timeout, "swtpm")

    def kill(self) -> None:
        """SIGKILL, as a crashed swtpm: the guest's TPM is gone while QEMU runs on."""
        if self._process is not None:
            self._process.kill(grace=0)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process = None
        self.ctrl_socket.unlink(missing_ok=True)


def wait_listening(path: Path, process: ChildProcess, timeout: float, what: str) -> None:
    """Until the unix socket ``path`` listens; QemuStartError with the process's own words if
    it exits first or does not listen within ``timeout``. Read from /proc/net/unix, never by
    connecting: swtpm (``--terminate``) and virtiofsd end when their first client leaves."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running:
            raise QemuStartError(f"{what} exited at once: {process.output_tail(600)}")
        if str(path) in listening_unix_sockets(Path(PROC_NET_UNIX).read_text()):
            return
        time.sleep(SOCKET_POLL_S)
    process.kill()
    raise QemuStartError(f"{what} did not listen on {path} within {timeout:.0f}s")


def listening_unix_sockets(proc_net_unix: str) -> set[str]:
    """The paths of the listening sockets in /proc/net/unix's text (flag __SO_ACCEPTCON)."""
    found = set()
    for line in proc_net_unix.splitlines()[1:]:
        fields = line.split(None, 7)
        if len(fields) == 8 and int(fields[3], 16) & SO_ACCEPTCON:
            found.add(fields[7])
    return found
