"""The balloon across a sleep: with its statistics polled every BALLOON_POLL_S, the guest's
statistics arrive again (``guest-stats``'s ``last-update`` advances) within BALLOON_S of the
wake."""

from __future__ import annotations

import time

from harness.checks.peripherals.monitor import qmp
from harness.checks.verdict import CheckResult, CycleEvidence
from harness.machines.devices import BALLOON_ID
from harness.machines.protocol import Machine

BALLOON_POLL_S = 2  # guest-stats-polling-interval: the guest is asked this often
BALLOON_S = 15.0  # several polling intervals, for a TCG guest resuming its devices
BALLOON_PATH = f"/machine/peripheral/{BALLOON_ID}"


def _last_update(machine: Machine) -> int:
    stats = qmp(machine, "qom-get", {"path": BALLOON_PATH, "property": "guest-stats"})
    return int(stats.get("last-update", 0)) if isinstance(stats, dict) else 0


def _poll_stats(machine: Machine) -> None:
    qmp(
        machine,
        "qom-set",
        {"path": BALLOON_PATH, "property": "guest-stats-polling-interval", "value": BALLOON_POLL_S},
    )


def _wait_update(machine: Machine, since: int) -> tuple[int, float]:
    """The balloon's last-update once it is past ``since`` (or as it is at BALLOON_S), and the
    seconds waited."""
    started = time.monotonic()
    while True:
        last = _last_update(machine)
        waited = time.monotonic() - started
        if last > since or waited >= BALLOON_S:
            return last, waited
        time.sleep(0.5)  # a poll of QEMU's own value, at a fraction of the polling interval


def balloon_before(machine: Machine, facts: dict[str, str]) -> None:
    _poll_stats(machine)
    last, waited = _wait_update(machine, 0)
    facts["balloon.last_update"] = str(last)
    facts["balloon.waited_s"] = f"{waited:.1f}"


def balloon_after(machine: Machine, before: dict[str, str], facts: dict[str, str]) -> None:
    # After S4 this is a new QEMU process: its polling is set afresh (a no-op after S3).
    _poll_stats(machine)
    since = max(_last_update(machine), int(before.get("balloon.last_update", "0") or 0))
    facts["balloon.since"] = str(since)
    last, waited = _wait_update(machine, since)
    facts["balloon.last_update"] = str(last)
    facts["balloon.waited_s"] = f"{waited:.1f}"


def balloon_stats(ev: CycleEvidence) -> CheckResult:
    """The guest's balloon statistics update after the wake as they did before the sleep."""
    name = f"virtio-balloon-pci {BALLOON_ID} (virtio_balloon)"
    before, after = ev.before, ev.after
    data = {k: {"before": before.get(k), "after": after.get(k)} for k in ("balloon.last_update",)}
    problems = []
    if error := before.get("balloon.error"):
        problems.append(f"not read before the sleep: {error}")
    elif before.get("balloon.last_update", "0") == "0":
        problems.append(f"no guest statistics before the sleep within {BALLOON_S:.0f}s")
    if error := after.get("balloon.error"):
        problems.append(f"not read after the wake: {error}")
    elif not problems:
        since, last = after.get("balloon.since", "0"), after.get("balloon.last_update", "0")
        if int(last or 0) <= int(since or 0):
            problems.append(
                f"guest statistics stopped: last-update stayed at {since} for "
                f"{BALLOON_S:.0f}s after the wake (polled every {BALLOON_POLL_S}s)"
            )
    if problems:
        return CheckResult("balloon_stats", False, f"{name}: {'; '.join(problems)}", data)
    waited = after.get("balloon.waited_s", "?")
    return CheckResult(
        "balloon_stats", True, f"{name}: guest statistics updated {waited}s after the wake", data
    )
