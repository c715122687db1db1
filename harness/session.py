"""Everything one pytest run shares: the image, the cell, the async loop, the ssh key, guests."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict, TypeVar

from harness import ready_checkpoints
from harness.aio import LoopThread
from harness.errors import SetupError
from harness.guest.ssh import SshKey
from harness.machines import cloud_ready
from harness.machines.checkpoint import Checkpoint
from harness.machines.config import SECURE_UEFI, Firmware, QemuConfig
from harness.machines.devices import DEFAULT_DISK, DEFAULT_NIC, DeviceProfile, image_profile
from harness.machines.libvirt.host import DEFAULT_URI, LibvirtHost
from harness.machines.libvirt.machine import LibvirtMachine
from harness.machines.protocol import Machine
from harness.machines.qemu.machine import QemuMachine
from harness.matrix.cell import (
    SEABIOS_SEARCH,
    Cell,
    PackageUsed,
    ovmf_version,
    qemu_bios,
    qemu_version,
    seabios_version,
)
from harness.ready_checkpoints import ReadyCheckpoints
from harness.setup import secure_boot
from harness.setup.accel import resolve_accel
from harness.setup.cloud import cloud_image, write_seed
from harness.setup.components import (
    DebianArchive,
    Package,
    QemuBuild,
    provision_ovmf,
    provision_qemu,
    provision_seabios,
)
from harness.setup.firmware_descriptors import host_uefi, installed_version
from harness.setup.guest_profiles import profile_named
from harness.setup.image import GuestImage, ImageCache, Progress, Recipe
from harness.setup.kernel import with_kernel
from harness.setup.libvirt_modular import LIBVIRTD, resolve_daemon
from harness.setup.libvirt_stack import HOST as HOST_STACK
from harness.setup.libvirt_stack import LibvirtStack, ensure_stack
from harness.setup.runtime import check_run_root, make_run_dir
from harness.setup.watchdog import Watchdog
from harness.timeouts import Timeouts

DEFAULT_LIBVIRT_URI = DEFAULT_URI  # the plugin's default, named here: it does not know backends

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """The user's choices, from pytest options or the command line."""

    accel: str = "auto"
    qemu: str = "qemu-system-x86_64"  # a command, a path, or a Debian version to provision
    seabios: str | None = None  # bios-256k.bin path or Debian version (default: QEMU's own)
    ovmf: str | None = None  # folder with OVMF_*_4M.fd or Debian version (default: the host's)
    machine_type: str = "pc"
    firmware: str = "seabios"
    memory_mib: int = 1024
    cpus: int = 2
    recipe: str = "debian"
    kernel_package: str | None = None
    guest_suite: str | None = None  # the built-in guest's Debian suite (default: the recipe's)
    guest_profile: str | None = None  # the built-in guest's swap layout (default: partition)
    nic: str = DEFAULT_NIC  # the guest's NIC model (harness.machines.devices)
    disk: str = DEFAULT_DISK  # the controller of the guest's data disk
    usb: bool = False  # xHCI with a USB tablet and keyboard (harness.machines.devices)
    display: str = ""  # the display adapter ("": the machine's std VGA, unchecked)
    balloon: bool = False  # a virtio-balloon
    tpm: bool = False  # a TPM 2.0 on swtpm (harness.machines.swtpm)
    share: str = ""  # a shared host folder: virtiofs or 9p (harness.machines.shares)
    kernel: str | None = None  # a user's bzImage, booted on the image instead of its own
    initrd: str | None = None  # with ``kernel``: its initrd (default: none)
    cloud_image: str | None = None  # a cloud image's URL or path, instead of the recipe's
    cloud_sha256: str | None = None  # its sha256 (default: from cloud_sums)
    cloud_sums: str | None = None  # its checksum list (default: SHA256SUMS beside it)
    cloud_mirror: str | None = None  # base URL replacing the distributions' own (name:version)
    timeout_scale: float = 1.0
    backend: str = "qemu"  # qemu (direct) or libvirt
    libvirt_uri: str = DEFAULT_LIBVIRT_URI
    # host, or a Debian suite whose libvirt and QEMU run every guest as the harness's own daemon
    libvirt_stack: str = HOST_STACK
    # the harness's own daemon: libvirtd, or virtqemud (harness.setup.libvirt_modular)
    libvirt_daemon: str = LIBVIRTD
    cold_boot: bool = False  # every case cold boots instead of restoring the ready checkpoint
    offline: bool = False  # components from the cache only; what it lacks is a one-line error


BACKENDS = ("qemu", "libvirt")
LABEL_CHARS = re.compile(r"[^A-Za-z0-9._+-]+")
Built = TypeVar("Built", QemuMachine, LibvirtMachine)


class MachineParts(TypedDict):
    """What both backends' machines are built from."""

    name: str
    image: GuestImage
    config: QemuConfig
    runtime_dir: Path
    evidence_dir: Path
    ssh_key: SshKey
    runner: LoopThread


class HarnessSession:
    """Owns every process and directory it creates; ``close`` releases all of them."""

    def __init__(self, settings: Settings, evidence_root: Path, progress: Progress) -> None:
        self.settings = settings
        self.evidence_root = evidence_root
        self._progress = progress
        self._image: GuestImage | None = None
        self._cell: Cell | None = None
        self._qemu_build: QemuBuild | None = None
        self._seabios: Path | None = None
        self._ovmf: tuple[Path, Path] | None = None
        self._archive = DebianArchive(offline=settings.offline)
        self._firmware_packages: tuple[tuple[str, Package], ...] = ()  # (component, package)
        self._esp: Path | None = None  # the secure-boot ESP disk, built once
        self._runner: LoopThread | None = None
        self._run_dir: Path | None = None
        self._watchdog: Watchdog | None = None  # cleans up if this process is killed outright
        self._ssh_key: SshKey | None = None
        # Shared guests by cell and name, one table per backend; a case's own guests apart.
        self._qemu_machines: dict[str, QemuMachine] = {}
        self._libvirt_machines: dict[str, LibvirtMachine] = {}
        self._fresh: dict[str, QemuMachine] = {}
        self._labels: set[str] = {
            ready_checkpoints.FIRST_ATTEMPT,
            ready_checkpoints.SECOND_ATTEMPT,
            "default",
        }
        self._checkpoints = ReadyCheckpoints()
        self._created = 0
        self._libvirt: LibvirtHost | None = None
        self._libvirt_stack: LibvirtStack | None = None
        self.timeouts = Timeouts().scaled(settings.timeout_scale)
        check_run_root()  # now, not at the first guest

    @property
    def image(self) -> GuestImage:
        wanted = self.settings.cloud_image
        if self._image is None and wanted:
            s = self.settings
            if profile_named(s.guest_profile) is not None:
                raise SetupError(
                    f"--guest-profile {s.guest_profile} builds the built-in guest, not a cloud "
                    "image's: drop --guest-profile or --cloud-image"
                )
            self._image = cloud_image(wanted, s.cloud_sha256, s.cloud_sums, s.cloud_mirror)
        if self._image is None:
            recipe = Recipe.load(self.settings.recipe)
            image = ImageCache().ensure(
                recipe,
                self.settings.kernel_package,
                self._progress,
                self.settings.guest_suite,
                profile=image_profile(self.devices, self.settings.guest_profile),
            )
            if self.settings.kernel:
                initrd = Path(self.settings.initrd) if self.settings.initrd else None
                image = with_kernel(image, Path(self.settings.kernel), initrd)
            self._image = image
        return self._image

    @property
    def devices(self) -> DeviceProfile:
        s = self.settings
        return DeviceProfile(
            s.nic,
            s.disk,
            usb=s.usb,
            display=s.display,
            balloon=s.balloon,
            tpm=s.tpm,
            share=s.share,
        )

    @property
    def resolved_cell(self) -> Cell | None:
        """The cell if something already asked for it (no image build as a side effect)."""
        return self._cell

    @property
    def cell(self) -> Cell:
        """The default combination; resolving it builds the image if it is not cached."""
        if self._cell is None:
            s = self.settings
            firmware, firmware_file = self._firmware_identity()
            stack = self.libvirt_stack
            self._cell = Cell(
                kernel=self.image.kernel_release,
                guest=self.image.guest_suite,
                profile=self.image.profile,
                # A stack's QEMU runs only inside its daemon's namespace: its package says.
                qemu=stack.qemu_version if stack else qemu_version(str(self.qemu_build.binary)),
                firmware=firmware,
                machine=s.machine_type,
                accel=resolve_accel(s.accel),
                backend=s.backend,
                libvirt=stack.libvirt_version if stack else "",
                packages=self._packages_used(),
                firmware_file=str(firmware_file or ""),
                devices=self.devices.id_suffix,
            )
        return self._cell

    def _firmware_identity(self) -> tuple[str, Path | None]:
        """The firmware part of the cell id and the file it was read from: the SeaBIOS given,
        else the one QEMU itself loads (its data directories, a wrapper's own -L included)."""
        if self.settings.firmware != "seabios":  # ovmf or ovmf-secure, named so in the id
            code = self._ovmf_images()[0]
            version = ovmf_version(code, self._ovmf_package_version(code))
            self._secure_boot_disk()  # its loaders are packages the cell records
            return self.settings.firmware + version, code
        bios = self._seabios_image()
        if bios is None and self.libvirt_stack is None:
            bios = qemu_bios(str(self.qemu_build.binary))
        bios = bios or next((path for path in SEABIOS_SEARCH if path.is_file()), None)
        return "seabios" + seabios_version(bios), bios

    def _packages_used(self) -> tuple[PackageUsed, ...]:
        """Every Debian package the cell's QEMU and firmware were provisioned from."""
        used = [("qemu", package) for package in self.qemu_build.packages]
        used += self._firmware_packages
        return tuple(PackageUsed(c, p.name, p.version, p.sha256) for c, p in used)

    @property
    def qemu_build(self) -> QemuBuild:
        """The QEMU under test (provisioned from Debian's archive if a version was asked)."""
        if self._qemu_build is None and self.libvirt_stack is not None:
            self._qemu_build = self._stack_qemu(self.libvirt_stack)
        if self._qemu_build is None:
            self._qemu_build = provision_qemu(self.settings.qemu, self._archive)
        return self._qemu_build

    @property
    def libvirt_stack(self) -> LibvirtStack | None:
        """The libvirt stack of another suite that runs the guests (built where not cached),
        or None for the host's libvirt."""
        wanted = self.settings.libvirt_stack
        if self._libvirt_stack is None and wanted != HOST_STACK:
            self._libvirt_stack = ensure_stack(wanted, self._progress)
        return self._libvirt_stack

    def _stack_qemu(self, stack: LibvirtStack) -> QemuBuild:
        """The QEMU of a stack's cell outside its daemon: the same package version, run from
        its own library closure, so a cell's direct-QEMU and libvirt cases test one QEMU.
        The stack's daemon runs its own copy (``_parts``)."""
        if self.settings.qemu != Settings.qemu:
            raise SetupError(
                f"--qemu {self.settings.qemu} and --libvirt-stack {stack.suite} both name the "
                f"QEMU: the stack runs its own ({stack.qemu_version}); drop one"
            )
        return provision_qemu(stack.packages["qemu-system-x86"], self._archive)

    def _seabios_image(self) -> Path | None:
        if self._seabios is None and self.settings.seabios:
            seabios = provision_seabios(self.settings.seabios, self._archive)
            self._seabios = seabios.path
            self._firmware_packages += tuple(("seabios", p) for p in seabios.packages)
        elif self._seabios is None and self.libvirt_stack is not None:
            self._seabios = self.libvirt_stack.seabios  # the one its QEMU would take
        return self._seabios

    def _ovmf_images(self) -> tuple[Path, Path]:
        if self._ovmf is None and not self.settings.ovmf and self.libvirt_stack is not None:
            self._ovmf = self.libvirt_stack.ovmf
        if self._ovmf is None and self.settings.ovmf:
            secure = self.settings.firmware == SECURE_UEFI
            ovmf = provision_ovmf(self.settings.ovmf, self._archive, secure=secure)
            self._ovmf = (ovmf.code, ovmf.variables)
            self._firmware_packages += tuple(("ovmf", p) for p in ovmf.packages)
        if self._ovmf is None:  # the host's, found through QEMU's firmware descriptors
            binary = str(self.qemu_build.binary)
            self._ovmf = host_uefi(self.settings.machine_type, binary, self.settings.firmware)
        return self._ovmf

    def _ovmf_package_version(self, code: Path) -> str:
        """The Debian version of the OVMF the cell runs: provisioned, a stack's, or the host
        package that installed ``code``; "" for a build no package names (then hashed)."""
        if self.settings.ovmf:
            versions = {p.name: p.version for c, p in self._firmware_packages if c == "ovmf"}
        elif self.libvirt_stack is not None:
            versions = self.libvirt_stack.packages
        else:
            return installed_version(code)
        return versions.get("ovmf") or versions.get("ovmf-generic", "")

    def machine(
        self, name: str = "default", extra_args: tuple[str, ...] = (), backend: str | None = None
    ) -> Machine:
        """A guest of the default cell, created once per name and backend (default: the
        session's) and shared by whoever asks; not booted until first used."""
        backend = backend or self.settings.backend
        if backend == "qemu":
            return self._shared(
                self._qemu_machines, name, lambda: self._build_qemu(name, extra_args)
            )
        if backend == "libvirt":
            return self._libvirt_named(name, extra_args)
        raise SetupError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")

    def _shared(self, machines: dict[str, Built], name: str, build: Callable[[], Built]) -> Built:
        key = f"{self.cell.id}/{name}"
        if key not in machines:
            machines[key] = build()
        return machines[key]

    def _libvirt_named(self, name: str, extra_args: tuple[str, ...] = ()) -> LibvirtMachine:
        return self._shared(
            self._libvirt_machines, name, lambda: self._build_libvirt(name, extra_args)
        )

    def fresh_guest(self, label: str, extra_args: tuple[str, ...] = ()) -> Machine:
        """A guest of one test case's own (``fresh_qemu_guest``). Under the libvirt backend
        this is the cell's libvirt domain, which starts from the libvirt checkpoint likewise."""
        if self.settings.backend != "qemu":
            return self._libvirt_default() if not extra_args else self.machine(label, extra_args)
        return self.fresh_qemu_guest(label, extra_args)

    def fresh_qemu_guest(self, label: str, extra_args: tuple[str, ...] = ()) -> QemuMachine:
        """A direct QEMU guest of one test case's own, on disks of its own. Unless cold
        boots are forced, the default configuration starts from the session's ready
        checkpoint (taken on first use); a variant (``extra_args``) cold boots. Give it back
        with ``discard``."""
        label = self._unique_label(label)
        machine = self._build_qemu(label, extra_args)
        self._fresh[label] = machine
        if not extra_args and not self.settings.cold_boot and self.devices.migratable:
            machine.ready_from = self.ready_checkpoint()
        return machine

    def discard(self, machine: Machine) -> None:
        """Stop a ``fresh_guest`` and delete its disks (its evidence stays)."""
        fresh = self._fresh.pop(machine.name, None)
        if fresh is None:
            return
        fresh.stop()
        shutil.rmtree(fresh.runtime_dir, ignore_errors=True)

    def ready_checkpoint(self) -> Checkpoint:
        """The default guest booted once, settled, and frozen (see harness.machines.checkpoint)."""

        def attempt(name: str) -> Checkpoint:
            template = self._build_qemu(name, ())
            self._fresh[template.name] = template
            try:
                return ready_checkpoints.take(template, self._ensure_run_dir() / name)
            finally:
                self.discard(template)

        def make() -> Checkpoint:
            return ready_checkpoints.take_once_more_on_tcg_race(attempt, self.cell.accel)

        return self._checkpoints.get("qemu", make)

    def libvirt_guest(self) -> Machine:
        """The cell's libvirt domain, ready: restored from the run's libvirt checkpoint
        (``virsh save`` of it once booted and settled) on fresh copies of its disks, so that
        no case inherits what an earlier one did to it; ``--cold-boot`` boots it."""
        machine = self._libvirt_default()
        machine.boot()
        return machine

    def _libvirt_default(self) -> LibvirtMachine:
        machine = self._libvirt_named("default")
        if not self.settings.cold_boot and machine.ready_from is None:
            directory = self._ensure_run_dir() / "libvirt-checkpoint"
            machine.ready_from = self._checkpoints.get(
                "libvirt", lambda: ready_checkpoints.take(machine, directory)
            )
        return machine

    def _unique_label(self, label: str) -> str:
        base = LABEL_CHARS.sub("_", label).strip("_") or "guest"
        unique, n = base, 1
        while unique in self._labels:
            n += 1
            unique = f"{base}.{n}"
        self._labels.add(unique)
        return unique

    def _swap_on_root(self) -> bool:
        """The guest's profile hibernates to its root disk (a swapfile, a LUKS partition)."""
        profile = profile_named(self.image.profile)
        return profile is not None and bool(profile.swapfile or profile.luks_swap_mib)

    def _build_qemu(self, name: str, extra_args: tuple[str, ...]) -> QemuMachine:
        return QemuMachine(**self._parts(name, extra_args, "qemu"), timeouts=self.timeouts)

    def _build_libvirt(self, name: str, extra_args: tuple[str, ...]) -> LibvirtMachine:
        parts = self._parts(name, extra_args, "libvirt")
        return LibvirtMachine(**parts, host=self.libvirt_host(), timeouts=self.timeouts)

    def _parts(self, name: str, extra_args: tuple[str, ...], backend: str) -> MachineParts:
        # Short: socket paths inside it must fit AF_UNIX's 108 bytes whatever the test's name.
        self._created += 1
        run_dir = self._ensure_run_dir() / f"{backend}-{self._created}"
        run_dir.mkdir(mode=0o700)
        stack = self.libvirt_stack if backend == "libvirt" else None
        esp = self._secure_boot_disk()
        config = QemuConfig(
            binary=str(stack.emulator if stack else self.qemu_build.binary),
            qemu_img=self.qemu_build.qemu_img,
            kernel=None if esp else self.image.kernel,
            initrd=None if esp else self.image.initrd,
            esp=esp,
            append=self.image.cmdline,
            accel=self.cell.accel,
            machine=self.settings.machine_type,
            memory_mib=self.settings.memory_mib,
            cpus=self.settings.cpus,
            firmware=self._firmware(run_dir),
            extra_args=extra_args,
            seed=self._seed() if self.image.cloud else None,
            devices=self.devices,
            root_writethrough=self._swap_on_root(),
        )
        evidence = (
            self.evidence_root / self.cell.id / (name if backend == "qemu" else f"{backend}-{name}")
        )
        return MachineParts(
            name=name,
            image=self._seeded_image(),
            config=config,
            runtime_dir=run_dir,
            evidence_dir=evidence,
            ssh_key=self._key(),
            runner=self._loop(),
        )

    def _seeded_image(self) -> GuestImage:
        """A cloud image with the run's seeded layer as its disk once a guest of the run made
        it (harness.machines.cloud_ready): later guests boot already seeded."""
        layer = cloud_ready.seeded_layer(self._ensure_run_dir())
        if self.image.cloud and layer.is_file():
            return replace(self.image, disk=layer)
        return self.image

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
                state_dir=self._ensure_run_dir() / "libvirtd",
                stack=self.libvirt_stack,
                programs=resolve_daemon(self.settings.libvirt_daemon, self._progress),
            )
            host.conn  # noqa: B018 - opening is the point
            self._libvirt = host
        return self._libvirt

    def _firmware(self, run_dir: Path) -> Firmware:
        if self.settings.firmware == "seabios":
            return Firmware("seabios", bios=self._seabios_image())
        code, variables = self._ovmf_images()
        if not code.is_file() or not variables.is_file():
            raise SetupError(f"OVMF not found at {code}: run ./run setup (installs ovmf)")
        vars_copy = run_dir / "OVMF_VARS.fd"
        shutil.copyfile(variables, vars_copy)
        return Firmware(self.settings.firmware, ovmf_code=code, ovmf_vars=vars_copy)

    def _secure_boot_disk(self) -> Path | None:
        """Under secure boot, the ESP that boots the image's kernel through the signed shim
        and GRUB (harness.setup.secure_boot); None otherwise, and for an image that boots
        from its own disk (a cloud image brings its own signed loaders)."""
        if self.settings.firmware != SECURE_UEFI or self.image.kernel is None:
            return None
        if self._esp is None:
            disk = secure_boot.esp_disk(
                self.image.kernel,
                self.image.initrd,
                self.image.cmdline,
                self.image.guest_suite,
                self._archive,
            )
            self._firmware_packages += tuple(("secure-boot", p) for p in disk.packages)
            self._esp = disk.path
        return self._esp

    def _seed(self) -> Path:
        """The run's cloud-init seed (its ssh key), shared read-only by its guests."""
        seed = self._ensure_run_dir() / "seed.iso"
        if not seed.exists():
            write_seed(seed, f"s3s4-{os.getpid()}", self._key().public_line)
        return seed

    def _ensure_run_dir(self) -> Path:
        if self._run_dir is None:
            self._run_dir = make_run_dir()
            self._watchdog = Watchdog(self._run_dir)
            self._watchdog.start()
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
        for fresh in list(self._fresh.values()):
            try:
                self.discard(fresh)
            except Exception:  # keep stopping the others
                log.exception("stopping %s", fresh.name)
        for machine in self._qemu_machines.values():
            try:
                machine.stop()
            except Exception:  # keep stopping the others
                log.exception("stopping %s", machine.name)
        self._qemu_machines.clear()
        for domain in self._libvirt_machines.values():
            try:
                domain.remove()
            except Exception:  # keep removing the others
                log.exception("removing %s", domain.name)
        self._libvirt_machines.clear()
        if self._libvirt is not None:
            self._libvirt.close()
            self._libvirt = None
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
