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
midlayer), kept with dpkg ``path-include``: the guest of a non-virtio device profile
(harness.machines.devices).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ImageBuildError, SetupError
from harness.paths import REPO_ROOT

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

    @property
    def directory(self) -> Path:
        return PROFILES_DIR / self.name

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
    summary="the recipe's layout, with the drivers of e1000e, virtio-scsi and AHCI disks",
    cmdline="",  # the recipe's own
    include_modules=(
        "drivers/net/ethernet/intel/e1000e",
        # libata (AHCI) and virtio_scsi sit on the SCSI midlayer; sd_mod drives their disks.
        "drivers/scsi/scsi_mod.ko",
        "drivers/scsi/scsi_common.ko",
        "drivers/scsi/sd_mod.ko",
        "drivers/scsi/virtio_scsi.ko",
    ),
)

PROFILES = {profile.name: profile for profile in (SWAPFILE_EXT4, DEVICES)}


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
