"""Everything one pytest run shares: the image, the cell, the async loop, the ssh key, guests."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.accel import resolve_accel
from harness.aio import LoopThread
from harness.cell import OVMF_CODE, OVMF_VARS, Cell, ovmf_version, qemu_version, seabios_version
from harness.errors import SetupError
from harness.image import GuestImage, ImageCache, Progress, Recipe
from harness.libvirt.host import DEFAULT_URI, LibvirtHost
from harness.libvirt.machine import LibvirtMachine
from harness.machine import Machine
from harness.qemu.cmdline import Firmware, QemuConfig
from harness.qemu.machine import QemuMachine
from harness.runtime import make_run_dir
from harness.ssh import SshKey
from harness.timeouts import Timeouts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """The user's choices, from pytest options or the command line."""

    accel: str = "auto"
    qemu_binary: str = "qemu-system-x86_64"
    machine_type: str = "pc"
    firmware: str = "seabios"
    memory_mib: int = 1024
    cpus: int = 2
    recipe: str = "debian"
    kernel_package: str | None = None
    timeout_scale: float = 1.0
    backend: str = "qemu"  # qemu (direct) or libvirt
    libvirt_uri: str = DEFAULT_URI


BACKENDS = ("qemu", "libvirt")


class HarnessSession:
    """Owns every process and directory it creates; ``close`` releases all of them."""

    def __init__(self, settings: Settings, evidence_root: Path, progress: Progress) -> None:
        self.settings = settings
        self.evidence_root = evidence_root
        self._progress = progress
        self._image: GuestImage | None = None
        self._cell: Cell | None = None
        self._runner: LoopThread | None = None
        self._run_dir: Path | None = None
        self._ssh_key: SshKey | None = None
        self._machines: dict[str, Machine] = {}
        self._libvirt: LibvirtHost | None = None
        self.timeouts = Timeouts().scaled(settings.timeout_scale)

    @property
    def image(self) -> GuestImage:
        if self._image is None:
            recipe = Recipe.load(self.settings.recipe)
            self._image = ImageCache().ensure(recipe, self.settings.kernel_package, self._progress)
        return self._image

    @property
    def resolved_cell(self) -> Cell | None:
        """The cell if something already asked for it (no image build as a side effect)."""
        return self._cell

    @property
    def cell(self) -> Cell:
        """The default combination; resolving it builds the image if it is not cached."""
        if self._cell is None:
            s = self.settings
            firmware = (
                "seabios" + seabios_version()
                if s.firmware == "seabios"
                else "ovmf" + ovmf_version()
            )
            self._cell = Cell(
                kernel=self.image.kernel_release,
                qemu=qemu_version(s.qemu_binary),
                firmware=firmware,
                machine=s.machine_type,
                accel=resolve_accel(s.accel),
                backend=s.backend,
            )
        return self._cell

    def machine(
        self, name: str = "default", extra_args: tuple[str, ...] = (), backend: str | None = None
    ) -> Machine:
        """A guest of the default cell, created once per name and backend (default: the
        session's); not booted until first used."""
        backend = backend or self.settings.backend
        if backend not in BACKENDS:
            raise SetupError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
        key = f"{self.cell.id}/{backend}/{name}"
        if key in self._machines:
            return self._machines[key]
        run_dir = self._ensure_run_dir() / f"{backend}-{name}"
        run_dir.mkdir(mode=0o700)
        config = QemuConfig(
            binary=self.settings.qemu_binary,
            kernel=self.image.kernel,
            initrd=self.image.initrd,
            append=self.image.cmdline,
            accel=self.cell.accel,
            machine=self.settings.machine_type,
            memory_mib=self.settings.memory_mib,
            cpus=self.settings.cpus,
            firmware=self._firmware(run_dir),
            extra_args=extra_args,
        )
        evidence = (
            self.evidence_root / self.cell.id / (name if backend == "qemu" else f"{backend}-{name}")
        )
        shared = (name, self.image, config, run_dir, evidence, self._key(), self._loop())
        machine: Machine
        if backend == "libvirt":
            machine = LibvirtMachine(*shared, self.libvirt_host(), self.timeouts)
        else:
            machine = QemuMachine(*shared, self.timeouts)
        self._machines[key] = machine
        return machine

    def libvirt_host(self) -> LibvirtHost:
        """The libvirt daemon the session talks to; started by the harness if none answers.

        Connected at once, from the calling (main) thread: a daemon the harness starts dies
        with the thread that started it (PR_SET_PDEATHSIG), so never from a worker thread.
        """
        if self._libvirt is None:
            host = LibvirtHost(
                self.settings.libvirt_uri,
                self.evidence_root / "libvirtd",
                start_timeout=self.timeouts.agent,
            )
            host.conn  # noqa: B018 - opening is the point
            self._libvirt = host
        return self._libvirt

    def _firmware(self, run_dir: Path) -> Firmware:
        if self.settings.firmware == "seabios":
            return Firmware("seabios")
        if not OVMF_CODE.is_file() or not OVMF_VARS.is_file():
            raise SetupError(f"OVMF not found at {OVMF_CODE}: run ./run setup (installs ovmf)")
        vars_copy = run_dir / "OVMF_VARS.fd"
        shutil.copyfile(OVMF_VARS, vars_copy)
        return Firmware("ovmf", ovmf_code=OVMF_CODE, ovmf_vars=vars_copy)

    def _ensure_run_dir(self) -> Path:
        if self._run_dir is None:
            self._run_dir = make_run_dir()
        return self._run_dir

    def _key(self) -> SshKey:
        if self._ssh_key is None:
            self._ssh_key = SshKey.generate(self._ensure_run_dir())
        return self._ssh_key

    def _loop(self) -> LoopThread:
        if self._runner is None:
            self._runner = LoopThread()
        return self._runner

    def close(self) -> None:
        for machine in self._machines.values():
            try:
                if isinstance(machine, LibvirtMachine):
                    machine.remove()
                else:
                    machine.stop()
            except Exception:  # keep stopping the others
                log.exception("stopping %s", machine.name)
        self._machines.clear()
        if self._libvirt is not None:
            self._libvirt.close()
            self._libvirt = None
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None
