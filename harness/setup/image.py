"""Build the built-in guest image from a recipe under images/, cached by a content key.

A recipe builds a guest of any Debian suite (its own by default; see ``debian_suites``). The
key covers the recipe files, the guest's archive lines (its suite), the kernel package and the
versions those lines offer for it and the key packages, so a changed recipe or a new kernel
in the archive means a new image, and images of different suites live side by side. A
build happens in a temporary directory under a lock and is renamed into place when complete,
so a crash or Ctrl-C never leaves a half-written image where a reader would take it.
mmdebstrap runs in a mount namespace of its own (unshare mode), bounded in time, and is
stopped and waited for when the build is interrupted; its work directory is removed without
ever crossing a mount (see ``scratch``). A built image is readable by root alone: its disk
holds the guest's ssh host keys, whose public halves are kept beside it for ssh to check.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import ImageBuildError, SetupError
from harness.paths import REPO_ROOT
from harness.process import run_to_end
from harness.setup import scratch
from harness.setup.debian_suites import ARCHIVE as ARCHIVE
from harness.setup.debian_suites import GuestSuite, SuiteIndex, checked_package
from harness.setup.guest_profiles import GuestProfile, profile_named

RECIPES_DIR = REPO_ROOT / "images"
DEFAULT_CACHE = Path(os.environ.get("S3S4_IMAGE_CACHE") or RECIPES_DIR / "cache")
DEFAULT_RECIPE = "debian"
MANIFEST = "manifest.json"
HOST_KEYS = "ssh_host_keys.pub"
BUILD_TIMEOUT_S = 1800.0  # mmdebstrap: minutes from a near mirror; a stalled one ends here
BUILD_STOP_GRACE_S = 60.0  # an interrupted mmdebstrap unmounts and cleans up in this long
STEP_TIMEOUT_S = 600.0  # each other build step (mke2fs, qemu-img convert ...)
# What a build leaves beside the disk; part of the cache key, so that an image built before a
# change to it is built again rather than found incomplete.
BUILD_LAYOUT = 2
# Where a kernel's modules are: /lib/modules, or /usr/lib/modules in a merged-/usr package.
MODULE_ROOTS = ("/lib/modules", "/usr/lib/modules")

Progress = Callable[[str], None]


def _stderr_progress(line: str) -> None:
    print(f"[image] {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class GuestImage:
    """A built, read-only base image and what direct kernel boot needs to start it."""

    name: str
    key: str
    disk: Path
    kernel: Path | None  # None: booted from its own disk by the firmware (a cloud image)
    initrd: Path | None  # None: a user's kernel with its drivers built in
    kernel_release: str
    cmdline: str
    packages: dict[str, str]
    cloud: bool = False  # configured by a cloud-init seed, ready once cloud-init is done
    # The Debian suite of the guest's userspace where it is not the recipe's default (the
    # cell id names it beside the kernel); "" for the default guest and a cloud image.
    guest_suite: str = ""
    # The guest's public ssh host keys (``type base64``), recorded when the image was built:
    # the only ones its ssh accepts. Empty for a cloud image, whose keys its first boot makes.
    host_keys: tuple[str, ...] = ()
    profile: str = ""  # the guest profile (guest_profiles) the image was built with; "" default

    @classmethod
    def from_manifest(cls, directory: Path) -> GuestImage:
        data = json.loads((directory / MANIFEST).read_text())
        keys = directory / HOST_KEYS
        if not keys.is_file() or not keys.read_text().strip():
            raise SetupError(
                f"image {directory} is incomplete ({HOST_KEYS} missing): "
                f"delete {directory} and run again"
            )
        from_disk = data.get("boot") == "disk"  # systemd-boot on the ESP, booted by OVMF
        image = cls(
            name=data["name"],
            key=data["key"],
            disk=directory / "base.qcow2",
            kernel=None if from_disk else directory / "vmlinuz",
            initrd=None if from_disk else directory / "initrd.img",
            kernel_release=data["kernel_release"],
            cmdline=data["cmdline"],
            packages=data["packages"],
            host_keys=tuple(keys.read_text().splitlines()),
            profile=data.get("profile", ""),
        )
        for path in (image.disk, directory / "vmlinuz", directory / "initrd.img"):
            if not path.is_file() or path.stat().st_size == 0:
                raise SetupError(
                    f"image {directory} is incomplete ({path.name} missing): "
                    f"delete {directory} and run again"
                )
        _check_disk(image.disk, directory)
        return image


@dataclass(frozen=True)
class Recipe:
    directory: Path
    settings: dict[str, Any]

    @classmethod
    def load(cls, name: str = DEFAULT_RECIPE) -> Recipe:
        directory = RECIPES_DIR / name
        path = directory / "recipe.toml"
        if not path.is_file():
            known = sorted(p.parent.name for p in RECIPES_DIR.glob("*/recipe.toml"))
            raise SetupError(f"no image recipe {name!r} under {RECIPES_DIR} (known: {known})")
        try:
            settings = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SetupError(f"{path}: not valid TOML: {exc}") from exc
        return cls(directory, settings)

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.is_file())

    def content_key(self, sources: list[str], kernel_package: str, versions: dict[str, str]) -> str:
        digest = hashlib.sha256()
        for path in self.files():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        digest.update(
            json.dumps([BUILD_LAYOUT, sources, kernel_package, sorted(versions.items())]).encode()
        )
        return digest.hexdigest()[:16]

    def image_name(self, guest: GuestSuite) -> str:
        """``debian-sid`` from ``debian-{suite}``: the guest's userspace suite."""
        return str(self.settings["name"]).replace("{suite}", guest.base)

    def exclude_paths(self) -> list[str]:
        """What dpkg leaves out: the recipe's paths, and its module trees under each root."""
        paths = list(self.settings["exclude_paths"])
        for tree in self.settings.get("exclude_modules", []):
            paths += [f"{root}/*/kernel/{tree}/*" for root in MODULE_ROOTS]
        return paths


class ImageCache:
    """Built images by content key under one cache directory."""

    def __init__(self, root: Path = DEFAULT_CACHE) -> None:
        self.root = root

    def ensure(
        self,
        recipe: Recipe,
        kernel_package: str | None = None,
        progress: Progress = _stderr_progress,
        suite: str | None = None,
        profile: str | None = None,
    ) -> GuestImage:
        """The cached image for this recipe, guest suite (default: the recipe's) and kernel
        (default: the recipe's, from the suite's kernel suite), building it first if needed;
        with a guest ``profile`` (see guest_profiles), that profile's image, keyed apart."""
        layout = profile_named(profile)
        guest = GuestSuite.named(suite or (layout and layout.suite) or recipe.settings["suite"])
        kernel_package = guest.kernel_package(kernel_package or recipe.settings["kernel_package"])
        sources = guest.sources(kernel_package)
        index = SuiteIndex(self.root, sources)
        stale = index.refresh()
        if stale:
            progress(stale)
        versions = index.versions([kernel_package, *recipe.settings["versioned_packages"]])
        key = recipe.content_key(sources, kernel_package, versions)
        name = recipe.image_name(guest)
        if layout is not None:
            key, name = layout.content_key(key), f"{name}-{layout.name}"
        final = self.root / f"{name}-{key}"
        if (final / MANIFEST).is_file():
            return _cached(final, guest, recipe)
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / f".{final.name}.lock"):
            if (final / MANIFEST).is_file():  # another run built it while we waited
                return _cached(final, guest, recipe)
            _require_tools(*(layout.tools if layout else ()))
            scratch.sweep_dead_builds(self.root)
            work = self.root / f"{scratch.BUILD_PREFIX}{final.name}-{os.getpid()}"
            scratch.remove_work_dir(work)
            work.mkdir(mode=0o755)  # apt downloads into it as _apt; 0700 once that is done
            try:
                build = Build(recipe, guest, sources, kernel_package, key, layout)
                _build(build, work, self.root / f"{final.name}.log", progress)
                work.rename(final)
            finally:
                scratch.remove_work_dir(work)
        return _cached(final, guest, recipe)


@dataclass(frozen=True)
class Build:
    """What one image is built from."""

    recipe: Recipe
    guest: GuestSuite
    sources: list[str]  # apt's lines, the guest suite's and its kernel's
    kernel_package: str
    key: str
    profile: GuestProfile | None = None

    @property
    def name(self) -> str:
        name = self.recipe.image_name(self.guest)
        return f"{name}-{self.profile.name}" if self.profile else name


def _cached(directory: Path, guest: GuestSuite, recipe: Recipe) -> GuestImage:
    image = GuestImage.from_manifest(directory)
    if guest.base == recipe.settings["suite"]:
        return image
    return replace(image, guest_suite=guest.base)


def _check_disk(disk: Path, directory: Path) -> None:
    """``qemu-img check`` (metadata only, cheap enough for every run): a truncated or damaged base
    image is a clear error here, not a guest that fails to boot minutes later."""
    try:
        result = subprocess.run(
            ["qemu-img", "check", "-q", str(disk)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError as exc:
        raise SetupError("qemu-img not found: run ./run setup (installs qemu-utils)") from exc
    if result.returncode != 0:
        problem = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        raise SetupError(
            f"image {directory} is corrupt (qemu-img check: {problem[0]}): "
            f"delete {directory} and run again to rebuild it"
        )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _require_tools(*extra: str) -> None:
    tools = ("mmdebstrap", "mke2fs", "qemu-img", "sfdisk", "mkfs.vfat", "mcopy", *extra)
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SetupError(
            f"missing {', '.join(missing)}: run ./run setup "
            "(installs mmdebstrap, e2fsprogs, qemu-utils, fdisk, dosfstools, mtools)"
        )
    if os.geteuid() != 0:
        raise SetupError("building the guest image needs root (mmdebstrap root mode): run as root")


def _build(build: Build, work: Path, log_path: Path, progress: Progress) -> None:
    recipe, kernel_package = build.recipe, build.kernel_package
    settings = recipe.settings
    include = list(settings["packages"])
    if build.profile:  # the profile's packages beside (or instead of some of) the recipe's
        include = build.profile.packages(include)
    rootdir = work / "root"
    started = time.monotonic()
    progress(f"building {build.name} ({kernel_package}) into {work.parent} ...")
    argv = [
        "mmdebstrap",
        f"--mode={build_mode()}",
        "--variant=minbase",
        "--include=" + ",".join(checked_package(p) for p in [kernel_package, *include]),
        *(f"--dpkgopt=path-exclude={p}" for p in recipe.exclude_paths()),
        # dpkg takes a path-include after the excludes as an exception to them.
        *(f"--dpkgopt=path-include={p}" for p in _profile_modules(build.profile)),
        *(hook_option(recipe.directory, kind) for kind in ("essential", "customize")),
        *_profile_hooks(build.profile),
        build.guest.base,
        str(rootdir),
        *build.sources,
    ]
    run_streaming(argv, log_path, progress, "1/4 mmdebstrap")
    work.chmod(0o700)  # what is made from here on holds the guest's ssh host keys
    kernels = sorted((rootdir / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ImageBuildError(f"{kernel_package} installed no kernel in /boot; see {log_path}")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    progress(f"2/4 kernel {release}: extracting vmlinuz and initrd")
    shutil.copyfile(kernels[-1], work / "vmlinuz")
    shutil.copyfile(rootdir / "boot" / f"initrd.img-{release}", work / "initrd.img")
    packages = _installed_packages(rootdir)
    host_keys = guest_host_keys(rootdir)
    disk_mib = settings["disk_size_mib"] + (build.profile.extra_disk_mib if build.profile else 0)
    raw = work / "root.raw"
    with raw.open("wb") as handle:
        handle.truncate(disk_mib * 1024 * 1024)
    cmdline = settings["cmdline"]
    made = build.profile.make_root(rootdir, raw, progress) if build.profile else None
    if made is not None:  # the profile's own root file system (btrfs)
        cmdline = made
    else:
        progress(f"3/4 mke2fs: {disk_mib} MiB ext4 from the root directory")
        _run(["mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", str(rootdir), str(raw)])
        if build.profile:  # a profile's command line, or the recipe's where it has none
            cmdline = build.profile.finish_root(raw, progress) or cmdline
        if build.profile:  # the root alone, or in a disk with the profile's partitions
            raw = build.profile.finish_disk(rootdir, raw, disk_mib, progress)
    from_disk = bool(build.profile and build.profile.boot == "disk")
    if settings.get("layout") == "uefi-disk" or from_disk:
        uefi = {"esp_size_mib": ESP_MIB, **settings, "cmdline": cmdline, "disk_size_mib": disk_mib}
        raw = _uefi_disk(raw, rootdir, release, build.name, uefi, work)
    progress("4/4 qemu-img convert to qcow2")
    _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "base.qcow2")])
    raw.unlink()
    scratch.remove_work_dir(rootdir)
    (work / HOST_KEYS).write_text("".join(f"{key}\n" for key in host_keys))
    # Never written to, and readable by root alone: the disk holds the guest's ssh host keys.
    for name in ("base.qcow2", "vmlinuz", "initrd.img", HOST_KEYS):
        (work / name).chmod(0o400)
    manifest = {
        "name": build.name,
        "key": build.key,
        "suite": build.guest.base,
        "sources": build.sources,
        "kernel_package": kernel_package,
        "kernel_release": release,
        "cmdline": cmdline,
        "packages": packages,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.monotonic() - started, 1),
    }
    if build.profile:
        manifest["profile"] = build.profile.name
    if from_disk:
        manifest["boot"] = "disk"
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    (work / MANIFEST).chmod(0o600)
    progress(f"done in {manifest['build_seconds']}s")


ESP_MIB = 128  # a profile's ESP (systemd-boot, the kernel and a dracut initrd)
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
SYSTEMD_BOOT = "usr/lib/systemd/boot/efi/systemd-bootx64.efi"


def _uefi_disk(
    root_fs: Path, rootdir: Path, release: str, name: str, settings: dict[str, Any], work: Path
) -> Path:
    """A GPT disk as cloud images are: an ESP (FAT, made with mtools: no mounts) holding
    systemd-boot, the kernel and initrd, then the ext4 root; booted by OVMF's fallback path."""
    esp_mib, root_mib = settings["esp_size_mib"], settings["disk_size_mib"]
    esp = work / "esp.raw"
    _run(["mkfs.vfat", "-n", "ESP", "-C", str(esp), str(esp_mib * 1024)])
    entry = work / "entry.conf"
    entry.write_text(
        f"title {name}\nlinux /vmlinuz\ninitrd /initrd.img\noptions {settings['cmdline']}\n"
    )
    loader = work / "loader.conf"
    loader.write_text("default default.conf\ntimeout 0\n")
    _run(["mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"])
    for source, target in (
        (rootdir / SYSTEMD_BOOT, "::/EFI/BOOT/BOOTX64.EFI"),
        (rootdir / "boot" / f"vmlinuz-{release}", "::/vmlinuz"),
        (rootdir / "boot" / f"initrd.img-{release}", "::/initrd.img"),
        (loader, "::/loader/loader.conf"),
        (entry, "::/loader/entries/default.conf"),
    ):
        _run(["mcopy", "-i", str(esp), str(source), target])
    disk = work / "disk.raw"
    with disk.open("wb") as handle:
        handle.truncate((1 + esp_mib + root_mib + 1) * 1024 * 1024)
    layout = (
        "label: gpt\n"
        f"start=1MiB, size={esp_mib}MiB, type={ESP_TYPE}, name=esp\n"
        f"start={1 + esp_mib}MiB, size={root_mib}MiB, type={LINUX_TYPE}, name=root\n"
    )
    result = subprocess.run(
        ["sfdisk", "-q", str(disk)],
        input=layout,
        capture_output=True,
        text=True,
        check=False,
        timeout=STEP_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise ImageBuildError(f"sfdisk failed: {result.stderr.strip()}")
    for part, offset_mib in ((esp, 1), (root_fs, 1 + esp_mib)):
        _run(["dd", f"if={part}", f"of={disk}", "bs=1M", f"seek={offset_mib}",
              "conv=notrunc,sparse", "status=none"])  # fmt: skip
        part.unlink()
    return disk


def hook_option(recipe_dir: Path, kind: str) -> str:
    """mmdebstrap's ``--KIND-hook``: a shell command line, so the script's path is quoted."""
    return f'--{kind}-hook={shlex.quote(str(recipe_dir / f"{kind}-hook.sh"))} "$1"'


def _profile_hooks(profile: GuestProfile | None) -> list[str]:
    """A profile's hooks, each run after the recipe's hook of its kind."""
    if profile is None:
        return []
    kinds = ("essential", "customize")
    return [hook_option(profile.directory, kind) for kind in kinds if profile.hook(kind)]


def _profile_modules(profile: GuestProfile | None) -> list[str]:
    """The module files a profile keeps out of the recipe's excluded trees."""
    return profile.module_paths(MODULE_ROOTS) if profile else []


def guest_host_keys(rootdir: Path) -> list[str]:
    """The public ssh host keys the image's sshd will offer (``type base64``)."""
    keys = []
    for path in sorted((rootdir / "etc" / "ssh").glob("ssh_host_*_key.pub")):
        fields = path.read_text().split()
        if len(fields) >= 2:
            keys.append(f"{fields[0]} {fields[1]}")
    if not keys:
        raise ImageBuildError(f"the image has no ssh host key in {rootdir}/etc/ssh")
    return keys


def _installed_packages(rootdir: Path) -> dict[str, str]:
    out = _run(
        ["dpkg-query", f"--admindir={rootdir}/var/lib/dpkg", "-W", "-f=${Package}\t${Version}\n"]
    )
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def build_mode() -> str:
    """mmdebstrap's ``unshare`` mode where root may make a mount namespace: the build's mounts
    then exist in that namespace only and vanish with it, never in the host's. Else root mode,
    which mounts nothing there either (it needs the same right to mount)."""
    try:
        probe = subprocess.run(
            ["unshare", "--mount", "--propagation", "unchanged", "--", "true"],
            capture_output=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "root"
    return "unshare" if probe.returncode == 0 else "root"


def _run(argv: list[str]) -> str:
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"{argv[0]} still running after {STEP_TIMEOUT_S:.0f}s") from exc
    if result.returncode != 0:
        raise ImageBuildError(
            f"{argv[0]} failed ({result.returncode}): {result.stderr.strip().splitlines()[-1:]}"
        )
    return result.stdout


def run_streaming(
    argv: list[str],
    log_path: Path,
    progress: Progress,
    label: str,
    error: type[SetupError] = ImageBuildError,
) -> None:
    """Run a long build step, copying its output to a log and its milestones to progress;
    bounded by BUILD_TIMEOUT_S, and stopped and waited for when interrupted. Its failure is
    ``error``, naming ``label`` and the log."""

    def milestone(line: str) -> None:
        if line.startswith("I: "):
            progress(f"{label}: {line[3:].strip()}")

    with log_path.open("w") as log:
        try:
            returncode = run_to_end(argv, log, milestone, BUILD_TIMEOUT_S, BUILD_STOP_GRACE_S)
        except TimeoutError as exc:
            raise error(f"{label}: {exc}; full log kept at {log_path}") from exc
    if returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-3:]
        raise error(
            f"{label} failed ({returncode}); last lines: {tail}; full log kept at {log_path}"
        )
