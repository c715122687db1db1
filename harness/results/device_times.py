"""Per-device suspend and resume times of a cycle, from the device PM probe's facts
(``devpm.slow.N=USECS PHASE DRIVER DEVICE`` in the evidence's ``after``; see
harness/checks/scripts/devpm_after.sh): which driver's callback took how long."""

from __future__ import annotations

from typing import Any

FACT_PREFIX = "devpm.slow."
KEY_PREFIX = "device "  # a device callback among a cycle's stages: "device resume virtio-pci …"


def device_times(after: dict[str, Any]) -> dict[str, float]:
    """``device PHASE DRIVER DEVICE`` -> seconds, the slowest callbacks of one cycle."""
    found: dict[str, float] = {}
    for key, value in after.items():
        if not key.startswith(FACT_PREFIX):
            continue
        usecs, _, what = str(value).partition(" ")
        try:
            found[KEY_PREFIX + what.strip()] = int(usecs) / 1e6
        except ValueError:
            continue  # a line the probe did not write
    return found


def cycle_device_times(cycle: dict[str, Any]) -> dict[str, float]:
    """The same, from a cycle as results.json holds it."""
    return device_times(cycle.get("evidence", {}).get("after") or {})
