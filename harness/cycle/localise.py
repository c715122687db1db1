"""Stage localisation: after a failure, rerun the transition through /sys/power/pm_test.

Each level runs the kernel's suspend sequence only up to that point and returns on its own
(after pm_test_delay), so the first level that fails or hangs says which stage broke. When
every level passes, the fault lies past the kernel's core suspend: in the platform's own
transition (firmware, QEMU) or in the wake.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.machines.protocol import Machine

LEVELS = ("freezer", "devices", "platform", "processors", "core")
LEVEL_TIMEOUT = 60


def pm_test_state(power_states: tuple[str, ...]) -> str:
    """The word written to /sys/power/state for a transition's needs."""
    return "disk" if "disk" in power_states else power_states[0]


def localise(machine: Machine, state: str) -> dict[str, Any]:
    """Run every pm_test level in the guest; results per level and a one-line summary."""
    results: dict[str, str] = {}
    machine.ensure_ready()
    for level in LEVELS:
        script = (
            f"echo 1 > /sys/module/suspend/parameters/pm_test_delay 2>/dev/null; "
            f"echo {level} > /sys/power/pm_test && "
            f"timeout {LEVEL_TIMEOUT} sh -c 'echo {state} > /sys/power/state'; "
            f"status=$?; echo none > /sys/power/pm_test; exit $status"
        )
        try:
            result = machine.run(script, timeout=LEVEL_TIMEOUT + 30)
        except HarnessError as exc:
            results[level] = f"hung ({exc})"
            machine.stop()
            break
        results[level] = (
            "ok"
            if result.ok
            else f"failed (exit {result.exit_status}: {result.stderr.strip()[-200:]})"
        )
        if not result.ok:
            break
    failing = [lvl for lvl, res in results.items() if res != "ok"]
    summary = (
        f"first failing level: {failing[0]} ({results[failing[0]]})"
        if failing
        else "all levels pass: the fault lies beyond the kernel's core suspend "
        "(platform transition or wake)"
    )
    return {"state": state, "levels": results, "summary": summary}
