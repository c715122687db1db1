"""Endurance: N cycles of one transition on one guest, with a pass rate and the failures
classified (which stage or which checks), for flaky suspend/resume that one cycle misses.

Unlike a test case's series, a failed cycle does not end the run: the guest is stopped (it
may be half asleep), the next cycle starts it again from the ready checkpoint, and the
failure is counted. Not part of CI: ``./run endurance --cycles 100``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.verdict import CycleOutcome, Verdict
from harness.cycle.faults import Fault
from harness.cycle.run import CycleOptions, run_cycle
from harness.errors import SetupError
from harness.session import HarnessSession, Settings
from harness.transitions.catalogue import TRANSITIONS


@dataclass
class EnduranceTally:
    transition: str
    cycles: list[dict[str, Any]] = field(default_factory=list)

    def add(self, number: int, outcome: CycleOutcome, seconds: float) -> None:
        self.cycles.append(
            {
                "cycle": number,
                "verdict": outcome.verdict.value,
                "class": failure_class(outcome),
                "reason": outcome.reason[:500],
                "seconds": round(seconds, 2),
            }
        )

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
    cycles: int,
    settings: Settings,
    out_dir: Path,
    progress: Callable[[str], None],
    faults: Sequence[Fault] = (),
) -> Path:
    """``cycles`` cycles of ``transition_id``; writes ``endurance.json``, returns its path.
    ``faults`` (with their cycle numbers) are for proving that failures are counted."""
    transition = TRANSITIONS.get(transition_id)
    if transition is None:
        raise SetupError(
            f"unknown transition {transition_id!r}: use one of {', '.join(sorted(TRANSITIONS))}"
        )
    if cycles < 1:
        raise SetupError(f"--cycles must be at least 1, not {cycles}")
    out_dir.mkdir(parents=True, exist_ok=True)
    session = HarnessSession(settings, out_dir / "guests", progress)
    tally = EnduranceTally(transition.id)
    path = out_dir / "endurance.json"
    try:
        progress(f"cell {session.cell.id}: {cycles} x {transition.id}")
        machine = session.fresh_guest("endurance")
        for number in range(1, cycles + 1):
            started = time.monotonic()
            outcome = run_cycle(
                machine, transition, faults=faults, cycle=number, options=CycleOptions()
            )
            tally.add(number, outcome, time.monotonic() - started)
            progress(f"cycle {number}/{cycles}: {outcome.verdict.value} {outcome.reason[:160]}")
            if outcome.verdict is Verdict.UNSUPPORTED:
                break  # the cell does not offer the state: more cycles prove nothing
            if outcome.verdict is not Verdict.PASS:
                machine.stop()  # the next cycle starts from the checkpoint, not from a fault
            path.write_text(json.dumps(_payload(session, tally), indent=2) + "\n")
    finally:
        session.close()
    path.write_text(json.dumps(_payload(session, tally), indent=2) + "\n")
    return path


def _payload(session: HarnessSession, tally: EnduranceTally) -> dict[str, Any]:
    cell = session.resolved_cell
    return {
        "cell": cell.id if cell else None,
        "summary": tally.summary(),
        "cycles": tally.cycles,
    }


def table(payload: dict[str, Any], write: Callable[[str], None] = print) -> None:
    summary = payload["summary"]
    write(
        f"{payload['cell']}  {summary['transition']}: {summary['passed']}/{summary['cycles']} "
        f"cycles passed ({summary['pass_rate']:.1%})"
    )
    for failure in summary["failures"]:
        write(
            f"  {failure['count']:4}x  {failure['class']}  (first: cycle {failure['first_cycle']})"
        )
