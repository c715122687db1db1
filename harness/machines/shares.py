"""A host folder shared into one guest: virtiofs (virtiofsd, vhost-user-fs) or 9p (QEMU's own
virtio-9p server).

virtiofsd is found through QEMU's vhost-user descriptors (``/usr/share/qemu/vhost-user/*.json``,
the interface libvirt uses: ``"type": "fs"`` and the ``binary``), so that QEMU 7.2's own
``/usr/lib/qemu/virtiofsd`` and a distribution's separate virtiofsd package are found alike.
vhost-user needs the guest's RAM shared with virtiofsd: the guest's memory is a shared memfd.
Like swtpm, virtiofsd serves one QEMU and ends with it: it is started before each launch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness.errors import QemuStartError, SetupError
from harness.machines.swtpm import wait_listening
from harness.process import ChildProcess

SHARE_TAG = "s3s4share"  # the mount tag the guest mounts the share by
VHOST_USER_DIRS = (Path("/etc/qemu/vhost-user"), Path("/usr/share/qemu/vhost-user"))
SHARE_MEMORY = "share-mem"  # the memory backend's id


def virtiofsd_binary(dirs: tuple[Path, ...] = VHOST_USER_DIRS) -> str:
    """The virtiofsd of the first vhost-user descriptor of type ``fs`` whose binary exists
    (descriptors sorted by file name, /etc's before /usr's, as QEMU's spec orders them)."""
    descriptors = sorted(
        (p for d in dirs if d.is_dir() for p in d.glob("*.json")), key=lambda p: p.name
    )
    for descriptor in descriptors:
        try:
            data = json.loads(descriptor.read_text())
        except (OSError, ValueError):
            continue
        binary = data.get("binary") if isinstance(data, dict) else None
        if data.get("type") == "fs" and binary and Path(binary).is_file():
            return str(binary)
    found = shutil.which("virtiofsd")
    if found is None:
        raise SetupError(
            "--share virtiofs needs virtiofsd (no vhost-user descriptor of type fs names one, "
            "and none is on PATH): run ./run setup"
        )
    return found


def virtiofsd_argv(binary: str, socket_path: Path, shared_dir: Path) -> list[str]:
    """virtiofsd serving ``shared_dir`` on ``socket_path``; both the C (QEMU 7.2's) and the
    Rust virtiofsd take these (``-o source=`` is the Rust one's compatible spelling)."""
    return [
        binary,
        f"--socket-path={socket_path}",
        "-o",
        f"source={shared_dir}",
        "-o",
        "cache=auto",
    ]


def share_args(kind: str, socket_path: Path, shared_dir: Path, memory_mib: int) -> list[str]:
    """QEMU's arguments for the share of ``kind``: the device with mount tag SHARE_TAG and, for
    virtiofs, the guest's RAM as a shared memfd (vhost-user maps it into virtiofsd)."""
    if kind == "virtiofs":
        sock = str(socket_path).replace(",", ",,")
        return [
            "-object",
            f"memory-backend-memfd,id={SHARE_MEMORY},size={memory_mib}M,share=on",
            "-machine",
            f"memory-backend={SHARE_MEMORY}",
            "-chardev",
            f"socket,id=char-share,path={sock}",
            "-device",
            f"vhost-user-fs-pci,chardev=char-share,tag={SHARE_TAG},id=share",
        ]
    if kind == "9p":
        path = str(shared_dir).replace(",", ",,")
        return [
            "-fsdev",
            f"local,id=fs-share,path={path},security_model=mapped-xattr",
            "-device",
            f"virtio-9p-pci,fsdev=fs-share,mount_tag={SHARE_TAG},id=share",
        ]
    raise ValueError(f"unknown share {kind!r}: use virtiofs or 9p")


class Virtiofsd:
    """One guest's virtiofsd: started before each QEMU launch, ends with that QEMU."""

    def __init__(self, socket_path: Path, shared_dir: Path, evidence_dir: Path) -> None:
        self.socket_path = socket_path
        self.shared_dir = shared_dir
        self._evidence_dir = evidence_dir
        self._process: ChildProcess | None = None

    def start(self, timeout: float) -> None:
        self.stop()
        self.socket_path.unlink(missing_ok=True)
        self._evidence_dir.mkdir(parents=True, exist_ok=True)
        argv = virtiofsd_argv(virtiofsd_binary(), self.socket_path, self.shared_dir)
        self._process = ChildProcess(argv, self._evidence_dir / "virtiofsd-output.log")
        try:
            self._process.start()
        except OSError as exc:
            raise QemuStartError(f"cannot run {argv[0]}: {exc}") from exc
        wait_listening(self.socket_path, self._process, timeout, "virtiofsd")

    def stop(self) -> None:
        """SIGTERM (SIGKILL after a grace): as an administrator stops it."""
        if self._process is not None:
            self._process.kill()
            self._process = None
        self.socket_path.unlink(missing_ok=True)
