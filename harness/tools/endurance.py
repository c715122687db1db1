"""Endurance: cycles of one transition on one guest, for N cycles or for a while, with a pass
rate and the failures classified (which stage or which checks), for flaky suspend/resume that
one cycle misses.

Unlike a test case's series, a failed cycle does not end the run: the guest is stopped (it
may be half asleep), the next cycle starts it again from the ready checkpoint, and the
failure is counted; ``maxfail`` failures end it. Between cycles the guest may idle for a random
time, as a machine in use would. Each cycle's start, verdict and stage timings are kept, so
``./run history`` reads every cycle as a run. Not part of CI:
``./run endurance --for 8h --delay 5,60``.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.verdict import CycleOutcome, Verdict
from harness.cycle.faults import Fault
from harness.cycle.run import CycleOptions, run_cycle
from harness.errors import SetupError
from harness.machines.protocol import Machine, Signal
from harness.results.device_times import device_times
from harness.session import HarnessSession, Settings
from harness.transitions.catalogue import TRANSITIONS

DEFAULT_CYCLES = 100  # when neither a number of cycles nor a duration is given
DURATION = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")
UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


@dataclass(frozen=True)
class Limits:
    """When a run ends: after ``cycles`` cycles, after ``seconds``, or after ``maxfail``
    failed cycles, whichever comes first (None: no such limit); and the idle time between
    cycles, drawn uniformly from ``delay`` (seconds)."""

    cycles: int | None = None
    seconds: float | None = None
    maxfail: int | None = None
    delay: tuple[float, float] = (0.0, 0.0)

    def check(self) -> None:
        if self.cycles is not None and self.cycles < 1:
            raise SetupError(f"--cycles must be at least 1, not {self.cycles}")
        if self.seconds is not None and self.seconds <= 0:
            raise SetupError("--for must be a positive duration such as 90s, 10m or 8h")
        if self.maxfail is not None and self.maxfail < 1:
            raise SetupError(f"--maxfail must be at least 1, not {self.maxfail}")
        low, high = self.delay
        if not 0 <= low <= high:
            raise SetupError(f"--delay MIN,MAX needs 0 <= MIN <= MAX, not {low:g},{high:g}")


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``1.5h`` or ``1h30m``."""
    parts = DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise SetupError(f"cannot read the duration {text!r}: write it as 90s, 10m, 1h30m or 8h")
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)


def parse_delay(text: str) -> tuple[float, float]:
    """``MIN,MAX`` (each a duration) as seconds; one value is a fixed idle time."""
    low, _, high = text.partition(",")
    return parse_duration(low), parse_duration(high or low)


@dataclass
class EnduranceTally:
    transition: str
    cycles: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, number: int, outcome: CycleOutcome, seconds: float, started: float | None = None
    ) -> None:
        self.cycles.append(
            {
                "cycle": number,
                "started": _iso(started if started is not None else time.time()),
                "verdict": outcome.verdict.value,
                "class": failure_class(outcome),
                "reason": outcome.reason[:500],
                "seconds": round(seconds, 2),
                "timings": {k: round(v, 3) for k, v in outcome.evidence.timings.items()},
                "devices": device_times(outcome.evidence.after),
            }
        )

    @property
    def failed(self) -> int:
        return sum(c["verdict"] != "PASS" for c in self.cycles)

    def summary(self) -> dict[str, Any]:
        passed = sum(c["verdict"] == "PASS" for c in self.cycles)
        classes = Counter(c["class"] for c in self.cycles if c["verdict"] != "PASS")
        first: dict[str, int] = {}
        for c in self.cycles:
            if c["verdict"] != "PASS":
                first.setdefault(c["class"], c["cycle"])
        return {
            "transition": self.transition,
            "cycles": len(self.cycles),
            "passed": passed,
            "pass_rate": passed / len(self.cycles) if self.cycles else 0.0,
            "failures": [
                {"class": name, "count": count, "first_cycle": first[name]}
                for name, count in classes.most_common()
            ],
        }


def failure_class(outcome: CycleOutcome) -> str:
    """What kind of failure: the failed checks by name, else the stage the reason names."""
    if outcome.verdict is Verdict.PASS:
        return "pass"
    failed = sorted(check.name for check in outcome.failed_checks)
    if failed:
        return "checks: " + ", ".join(failed)
    stage = outcome.reason.split(":", 1)[0].strip()
    return f"{outcome.verdict.value.lower()}: {stage or 'unknown'}"


def run_endurance(
    transition_id: str,
    cycles: int | None,
    settings: Settings,
    out_dir: Path,
    progress: Callable[[str], None],
    faults: Sequence[Fault] = (),
    limits: Limits | None = None,
    rng: random.Random | None = None,
) -> Path:
    """Cycles of ``transition_id`` until ``limits`` (or ``cycles``) end the run; writes
    ``endurance.json`` after every cycle and returns its path. ``faults`` (with their cycle
    numbers) are for proving that failures are counted."""
    transition = TRANSITIONS.get(transition_id)
    if transition is None:
        raise SetupError(
            f"unknown transition {transition_id!r}: use one of {', '.join(sorted(TRANSITIONS))}"
        )
    limits = limits or Limits(cycles=cycles)
    if limits.cycles is None and limits.seconds is None:
        limits = Limits(DEFAULT_CYCLES, None, limits.maxfail, limits.delay)
    limits.check()
    rng = rng or random.Random()
    out_dir.mkdir(parents=True, exist_ok=True)
    session = HarnessSession(settings, out_dir / "guests", progress)
    tally = EnduranceTally(transition.id)
    path = out_dir / "endurance.json"
    clock = RunClock(limits)
    try:
        progress(f"cell {session.cell.id}: {transition.id}, {limits_text(limits)}")
        machine = session.fresh_guest("endurance")
        number = 0
        while (stop := clock.stop_reason(number, tally.failed)) is None:
            number += 1
            started, wall = time.monotonic(), time.time()
            outcome = run_cycle(
                machine, transition, faults=faults, cycle=number, options=CycleOptions()
            )
            tally.add(number, outcome, time.monotonic() - started, wall)
            progress(clock.line(number, outcome, tally))
            if outcome.verdict is Verdict.UNSUPPORTED:
                clock.stopped = "the cell does not offer the state"
                break  # more cycles prove nothing
            if outcome.verdict is not Verdict.PASS:
                machine.stop()  # the next cycle starts from the checkpoint, not from a fault
            path.write_text(json.dumps(_payload(session, tally, limits, clock), indent=2) + "\n")
            if clock.stop_reason(number, tally.failed) is None:
                idle(machine, clock.delay(rng))
        clock.stopped = clock.stopped or stop or ""
    finally:
        session.close()
    path.write_text(json.dumps(_payload(session, tally, limits, clock), indent=2) + "\n")
    return path


class RunClock:
    """The run's elapsed time against its limits: when to stop, how long to idle, and the
    progress line (pass rate, time left)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.stopped = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stop_reason(self, done: int, failed: int) -> str | None:
        limits = self.limits
        if limits.maxfail is not None and failed >= limits.maxfail:
            return f"{failed} failed cycle(s) (--maxfail {limits.maxfail})"
        if limits.cycles is not None and done >= limits.cycles:
            return f"{done} cycles done"
        if limits.seconds is not None and self.elapsed() >= limits.seconds:
            return f"{_clock(limits.seconds)} elapsed"
        return None

    def delay(self, rng: random.Random) -> float:
        """The idle time before the next cycle, cut short at the end of the run's time."""
        wanted = rng.uniform(*self.limits.delay)
        if self.limits.seconds is not None:
            wanted = min(wanted, max(0.0, self.limits.seconds - self.elapsed()))
        return wanted

    def left(self, done: int) -> float | None:
        """Seconds until a limit ends the run: by the clock, or by the mean cycle so far."""
        estimates = []
        if self.limits.seconds is not None:
            estimates.append(max(0.0, self.limits.seconds - self.elapsed()))
        if self.limits.cycles is not None and done:
            estimates.append(self.elapsed() / done * (self.limits.cycles - done))
        return min(estimates) if estimates else None

    def line(self, number: int, outcome: CycleOutcome, tally: EnduranceTally) -> str:
        passed = number - tally.failed
        of = f"/{self.limits.cycles}" if self.limits.cycles is not None else ""
        left = self.left(number)
        return (
            f"cycle {number}{of}: {outcome.verdict.value} {outcome.reason[:120]}".rstrip()
            + f" | {passed}/{number} passed ({passed / number:.1%}), "
            + f"{_clock(self.elapsed())} elapsed"
            + (f", {_clock(left)} left" if left is not None else "")
        )


def idle(machine: Machine, seconds: float) -> None:
    """The guest idles for ``seconds`` between cycles: a bounded wait on its power-off (a
    guest that powers itself off ends the idle time early; the next cycle starts it again)."""
    if seconds > 0:
        machine.wait_signal(Signal.POWERED_OFF, machine.events.mark(), seconds)


def limits_text(limits: Limits) -> str:
    parts = []
    if limits.cycles is not None:
        parts.append(f"{limits.cycles} cycles")
    if limits.seconds is not None:
        parts.append(f"for {_clock(limits.seconds)}")
    if limits.maxfail is not None:
        parts.append(f"at most {limits.maxfail} failures")
    if limits.delay != (0.0, 0.0):
        parts.append(f"idle {limits.delay[0]:g}-{limits.delay[1]:g}s between cycles")
    return ", ".join(parts)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall))


def _payload(
    session: HarnessSession, tally: EnduranceTally, limits: Limits, clock: RunClock
) -> dict[str, Any]:
    cell = session.resolved_cell
    return {
        "cell": cell.id if cell else None,
        "cells": [{"id": cell.id, **asdict(cell)}] if cell else [],
        "started": _iso(clock.started_wall),
        "duration_s": round(clock.elapsed(), 1),
        "limits": {**asdict(limits), "delay": list(limits.delay)},
        "stopped_by": clock.stopped,
        "summary": tally.summary(),
        "cycles": tally.cycles,
    }


def table(payload: dict[str, Any], write: Callable[[str], None] = print) -> None:
    summary = payload["summary"]
    write(
        f"{payload['cell']}  {summary['transition']}: {summary['passed']}/{summary['cycles']} "
        f"cycles passed ({summary['pass_rate']:.1%}) in {_clock(payload.get('duration_s', 0))}"
        + (f"; stopped: {payload['stopped_by']}" if payload.get("stopped_by") else "")
    )
    for failure in summary["failures"]:
        write(
            f"  {failure['count']:4}x  {failure['class']}  (first: cycle {failure['first_cycle']})"
        )
