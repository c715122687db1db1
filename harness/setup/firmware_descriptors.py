"""Firmware found the way libvirt finds it: QEMU's firmware descriptors (docs/interop/
firmware.json in QEMU's tree), JSON files that distributions install beside their firmware.

Each descriptor names its interface (``bios``, ``uefi``), how it is mapped (``flash`` with an
executable and an NVRAM template, ``memory`` for ``-bios``), the machines it runs on (glob
patterns such as ``pc-q35-*``) and its features (``acpi-s3``, ``secure-boot``,
``requires-smm``, ``enrolled-keys`` ...). The same code thus finds Debian's
``/usr/share/OVMF/OVMF_CODE_4M.fd`` and Fedora's ``/usr/share/edk2/ovmf/OVMF_CODE.fd``, and
can pick "secure boot with SMM and Microsoft's keys" by feature rather than by file name.

Search order (the specification's): every ``*.json`` of ``/usr/share/qemu/firmware``,
``/etc/qemu/firmware`` and ``$XDG_CONFIG_HOME/qemu/firmware`` (default ``~/.config``); a file
of a more specific directory replaces the one of the same name in a less specific one (an
empty file hides it); the survivors are sorted by file name and the first that matches wins.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SetupError

SYSTEM_DIRS = (Path("/usr/share/qemu/firmware"), Path("/etc/qemu/firmware"))
# The machine types the harness names by their alias, and the family each alias stands for
# when QEMU cannot be asked (``-machine help`` says "alias of pc-q35-7.2").
ALIAS_FAMILY = {"pc": "pc-i440fx-", "q35": "pc-q35-"}
ALIAS_LINE = re.compile(r"^(\S+)\s.*\(alias of (\S+)\)")
MACHINE_HELP_TIMEOUT_S = 30
DPKG_TIMEOUT_S = 30


def search_dirs(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The descriptor directories, least specific first."""
    env = os.environ if environ is None else environ
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return (*SYSTEM_DIRS, Path(config) / "qemu" / "firmware")


@dataclass(frozen=True)
class FirmwareDescriptor:
    """One descriptor file, as far as the harness uses it."""

    path: Path
    description: str
    interfaces: tuple[str, ...]
    device: str  # flash (pflash code + vars), memory (-bios) or kernel
    mode: str  # of a flash mapping: split (code and vars apart), combined or stateless
    image_format: str  # of the flash images: raw or qcow2
    executable: Path
    nvram_template: Path | None
    targets: tuple[tuple[str, tuple[str, ...]], ...]  # (architecture, machine patterns)
    features: frozenset[str]

    def runs_on(self, architecture: str, machine: str) -> bool:
        """Whether a concrete machine type (``pc-q35-7.2``) of ``architecture`` is a target."""
        return any(
            arch == architecture and any(fnmatch.fnmatchcase(machine, p) for p in patterns)
            for arch, patterns in self.targets
        )

    @property
    def name(self) -> str:
        return self.path.name


def parse(path: Path, text: str, root: Path | None = None) -> FirmwareDescriptor:
    """A descriptor from its JSON; ``root`` re-roots its absolute file names (the descriptors
    of a firmware package unpacked into a tree name the files where the package installs
    them). Raises SetupError naming the file and what is wrong with it."""
    try:
        data: dict[str, Any] = json.loads(text)
        mapping = data["mapping"]
        device = mapping["device"]
        image_format, mode = "raw", str(mapping.get("mode", "split"))
        if device == "flash":
            executable = mapping["executable"]["filename"]
            image_format = str(mapping["executable"].get("format", "raw"))
            template = (mapping.get("nvram-template") or {}).get("filename")
        else:
            executable, template = mapping["filename"], None
        targets = tuple(
            (str(t["architecture"]), tuple(str(m) for m in t["machines"])) for t in data["targets"]
        )
        return FirmwareDescriptor(
            path=path,
            description=str(data.get("description", "")),
            interfaces=tuple(str(i) for i in data["interface-types"]),
            device=str(device),
            mode=mode,
            image_format=image_format,
            executable=_rooted(Path(executable), root),
            nvram_template=_rooted(Path(template), root) if template else None,
            targets=targets,
            features=frozenset(str(f) for f in data.get("features", ())),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SetupError(
            f"{path}: not a QEMU firmware descriptor ({type(exc).__name__}: {exc}); fix or "
            "remove it (an empty file of the same name in /etc/qemu/firmware hides it)"
        ) from exc


def _rooted(path: Path, root: Path | None) -> Path:
    return root / path.relative_to("/") if root is not None and path.is_absolute() else path


def load(dirs: Sequence[Path] | None = None, root: Path | None = None) -> list[FirmwareDescriptor]:
    """Every descriptor in effect, in the order the specification says to try them."""
    chosen: dict[str, Path] = {}
    for folder in search_dirs() if dirs is None else dirs:
        if folder.is_dir():
            for path in folder.glob("*.json"):
                chosen[path.name] = path  # a more specific directory replaces the file
    descriptors = []
    for name in sorted(chosen):
        path = chosen[name]
        text = path.read_text()
        if text.strip():  # an empty file hides the one of the same name
            descriptors.append(parse(path, text, root))
    return descriptors


@dataclass(frozen=True)
class FirmwareWanted:
    """What a cell asks of its firmware: an interface, and features it must and must not
    have (a plain OVMF cell wants no secure boot, which would need SMM and signed loaders)."""

    interface: str
    features: frozenset[str] = frozenset()
    without: frozenset[str] = frozenset()

    def describe(self) -> str:
        parts = [self.interface]
        parts += [f"+{f}" for f in sorted(self.features)]
        parts += [f"-{f}" for f in sorted(self.without)]
        return " ".join(parts)


# The kinds of firmware a cell names, as descriptor features.
PLAIN_UEFI = FirmwareWanted(
    "uefi", without=frozenset({"secure-boot", "requires-smm", "enrolled-keys"})
)
SECURE_UEFI = FirmwareWanted(
    "uefi", features=frozenset({"secure-boot", "requires-smm", "enrolled-keys"})
)
BIOS = FirmwareWanted("bios")
KINDS = {"ovmf": PLAIN_UEFI, "ovmf-secure": SECURE_UEFI, "seabios": BIOS}


def matching(
    descriptors: Iterable[FirmwareDescriptor],
    wanted: FirmwareWanted,
    machine: str,
    architecture: str = "x86_64",
) -> list[FirmwareDescriptor]:
    """The descriptors that fit, best first (the order they were loaded in). A flash
    firmware must come as raw code and vars images apart (split): the harness maps the two
    pflash chips that way, the vars a copy of the template per guest."""
    return [
        d
        for d in descriptors
        if wanted.interface in d.interfaces
        and (d.device != "flash" or (d.mode == "split" and d.image_format == "raw"))
        and d.runs_on(architecture, machine)
        and wanted.features <= d.features
        and not wanted.without & d.features
        and d.executable.is_file()
        and (d.device != "flash" or (d.nvram_template is not None and d.nvram_template.is_file()))
    ]


def select(
    wanted: FirmwareWanted,
    machine: str,
    descriptors: Sequence[FirmwareDescriptor] | None = None,
    architecture: str = "x86_64",
) -> FirmwareDescriptor:
    """The first descriptor that fits ``machine`` (a concrete type such as ``pc-q35-7.2``);
    SetupError in one line naming what was looked for, where, and the fix."""
    found = load() if descriptors is None else descriptors
    fits = matching(found, wanted, machine, architecture)
    if fits:
        return fits[0]
    where = ", ".join(str(d) for d in search_dirs())
    seen = "; ".join(f"{d.name}: {d.interfaces[0]} {sorted(d.features)}" for d in found)
    raise SetupError(
        f"no firmware descriptor offers {wanted.describe()} for {architecture} {machine} "
        f"(looked in {where}; found {seen or 'none'}): run ./run setup (installs ovmf and "
        "seabios), or add a descriptor to /etc/qemu/firmware"
    )


@functools.cache
def _machine_aliases(qemu_binary: str) -> dict[str, str]:
    try:
        listing = subprocess.run(
            [qemu_binary, "-machine", "help"],
            capture_output=True,
            text=True,
            timeout=MACHINE_HELP_TIMEOUT_S,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {
        m.group(1): m.group(2) for line in listing.splitlines() if (m := ALIAS_LINE.match(line))
    }


def concrete_machine(machine: str, qemu_binary: str | None = None) -> str:
    """``q35`` -> ``pc-q35-7.2``: the machine type an alias stands for in this QEMU (the
    descriptors name concrete types); without QEMU, a type of the alias's family."""
    if qemu_binary is not None and (concrete := _machine_aliases(qemu_binary).get(machine)):
        return concrete
    family = ALIAS_FAMILY.get(machine)
    return f"{family}0.0" if family else machine


def flash_images(descriptor: FirmwareDescriptor) -> tuple[Path, Path]:
    """(code, NVRAM template) of a flash firmware; SetupError for any other mapping."""
    if descriptor.device != "flash" or descriptor.nvram_template is None:
        raise SetupError(
            f"{descriptor.path}: maps its firmware as {descriptor.device}, not as flash code "
            "and NVRAM: choose a UEFI descriptor with an nvram-template"
        )
    return descriptor.executable, descriptor.nvram_template


def host_uefi(
    machine: str, qemu_binary: str | None = None, kind: str = "ovmf"
) -> tuple[Path, Path]:
    """The host's UEFI code and NVRAM template for ``machine`` (``q35``, ``pc`` or a concrete
    type) of the ``kind`` a cell names, through the descriptors."""
    return flash_images(select(KINDS[kind], concrete_machine(machine, qemu_binary)))


def installed_version(path: Path) -> str:
    """The Debian version of the installed package that holds ``path`` (dpkg's records), or
    "" where dpkg knows no such file (a build of one's own, another distribution)."""
    if not path.is_file():
        return ""
    try:
        owner = subprocess.run(  # an absolute path is matched exactly, not as a pattern
            ["dpkg-query", "-S", str(path.absolute())],
            capture_output=True,
            text=True,
            timeout=DPKG_TIMEOUT_S,
            check=False,
        )
        if owner.returncode != 0 or ":" not in owner.stdout:
            return ""
        package = owner.stdout.split(":", 1)[0].split(",")[0].strip()
        version = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package],
            capture_output=True,
            text=True,
            timeout=DPKG_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return version.stdout.strip() if version.returncode == 0 else ""
