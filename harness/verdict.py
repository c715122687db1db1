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


@dataclass
class CycleEvidence:
    """Everything one transition produced; checks read it, reports render it."""

    transition: str
    state: str
    events: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    after_error: str = ""
    kernel_messages: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)


@dataclass
class CycleOutcome:
    verdict: Verdict
    reason: str
    evidence: CycleEvidence
    checks: list[CheckResult] = field(default_factory=list)
    combination: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "combination": self.combination,
            "artifacts": self.artifacts,
            "checks": [asdict(c) for c in self.checks],
            "evidence": asdict(self.evidence),
        }
