"""A cell's devices: the ``devices`` table of a matrix file (``{ nic = "e1000e", disk = "nvme" }``)
read into the device profile a run's options make, and the options that make a run choose it.

The table's keys are the profile's fields, which are the options' own names (``--nic``,
``--disk``, ``--usb``, ``--display``, ``--balloon``, ``--tpm``, ``--share``) and the session
settings' too; its values are checked by the profile against the choices those options take
(harness.machines.devices), so a matrix file and a command line name devices alike and a
cell's id names its profile as a run with those options does (``-nic-e1000e-disk-nvme``).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from harness.errors import SetupError
from harness.machines.devices import DeviceProfile

AXIS = "devices"
DEFAULT = DeviceProfile()
KEYS = tuple(f.name for f in fields(DeviceProfile))
EXAMPLE = 'devices = { nic = "e1000e", disk = "nvme" }'


def profile_from(table: Any, where: str) -> DeviceProfile:
    """The profile ``table`` names (``{}`` is the default one); a one-line error naming the
    fix for anything else, ``where`` saying which file and entry."""
    if not isinstance(table, dict):
        raise SetupError(f"{where}: devices is a table of device options, e.g. {EXAMPLE}")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise SetupError(
            f"{where}: devices has no option {unknown[0]!r}: name only {', '.join(KEYS)}"
        )
    for key, value in table.items():
        kind = type(getattr(DEFAULT, key))
        # The switches are TOML booleans (not "yes", not 1); the choices are strings.
        if type(value) is not kind:
            wanted = "true or false" if kind is bool else 'a string, e.g. "e1000e"'
            raise SetupError(f"{where}: devices {key} = {value!r}: write {wanted}")
    try:
        return DeviceProfile(**table)
    except ValueError as exc:  # the profile's own check of each choice, naming the choices
        raise SetupError(f"{where}: devices: {exc}") from None


def pytest_options(profile: DeviceProfile) -> list[str]:
    """The options that make a pytest run choose ``profile``: each field away from its default
    as its option (``--nic e1000e``, a switch alone: ``--usb``); none for the default."""
    options: list[str] = []
    for key, value in asdict(profile).items():
        if value == getattr(DEFAULT, key):
            continue
        options += [f"--{key}"] if isinstance(value, bool) else [f"--{key}", str(value)]
    return options


def settings_fields(profile: DeviceProfile) -> dict[str, Any]:
    """The session settings that make ``profile`` (harness.session.Settings: same names)."""
    return asdict(profile)
