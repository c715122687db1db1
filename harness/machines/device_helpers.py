"""The host processes and folders behind a guest's devices (its TPM's swtpm, its share's
virtiofsd and folder), started before each QEMU launch and stopped with it, and the faults
that act on them. Only the direct QEMU backend has them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError
from harness.machines.devices import DeviceProfile
from harness.machines.shares import Virtiofsd, share_args
from harness.machines.swtpm import TPM_DEVICE, Swtpm, tpm_args

# What QEMU prints when a helper-backed device loses its helper, by device.
TPM_BACKEND_WORDS = "tpm-emulator:"
VIRTIOFS_BACKEND_WORDS = ("vhost-user", "vhost_user", "vhost-fs", "vhost ")


@dataclass(frozen=True)
class HelperPaths:
    """Where one guest's helpers keep their sockets and state, under its run directory
    (short names: a socket path must fit AF_UNIX's 108 bytes)."""

    tpm_state: Path
    tpm_socket: Path
    share_socket: Path
    share_dir: Path

    @classmethod
    def under(cls, run_dir: Path) -> HelperPaths:
        return cls(run_dir / "tpm", run_dir / "tpm.sock", run_dir / "fs.sock", run_dir / "share")


def helper_args(devices: DeviceProfile, paths: HelperPaths, memory_mib: int) -> list[str]:
    """QEMU's arguments for the profile's TPM and share (none by default)."""
    args = tpm_args(paths.tpm_socket) if devices.tpm else []
    if devices.share:
        args += share_args(devices.share, paths.share_socket, paths.share_dir, memory_mib)
    return args


def backend_failure(devices: DeviceProfile, qemu_output: str) -> str:
    """The device whose host-side helper QEMU's own words (``qemu_output``) blame, named with
    those words; "" when they blame none of the profile's."""
    lines = [line.strip() for line in qemu_output.splitlines() if line.strip()]
    if devices.tpm:
        said = [line for line in lines if TPM_BACKEND_WORDS in line]
        if said:
            return f"the TPM ({TPM_DEVICE} on swtpm) lost its backend: {said[-1]}"
    if devices.share == "virtiofs":
        said = [line for line in lines if any(w in line for w in VIRTIOFS_BACKEND_WORDS)]
        if said:
            return f"the virtiofs share (vhost-user-fs on virtiofsd) lost its backend: {said[-1]}"
    return ""


class DeviceHelpers:
    """One guest's helper processes and shared folder."""

    def __init__(self, devices: DeviceProfile, paths: HelperPaths, evidence_dir: Path) -> None:
        self.devices = devices
        self.paths = paths
        self._swtpm = (
            Swtpm(paths.tpm_state, paths.tpm_socket, evidence_dir) if devices.tpm else None
        )
        self._virtiofsd = (
            Virtiofsd(paths.share_socket, paths.share_dir, evidence_dir)
            if devices.share == "virtiofs"
            else None
        )

    def start(self, timeout: float) -> None:
        """Before QEMU starts: the shared folder made, each helper listening."""
        if self.devices.share:
            self.paths.share_dir.mkdir(mode=0o700, exist_ok=True)
        try:
            if self._swtpm is not None:
                self._swtpm.start(timeout)
            if self._virtiofsd is not None:
                self._virtiofsd.start(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for helper in (self._swtpm, self._virtiofsd):
            if helper is not None:
                helper.stop()

    def reset_state(self) -> None:
        """A new guest's TPM (no state) and an empty shared folder: before a cold boot."""
        shutil.rmtree(self.paths.tpm_state, ignore_errors=True)
        shutil.rmtree(self.paths.share_dir, ignore_errors=True)

    # -- faults ------------------------------------------------------------------------------

    def kill_swtpm(self) -> None:
        if self._swtpm is None:
            raise SetupError("this fault kills the guest's swtpm: give the guest one (--tpm)")
        self._swtpm.kill()
