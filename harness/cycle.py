"""One power cycle: capture facts, request sleep, prove entry, wake, capture again, judge."""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness import probes as probe_lib
from harness.checks import DEFAULT_CHECKS, Check
from harness.errors import (
    GuestFault,
    HarnessError,
    SetupError,
    StateUnsupported,
    SuspendNotEntered,
)
from harness.machine import Machine, Signal
from harness.qemu.agent import AgentCommandError
from harness.transitions import SleepState, Transition
from harness.verdict import CycleEvidence, CycleOutcome, Verdict

KERNEL_PM_LINE = re.compile(
    r"PM: |ACPI: PM|ACPI: Waking|hibernation|Freezing|Restarting tasks|Image loading|swap"
)
ENTRY_POLL_SLICE = 0.5  # how often a wait for entry also looks at the request's answer


@dataclass(frozen=True)
class Fault:
    """Something done to a guest on purpose while it sleeps, to prove a check can fail."""

    name: str
    apply: Callable[[Machine], None]


FRESH_SWAP_WHILE_HIBERNATED = Fault(
    "fresh swap disk while hibernated (the guest must cold boot instead of resuming)",
    lambda machine: machine.replace_swap_disk(),
)


def run_cycle(
    machine: Machine,
    transition: Transition,
    *,
    faults: Sequence[Fault] = (),
    probes: tuple[probe_lib.Probe, ...] = probe_lib.DEFAULT_PROBES,
    checks: Sequence[Check] = DEFAULT_CHECKS,
) -> CycleOutcome:
    """Run one transition on ``machine`` and return its verdict; never raises HarnessError."""
    evidence = CycleEvidence(transition.id, transition.state.value, faults=[f.name for f in faults])
    serial_offset = _size(machine)
    mark = machine.events.mark()
    started = time.monotonic()
    try:
        machine.ensure_ready()
        evidence.before = _capture(machine, probes, "before", evidence)
        _preflight(machine, transition.state, evidence.before)
        mark = machine.events.mark()
        _enter(machine, transition, mark, evidence.timings)
        for fault in faults:
            fault.apply(machine)
        wake_started = time.monotonic()
        transition.wake.perform(machine, mark, evidence.timings)
        evidence.timings["wake_to_ready"] = time.monotonic() - wake_started
    except StateUnsupported as exc:
        return _finish(machine, evidence, mark, serial_offset, Verdict.UNSUPPORTED, str(exc))
    except GuestFault as exc:
        machine.stop()  # leave no half-asleep guest to the next test
        return _finish(machine, evidence, mark, serial_offset, Verdict.FAIL, str(exc))
    except HarnessError as exc:
        return _finish(machine, evidence, mark, serial_offset, Verdict.ERROR, str(exc))
    try:
        evidence.after = _capture(machine, probes, "after", evidence)
    except HarnessError as exc:
        evidence.after_error = str(exc)
    outcome = _finish(machine, evidence, mark, serial_offset, Verdict.PASS, "")
    outcome.checks = [check(evidence) for check in checks]
    if outcome.failed_checks:
        outcome.verdict = Verdict.FAIL
        outcome.reason = "; ".join(f"{c.name}: {c.detail}" for c in outcome.failed_checks)
    evidence.timings["cycle_total"] = time.monotonic() - started
    return outcome


def _capture(
    machine: Machine, probes: tuple[probe_lib.Probe, ...], phase: str, evidence: CycleEvidence
) -> dict[str, str]:
    start = time.monotonic()
    result = machine.run(probe_lib.script(probes, phase))
    evidence.timings[f"capture_{phase}"] = time.monotonic() - start
    if not result.ok:
        raise HarnessError(
            f"guest fact capture ({phase}) exited {result.exit_status}: "
            f"{result.stderr.strip()[-300:]}"
        )
    return probe_lib.parse_facts(result)


def _preflight(machine: Machine, state: SleepState, facts: dict[str, str]) -> None:
    """UNSUPPORTED when the guest does not offer the state; ERROR when S4 has no swap."""
    offered = facts.get("guest.power_state", "").split()
    acpi = facts.get("guest.acpi_states", "?")
    if state is SleepState.S3:
        mem_sleep = facts.get("guest.mem_sleep", "")
        if "mem" not in offered or "deep" not in mem_sleep:
            raise StateUnsupported(
                f"guest offers no S3: /sys/power/mem_sleep is '{mem_sleep}', ACPI supports {acpi}"
            )
        return
    if "disk" not in offered:
        raise StateUnsupported(
            f"guest offers no hibernation: /sys/power/state is "
            f"'{' '.join(offered)}', ACPI supports {acpi}"
        )
    # Swap is activated late in boot; hibernating before it is active keeps the guest up.
    swap = machine.run("timeout 120 systemctl start swap.target; swapon --show=NAME --noheadings")
    if not swap.stdout.strip():
        raise SetupError(
            "guest has no active swap: S4 needs a swap device at least as large as "
            "its RAM (the built-in guest gets one on /dev/vdb)"
        )


def _enter(machine: Machine, transition: Transition, mark: int, timings: dict[str, float]) -> None:
    timeouts = machine.timeouts
    start = time.monotonic()
    answer = transition.request.send(machine)
    signal = transition.state.entry_signal
    limit = timeouts.suspend_entry if transition.state is SleepState.S3 else timeouts.hibernate
    deadline = start + limit
    while machine.wait_signal(signal, mark, ENTRY_POLL_SLICE) is None:
        if answer is not None and answer.done():
            _raise_for_answer(transition, answer)
        if time.monotonic() > deadline:
            raise SuspendNotEntered(
                "suspend-entry",
                f"{transition.request.description} was sent but no {signal.value} signal came "
                f"within {limit:.0f}s; serial: {machine.serial_tail()}",
            )
    timings["request_to_entry"] = time.monotonic() - start
    if answer is not None:
        answer.cancel()
    if transition.state is SleepState.S4:
        if machine.wait_signal(Signal.POWERED_OFF, mark, timeouts.hibernate) is None:
            raise SuspendNotEntered(
                "hibernate-poweroff",
                f"image written but the VM did not power off within "
                f"{timeouts.hibernate:.0f}s; serial: {machine.serial_tail()}",
            )
        timings["request_to_poweroff"] = time.monotonic() - start


def _raise_for_answer(transition: Transition, answer: concurrent.futures.Future[object]) -> None:
    """The agent only answers a suspend request to refuse it."""
    try:
        answer.result(timeout=0)
    except AgentCommandError as exc:
        if "not supported" in exc.desc:
            raise StateUnsupported(f"{transition.request.description}: {exc.desc}") from exc
        raise GuestFault("request", str(exc)) from exc
    except HarnessError as exc:
        raise GuestFault("request", str(exc)) from exc
    except Exception as exc:  # qemu.qmp errors from the agent connection
        raise GuestFault("request", f"{transition.request.description}: {exc}") from exc


def _finish(
    machine: Machine,
    evidence: CycleEvidence,
    mark: int,
    serial_offset: int,
    verdict: Verdict,
    reason: str,
) -> CycleOutcome:
    evidence.events = [e.to_json() for e in machine.events.since(mark)]
    evidence.kernel_messages = _kernel_pm_lines(machine, serial_offset)
    return CycleOutcome(verdict, reason, evidence)


def _size(machine: Machine) -> int:
    try:
        return machine.serial_log.stat().st_size
    except OSError:
        return 0


def _kernel_pm_lines(machine: Machine, offset: int, limit: int = 200) -> list[str]:
    try:
        with machine.serial_log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    lines = [line.strip() for line in text.splitlines() if KERNEL_PM_LINE.search(line)]
    return lines[:limit]
