"""Guest profiles: how a built-in guest lays out its swap and resumes from it, on top of the
recipe's image (``--guest-profile``).

The default guest (no profile, ``partition``) hibernates to the harness's per-guest swap disk
named by ``resume=/dev/vdb``. A profile changes that layout as distributions ship it: its
hooks (``images/profiles/NAME/``) run after the recipe's own, and its ``finish_root`` works on
the packed root file system before it becomes the qcow2 base, without a loop mount. Every
profile image has a cache key of its own, derived from the recipe's key, so the default image
and its key never change because a profile exists.

``swapfile-ext4``: no swap partition; a swapfile on the ext4 root, made with debugfs in the
packed file system (the header page written, the rest allocated), and the kernel command line
``resume=/dev/vda resume_offset=N`` with N the file's first physical block as ``filefrag -v``
reports it (here debugfs's own ``filefrag -v``: the file system is not mounted). The guest's
swap disk /dev/vdb is still attached by the machine but never used.

``devices``: the recipe's layout and command line, with the module files of the devices the
recipe's excluded driver trees hold (e1000e; virtio-scsi and AHCI disks, through the SCSI
midlayer; a USB tablet and keyboard on xHCI; the DRM drivers of std VGA, virtio-gpu and QXL),
kept with dpkg ``path-include``: the guest of a non-virtio device profile
(harness.machines.devices) and of the USB keyboard wake source.

``fedora-like``: a sid guest laid out as Fedora Workstation is, on a btrfs root with a
swapfile and zram beside it, dracut's initrd, booted by OVMF through systemd-boot from its
disk (``btrfs_profile``); ``efi-hibernate-location`` is the same with no ``resume=``, systemd
passing the image's place through the EFI variable HibernateLocation.

``luks-swap``: the swap in a LUKS2 partition after the root's, unlocked in the initramfs by a
key file it carries (``luks_profile``).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.errors import ImageBuildError, SetupError
from harness.paths import REPO_ROOT
from harness.setup.btrfs_profile import make_btrfs_root
from harness.setup.luks_profile import luks_swap_disk

PROFILES_DIR = REPO_ROOT / "images" / "profiles"
DEFAULT_PROFILE = "partition"  # the recipe's own layout: swap disk /dev/vdb, no profile
BLOCK_SIZE = 4096  # the root file system's block size, which is also the kernel's page size
STEP_TIMEOUT_S = 600.0
# The first extent of ``filefrag -v`` (debugfs's and e2fsprogs' alike): "0: 0 physical ...".
FIRST_EXTENT = re.compile(r"^\s*0:?\s+0(?:\.\.\s*\d+:)?\s+(\d+)", re.MULTILINE)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GuestProfile:
    """A swap and resume layout built onto the recipe's image."""

    name: str
    summary: str
    # The kernel command line; ``{resume_offset}`` is filled in from the built file system.
    cmdline: str
    swapfile: str = ""  # path of the swapfile on the root ("" for none)
    swapfile_mib: int = 0
    extra_disk_mib: int = 0  # added to the recipe's disk_size_mib
    tools: tuple[str, ...] = field(default=())  # host tools the build needs
    # Module files (below kernel/, as the recipe's exclude_modules) kept although the recipe
    # leaves their tree out: the drivers of the devices a profile is for.
    include_modules: tuple[str, ...] = field(default=())
    suite: str = ""  # the guest suite the profile needs where no other is asked for
    packages_added: tuple[str, ...] = field(default=())  # beside the recipe's packages
    packages_removed: tuple[str, ...] = field(default=())  # of the recipe's (a conflict)
    root_fs: str = "ext4"  # "btrfs": packed by btrfs_profile, subvolumes and swapfile
    # "kernel": QEMU boots the image's kernel; "disk": OVMF boots systemd-boot from the ESP.
    boot: str = "kernel"
    fstab: str = ""  # written at build time, once ``{uuid}`` (the root's) is known
    files_of: str = ""  # the profile whose hook files this one uses ("" its own)
    luks_swap_mib: int = 0  # a swap of this size in a LUKS2 partition after the root's

    @property
    def directory(self) -> Path:
        return PROFILES_DIR / (self.files_of or self.name)

    def hook(self, kind: str) -> Path | None:
        """The profile's ``KIND-hook.sh`` if it has one (run after the recipe's)."""
        path = self.directory / f"{kind}-hook.sh"
        return path if path.is_file() else None

    def content_key(self, recipe_key: str) -> str:
        """The recipe's key with the profile's definition and files folded in. A field at
        its default adds nothing, so that a new field leaves existing profiles' keys alone."""
        digest = hashlib.sha256(recipe_key.encode() + b"\0")
        defaults = GuestProfile(self.name, "", "")
        definition = {
            k: v
            for k, v in vars(self).items()
            if k == "name" or (k != "summary" and v != getattr(defaults, k))
        }
        digest.update(json.dumps(definition, sort_keys=True, default=list).encode() + b"\0")
        files = self.directory.iterdir() if self.directory.is_dir() else iter(())
        for path in sorted(p for p in files if p.is_file()):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def packages(self, recipe_packages: list[str]) -> list[str]:
        """The recipe's packages with the profile's removed and added."""
        kept = [p for p in recipe_packages if p not in self.packages_removed]
        return kept + [p for p in self.packages_added if p not in kept]

    def make_root(self, rootdir: Path, root_fs: Path, progress: Progress) -> str | None:
        """Make a btrfs root file system of ``rootdir`` in ``root_fs`` and return the kernel
        command line; None where the root is the recipe's ext4 (then ``finish_root``)."""
        if self.root_fs != "btrfs":
            return None
        fs_uuid = str(uuid.uuid4())
        if self.fstab:
            (rootdir / "etc" / "fstab").write_text(self.fstab.format(uuid=fs_uuid))
        offset = make_btrfs_root(rootdir, root_fs, self.swapfile_mib, fs_uuid, progress)
        progress(f"swapfile /swap/swapfile ({self.swapfile_mib} MiB) at page {offset}")
        return self.cmdline.format(uuid=fs_uuid, resume_offset=offset)

    def finish_disk(self, rootdir: Path, root_fs: Path, root_mib: int, progress: Progress) -> Path:
        """The disk image made of the packed ``root_fs``: itself, or with ``luks_swap_mib`` a
        GPT disk of the root and the encrypted swap."""
        if not self.luks_swap_mib:
            return root_fs
        return luks_swap_disk(rootdir, root_fs, root_mib, self.luks_swap_mib, progress)

    def finish_root(self, root_fs: Path, progress: Progress) -> str:
        """Work on the packed root file system; return the kernel command line."""
        if not self.swapfile:
            return self.cmdline
        offset = add_swapfile(root_fs, self.swapfile, self.swapfile_mib)
        progress(f"swapfile {self.swapfile} ({self.swapfile_mib} MiB) at block {offset}")
        return self.cmdline.format(resume_offset=offset)

    def module_paths(self, roots: tuple[str, ...]) -> list[str]:
        """dpkg's ``path-include`` globs for ``include_modules`` under each module root."""
        return [
            f"{root}/*/kernel/{module}{'*' if module.endswith('.ko') else '/*'}"
            for module in self.include_modules
            for root in roots
        ]


SWAPFILE_EXT4 = GuestProfile(
    name="swapfile-ext4",
    summary="a swapfile on the ext4 root; resume=/dev/vda resume_offset=N; initramfs-tools",
    cmdline="root=/dev/vda rw console=ttyS0,115200 resume=/dev/vda "
    "resume_offset={resume_offset} no_console_suspend",
    swapfile="/swapfile",
    # RAM (1 GiB by default) plus the headroom the swap disk gets: an image always fits.
    swapfile_mib=1280,
    # Room beside the swapfile for a second one as large (a recreated swapfile, whose new
    # blocks lie elsewhere: the stale-offset case).
    extra_disk_mib=2 * 1280,
    tools=("debugfs", "mkswap"),
)

DEVICES = GuestProfile(
    name="devices",
    summary="the recipe's layout, with the drivers of e1000e, virtio-scsi and AHCI disks, "
    "a USB tablet and keyboard on xHCI, and std VGA, virtio-gpu and QXL displays",
    cmdline="",  # the recipe's own
    include_modules=(
        "drivers/net/ethernet/intel/e1000e",
        # libata (AHCI) and virtio_scsi sit on the SCSI midlayer; sd_mod drives their disks.
        "drivers/scsi/scsi_mod.ko",
        "drivers/scsi/scsi_common.ko",
        "drivers/scsi/sd_mod.ko",
        "drivers/scsi/virtio_scsi.ko",
        # A USB keyboard on xHCI (the wake sources' usb-kbd): the USB core, the xHCI host
        # driver and HID over USB.
        "drivers/usb/common",
        "drivers/usb/core",
        "drivers/usb/host/xhci-hcd.ko",
        "drivers/usb/host/xhci-pci.ko",
        "drivers/hid/hid.ko",
        "drivers/hid/hid-generic.ko",
        "drivers/hid/usbhid",
        # The displays (--display): DRM's core and helpers, and the drivers of std VGA
        # (bochs), virtio-gpu and QXL. The fbdev core and fbcon are outside drivers/gpu.
        "drivers/gpu/drm/drm.ko",
        "drivers/gpu/drm/drm_kms_helper.ko",
        "drivers/gpu/drm/drm_shmem_helper.ko",
        "drivers/gpu/drm/drm_ttm_helper.ko",
        "drivers/gpu/drm/drm_vram_helper.ko",
        "drivers/gpu/drm/ttm",
        "drivers/gpu/drm/tiny/bochs.ko",
        "drivers/gpu/drm/virtio",
        "drivers/gpu/drm/qxl",
    ),
)

FEDORA_LIKE = GuestProfile(
    name="fedora-like",
    summary="UEFI + systemd-boot, btrfs root with a swapfile, zram beside it, dracut, systemd",
    # Fedora's command line names the root by UUID with its subvolume (anaconda's
    # rootflags=subvol=root); the swapfile's partition and its first page for the resume.
    cmdline="root=UUID={uuid} rootflags=subvol=root rw console=ttyS0,115200 "
    "resume=UUID={uuid} resume_offset={resume_offset} no_console_suspend",
    swapfile="/swap/swapfile",
    swapfile_mib=1280,  # RAM plus the swap disk's headroom, as swapfile-ext4
    extra_disk_mib=2 * 1280,  # room for a second swapfile as large (the stale-offset case)
    # btrfs-progs 7 (sid) is the first whose mkfs.btrfs sets NODATACOW on a file it packs
    # (--inode-flags); systemd 262, dracut 112 come with it.
    suite="sid",
    packages_added=("dracut", "btrfs-progs", "systemd-boot-efi", "systemd-zram-generator"),
    packages_removed=("initramfs-tools",),  # dracut conflicts with it
    root_fs="btrfs",
    boot="disk",
    # As anaconda writes it for Fedora's kickstart layout (subvolumes root and home on the
    # file system labelled fedora, compress=zstd:1 since Fedora 34); the swapfile after it.
    fstab="UUID={uuid} / btrfs subvol=root,compress=zstd:1 0 0\n"
    "UUID={uuid} /home btrfs subvol=home,compress=zstd:1 0 0\n"
    "/swap/swapfile none swap defaults 0 0\n",
)

EFI_HIBERNATE_LOCATION = replace(
    FEDORA_LIKE,
    name="efi-hibernate-location",
    summary="fedora-like with no resume= at all: systemd writes and reads HibernateLocation",
    # systemd 255 and later: systemd-sleep stores the swap device and offset in the EFI
    # variable HibernateLocation, which the initrd's systemd-hibernate-resume-generator reads
    # where the command line names no resume device.
    cmdline="root=UUID={uuid} rootflags=subvol=root rw console=ttyS0,115200 no_console_suspend",
    files_of="fedora-like",
)

LUKS_SWAP = GuestProfile(
    name="luks-swap",
    summary="swap in a LUKS2 partition, unlocked in the initramfs by a key file it carries",
    cmdline="root=/dev/vda1 rw console=ttyS0,115200 resume=/dev/mapper/cryptswap "
    "no_console_suspend",
    luks_swap_mib=1280,  # RAM plus the swap disk's headroom, as the swapfiles
    packages_added=("cryptsetup-initramfs",),
    tools=("sfdisk",),
)

PROFILES = {
    profile.name: profile
    for profile in (SWAPFILE_EXT4, DEVICES, FEDORA_LIKE, EFI_HIBERNATE_LOCATION, LUKS_SWAP)
}


def profile_named(name: str | None) -> GuestProfile | None:
    """The profile called ``name``; None for the default layout; a one-line error otherwise."""
    if name in (None, "", DEFAULT_PROFILE):
        return None
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join([DEFAULT_PROFILE, *PROFILES])
        raise SetupError(f"unknown guest profile {name!r}: use one of {known}") from None


def cmdline_args(cmdline: str, **values: str | None) -> tuple[str, ...]:
    """QEMU arguments that boot with ``cmdline`` changed: each ``name=value`` set (``""``
    leaves it empty, as in ``resume=``), each ``name=None`` removed. QEMU takes the last
    ``-append`` given, so these go after the machine's own arguments."""
    words = [w for w in cmdline.split() if w.partition("=")[0] not in values]
    words += [f"{name}={value}" for name, value in values.items() if value is not None]
    return ("-append", " ".join(words))


def add_swapfile(root_fs: Path, path: str, size_mib: int) -> int:
    """Put a swapfile of ``size_mib`` at ``path`` into the unmounted ext4 ``root_fs``; return
    its first physical block, the ``resume_offset`` in pages.

    mke2fs -d would leave a file of zeros sparse (it skips zero blocks), and a swapfile must
    have no holes: so the header page (mkswap's, for the full size) is written as the file,
    the remaining blocks are allocated behind it with debugfs ``fallocate`` (unwritten extents,
    as ``fallocate(1)`` makes them, which swapon accepts), and the size set to match.
    """
    said = _debugfs(root_fs, ["stats -h"], write=False)
    if not re.search(rf"^Block size:\s+{BLOCK_SIZE}$", said, re.MULTILINE):
        raise ImageBuildError(f"{root_fs}: a swapfile needs {BLOCK_SIZE}-byte blocks (mke2fs -b)")
    blocks = size_mib * 1024 * 1024 // BLOCK_SIZE
    header = root_fs.with_name("swap-header")
    full = root_fs.with_name("swap-full")
    with full.open("wb") as handle:
        handle.truncate(blocks * BLOCK_SIZE)
    _run(["mkswap", "-q", "-L", "swapfile", str(full)])
    with full.open("rb") as source:
        header.write_bytes(source.read(BLOCK_SIZE))
    full.unlink()
    where = Path(path)
    _debugfs(root_fs, [f"cd {where.parent}", f"write {header} {where.name}"])
    header.unlink()
    _debugfs(
        root_fs,
        [
            f"fallocate {path} 1 {blocks - 1}",
            f"sif {path} size {blocks * BLOCK_SIZE}",
            f"sif {path} mode 0100600",
        ],
    )
    return first_physical_block(_debugfs(root_fs, [f"filefrag -v {path}"], write=False))


def first_physical_block(filefrag_output: str) -> int:
    """The physical block of logical block 0 in ``filefrag -v`` output (debugfs's or
    e2fsprogs'); a one-line error if it has none."""
    match = FIRST_EXTENT.search(filefrag_output)
    if match is None:
        raise ImageBuildError(f"filefrag -v shows no first extent: {filefrag_output[-300:]!r}")
    return int(match.group(1))


def _debugfs(root_fs: Path, requests: list[str], write: bool = True) -> str:
    """Run debugfs requests on the file system; debugfs reports failures on its output with
    exit status 0, so each request's answer is read for them."""
    argv = ["debugfs", *(["-w"] if write else []), "-f", "-", str(root_fs)]
    out = _run(argv, stdin="\n".join(requests) + "\n")
    failed = [
        line
        for line in out.splitlines()
        if re.search(r"(?i)\b(error|cannot|not found|invalid|failed|unknown)\b", line)
    ]
    if failed:
        raise ImageBuildError(f"debugfs {'; '.join(requests)}: {failed[0].strip()}")
    return out


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        result = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise SetupError(f"{argv[0]} not found: run ./run setup (installs e2fsprogs)") from exc
    if result.returncode != 0:
        raise ImageBuildError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout + result.stderr
