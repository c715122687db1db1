"""The component matrix: axes in a TOML file, expanded into cells, selected and sharded.

A cell's spec is what the file asks for (``linux-image-amd64``, QEMU ``10.0``, ``seabios``,
``pc``, ``auto``); its id is what the running system turns out to be
(``k6.1.0-56-q10.0.2-seabios1.16.2-pc-tcg``), known once its components are provisioned.
Three axes are optional: ``guest`` (the built-in guest's Debian suite, ``default`` for the
recipe's own), ``libvirt`` (``host``, or a Debian suite whose libvirt runs as the harness's
own daemon; such a cell's QEMU is that stack's, written ``qemu = "stack"``) and ``devices``
(a table of the device options, ``{ nic = "e1000e", disk = "nvme" }``; ``{}`` for virtio's:
harness.matrix.devices).
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SetupError
from harness.machines.devices import DeviceProfile
from harness.matrix import devices
from harness.paths import REPO_ROOT

AXES = ("kernel", "qemu", "firmware", "machine", "accel")
OPTIONAL_AXES = {"guest": "default", "libvirt": "host"}  # axis: the value when not named
ALL_AXES = (*AXES, *OPTIONAL_AXES, devices.AXIS)  # devices: a table, the default profile's {}
STACK_QEMU = "stack"  # the qemu axis's value for a libvirt stack's own QEMU
MATRIX_DIR = REPO_ROOT / "matrix"
DEFAULT_MATRIX = REPO_ROOT / "matrix" / "default.toml"
SHARD = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class CellSpec:
    """One combination as the matrix file names it."""

    kernel: str
    qemu: str
    firmware: str  # seabios | ovmf, optionally :VERSION or :PATH
    machine: str
    accel: str
    guest: str = OPTIONAL_AXES["guest"]
    libvirt: str = OPTIONAL_AXES["libvirt"]
    devices: DeviceProfile = field(default_factory=DeviceProfile)

    @property
    def label(self) -> str:
        """Stable and readable before anything is provisioned (sharding uses it); an optional
        axis at its default adds nothing, so adding the axes moved no existing cell. Devices
        are named as in the cell's id (``devices-nic-e1000e-disk-nvme``)."""
        parts = list(self.values()[: len(AXES)])
        parts += [
            f"{axis}-{getattr(self, axis)}"
            for axis, default in OPTIONAL_AXES.items()
            if getattr(self, axis) != default
        ]
        parts += [f"{devices.AXIS}-{self.devices.id_suffix}"] if self.devices.id_suffix else []
        return "_".join(re.sub(r"[^A-Za-z0-9.:+-]+", "-", v) for v in parts)

    def values(self) -> tuple[str, ...]:
        return (
            self.kernel,
            self.qemu,
            self.firmware,
            self.machine,
            self.accel,
            self.guest,
            self.libvirt,
            self.devices.id_suffix,
        )

    @property
    def firmware_kind(self) -> str:
        return self.firmware.split(":", 1)[0]

    @property
    def firmware_version(self) -> str | None:
        _, _, version = self.firmware.partition(":")
        return version or None

    def pytest_args(self) -> list[str]:
        """The harness options that make a pytest run test this cell."""
        args = ["--kernel-package", self.kernel]
        if self.qemu != STACK_QEMU:
            args += ["--qemu", self.qemu]
        if self.guest != OPTIONAL_AXES["guest"]:
            args += ["--guest-suite", self.guest]
        if self.libvirt != OPTIONAL_AXES["libvirt"]:
            args += ["--libvirt-stack", self.libvirt]
        args += [
            "--firmware",
            self.firmware_kind,
            "--machine-type",
            self.machine,
            "--accel",
            self.accel,
        ]
        if self.firmware_version:
            args += [f"--{self.firmware_kind}", self.firmware_version]
        return args + devices.pytest_options(self.devices)


def load(path: Path = DEFAULT_MATRIX) -> list[CellSpec]:
    """Every combination of the file's axes, less its ``[[exclude]]`` patterns, plus its
    ``[[include]]`` cells; a malformed file is a one-line error naming what is wrong."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SetupError(f"matrix file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"matrix file {path} is not valid TOML: {exc}") from exc
    axes = data.get("axes")
    if not isinstance(axes, dict) or not set(AXES) <= set(axes) <= set(ALL_AXES):
        raise SetupError(
            f"matrix file {path}: [axes] must name {', '.join(AXES)} "
            f"(and optionally {', '.join(ALL_AXES[len(AXES) :])})"
        )
    values = {name: _axis_values(path, name, axes[name]) for name in ALL_AXES if name in axes}
    excludes = [_pattern(path, entry) for entry in data.get("exclude", [])]
    combos = (
        CellSpec(**dict(zip(values, combo, strict=True)))
        for combo in itertools.product(*values.values())
    )
    cells = [cell for cell in combos if not any(_matches(cell, p) for p in excludes)]
    cells += [CellSpec(**_complete(path, entry)) for entry in data.get("include", [])]
    if not cells:
        raise SetupError(f"matrix file {path} leaves no cell (every combination is excluded)")
    for cell in cells:
        _check_stack_qemu(path, cell)
    return list(dict.fromkeys(cells))


def path_of(name_or_path: str) -> Path:
    """``nightly`` is ``matrix/nightly.toml``; anything with a slash or ``.toml`` is a path."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        return Path(name_or_path)
    return MATRIX_DIR / f"{name_or_path}.toml"


def _check_stack_qemu(path: Path, cell: CellSpec) -> None:
    """A libvirt stack brings its QEMU (its daemon probes and runs that one only), so such a
    cell's qemu is ``stack``, and only such a cell's."""
    on_stack = cell.libvirt != OPTIONAL_AXES["libvirt"]
    if on_stack != (cell.qemu == STACK_QEMU):
        raise SetupError(
            f"matrix file {path}: cell {cell.label}: a libvirt stack runs its own QEMU: "
            f'write qemu = "{STACK_QEMU}" exactly where libvirt is not "host"'
        )


def _axis_values(path: Path, name: str, values: Any) -> list[Any]:
    """An axis's values: strings, or for ``devices`` tables (each a profile, ``{}`` the
    default one)."""
    if not isinstance(values, list) or not values:
        raise SetupError(f"matrix file {path}: axis {name} must be a non-empty list")
    if name == devices.AXIS:
        return [devices.profile_from(v, f"matrix file {path}: axis devices") for v in values]
    if not all(isinstance(v, str) for v in values):
        raise SetupError(f"matrix file {path}: axis {name} must be a non-empty list of strings")
    return values


def _pattern(path: Path, entry: Any) -> dict[str, Any]:
    """An exclude: shell patterns by axis; ``devices`` a pattern over the profile's name in
    the id (``"*nvme*"``; ``""`` the default profile) or a table, that profile exactly."""
    if not isinstance(entry, dict) or not set(entry) <= set(ALL_AXES):
        raise SetupError(
            f"matrix file {path}: an [[exclude]] names only axes ({', '.join(ALL_AXES)})"
        )
    return {
        key: devices.profile_from(value, f"matrix file {path}: an [[exclude]]")
        if key == devices.AXIS and not isinstance(value, str)
        else str(value)
        for key, value in entry.items()
    }


def _complete(path: Path, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict) or not set(AXES) <= set(entry) <= set(ALL_AXES):
        raise SetupError(
            f"matrix file {path}: an [[include]] names every axis ({', '.join(AXES)}; "
            f"optionally {', '.join(ALL_AXES[len(AXES) :])})"
        )
    return {
        key: devices.profile_from(value, f"matrix file {path}: an [[include]]")
        if key == devices.AXIS
        else str(value)
        for key, value in entry.items()
    }


def _matches(cell: CellSpec, pattern: dict[str, Any]) -> bool:
    return all(
        getattr(cell, key) == value
        if isinstance(value, DeviceProfile)
        else fnmatch.fnmatchcase(_text(cell, key), value)
        for key, value in pattern.items()
    )


def _text(cell: CellSpec, axis: str) -> str:
    """An axis's value as a pattern sees it: the devices as the id names them."""
    return cell.devices.id_suffix if axis == devices.AXIS else str(getattr(cell, axis))


def select(cells: list[CellSpec], wanted: list[str], ids: dict[CellSpec, str]) -> list[CellSpec]:
    """The cells whose label or detected id matches one of ``wanted`` (shell patterns)."""
    if not wanted:
        return cells
    chosen = [
        cell
        for cell in cells
        if any(
            fnmatch.fnmatchcase(cell.label, w) or fnmatch.fnmatchcase(ids.get(cell, ""), w)
            for w in wanted
        )
    ]
    if not chosen:
        known = ", ".join(ids.get(c) or c.label for c in cells)
        raise SetupError(f"no cell matches {' '.join(wanted)}; cells: {known}")
    return chosen


def shard(cells: list[CellSpec], spec: str | None) -> list[CellSpec]:
    """Shard ``i/n`` of the cells: a stable round-robin over their sorted labels, so every
    runner computes the same split and a cell never moves between shards of one matrix."""
    if spec is None:
        return cells
    match = SHARD.match(spec)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise SetupError(f"--shard {spec!r}: use i/n with 1 <= i <= n, e.g. --shard 2/4")
    index, count = int(match.group(1)), int(match.group(2))
    ordered = sorted(cells, key=lambda cell: cell.label)
    return [cell for n, cell in enumerate(ordered) if n % count == index - 1]
