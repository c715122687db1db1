"""Verdicts and the records that carry them: evidence in, verdict out."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Verdict(enum.Enum):
    PASS = "PASS"  # the state was entered, left, and every check held
    FAIL = "FAIL"  # the guest, QEMU or a device misbehaved
    UNSUPPORTED = "UNSUPPORTED"  # this combination does not offer the state
    ERROR = "ERROR"  # the harness could not do its part


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True


# How ``after_error`` begins when the cycle closed ssh on a guest it cannot reach over the
# network: steps after that which need ssh would only wait out its bound.
SSH_GIVEN_UP = "ssh given up"


@dataclass
class CycleEvidence:
    """Everything one transition produced; checks read it, reports render it."""

    transition: str
    cycle: int = 1
    expected_events: list[str] = field(default_factory=list)
    expected_kernel_records: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    after_error: str = ""  # why the look after the wake ended early (SSH_GIVEN_UP: …)
    kernel_messages: list[str] = field(default_factory=list)
    kernel_log: list[str] = field(default_factory=list)
    expects_suspend_count: bool = False
    tcp_expected: bool = False
    clock_tolerance_s: float = 2.0
    faults: list[str] = field(default_factory=list)
    # Host monotonic seconds when the request was sent, on the clock of the events' "received":
    # the origin a report's timeline places the events on. 0 when the cycle sent no request.
    request_at: float = 0.0


@dataclass
class CycleOutcome:
    verdict: Verdict
    reason: str
    evidence: CycleEvidence
    checks: list[CheckResult] = field(default_factory=list)
    combination: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    # What the evidence names as the cause beyond doubt (e.g. "entered s2idle, not deep");
    # a known issue never absorbs such a FAIL unless it names that cause itself.
    cause: str = ""

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "cause": self.cause,
            "combination": self.combination,
            "artifacts": self.artifacts,
            "checks": [asdict(c) for c in self.checks],
            "evidence": asdict(self.evidence),
        }


_SEVERITY = (Verdict.FAIL, Verdict.ERROR, Verdict.UNSUPPORTED)


@dataclass
class CycleSeries:
    """One test's cycles of one transition on one guest: per-cycle outcomes and a pass rate."""

    transition: str
    requested: int
    outcomes: list[CycleOutcome] = field(default_factory=list)
    localisation: dict[str, Any] = field(default_factory=dict)
    known_issue: str = ""

    @property
    def last(self) -> CycleOutcome:
        return self.outcomes[-1]

    @property
    def passed(self) -> int:
        return sum(o.verdict is Verdict.PASS for o in self.outcomes)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.requested if self.requested else 0.0

    @property
    def verdict(self) -> Verdict:
        for verdict in _SEVERITY:
            if any(o.verdict is verdict for o in self.outcomes):
                return verdict
        return Verdict.PASS if self.passed == self.requested else Verdict.ERROR

    @property
    def reason(self) -> str:
        for outcome in self.outcomes:
            if outcome.verdict is not Verdict.PASS:
                prefix = f"cycle {outcome.evidence.cycle}/{self.requested}: "
                extra = self.localisation.get("summary")
                return prefix + outcome.reason + (f" [pm_test: {extra}]" if extra else "")
        return ""

    @property
    def cause(self) -> str:
        """The named cause of the first cycle that did not pass (see ``CycleOutcome.cause``)."""
        return next((o.cause for o in self.outcomes if o.verdict is not Verdict.PASS), "")

    def to_json(self) -> dict[str, Any]:
        return {
            "transition": self.transition,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "cause": self.cause,
            "cycles_requested": self.requested,
            "cycles_passed": self.passed,
            "pass_rate": round(self.pass_rate, 3),
            "pm_test": self.localisation,
            "known_issue": self.known_issue,
            "cycles": [o.to_json() for o in self.outcomes],
        }
