"""Checks that something the guest logged came before the kernel went to sleep, or after it
came back: a system-sleep hook's lines around the sleep, a delay inhibitor's holder done
before it. They read the guest's kernel log after the wake, in which the lines of the guest
before a hibernation are kept by its image; the kernel's own entry and exit are the first and
the last of the transition's expected kernel records."""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.checks import facts as fact
from harness.checks.judges import Check
from harness.checks.verdict import CheckResult, CycleEvidence


def _first(pattern: str, lines: Sequence[str], start: int = 0) -> int | None:
    found = re.compile(pattern)
    return next((i for i in range(start, len(lines)) if found.search(lines[i])), None)


def _last(pattern: str, lines: Sequence[str]) -> int | None:
    found = re.compile(pattern)
    return next((i for i in reversed(range(len(lines))) if found.search(lines[i])), None)


def _shown(pattern: str) -> str:
    return pattern.split("|")[0].replace("\\", "")


def logged_around_sleep(
    name: str, before: Sequence[str], after: Sequence[str] = (), what: str = ""
) -> Check:
    """A check named ``name``: the guest logged ``before`` (patterns, in that order) before the
    kernel's entry into the sleep, and ``after`` after its exit; ``what`` names who logs them."""

    def check(ev: CycleEvidence) -> CheckResult:
        if fact.GUEST_BOOT_ID not in ev.after or not ev.kernel_log:
            return CheckResult(
                name, False, f"not measured after resume: {ev.after_error or 'no kernel log'}"
            )
        lines = ev.kernel_log
        records = ev.expected_kernel_records
        entry = _first(records[0], lines) if records else None
        exit_ = _last(records[-1], lines) if records else None
        data = {"before": list(before), "after": list(after), "what": what}
        if entry is None or exit_ is None:
            missing = _shown(records[0] if entry is None else records[-1]) if records else "?"
            return CheckResult(name, False, f"the kernel log lacks '{missing}'", data)
        position = 0
        for pattern in before:
            found = _first(pattern, lines, position)
            if found is None:
                return CheckResult(name, False, f"{what} never logged '{_shown(pattern)}'", data)
            if found > entry:
                return CheckResult(
                    name,
                    False,
                    f"{what} logged '{lines[found].strip()}' only after the kernel's "
                    f"'{lines[entry].strip()}': the guest slept first",
                    data,
                )
            position = found + 1
        for pattern in after:
            found = _first(pattern, lines, exit_ + 1)
            if found is None:
                return CheckResult(
                    name,
                    False,
                    f"{what} never logged '{_shown(pattern)}' after the kernel's "
                    f"'{lines[exit_].strip()}'",
                    data,
                )
        shown = [*(_shown(p) for p in before), "[sleep]", *(_shown(p) for p in after)]
        return CheckResult(name, True, f"{what}: {' -> '.join(shown)}", data)

    check.__name__ = name
    return check
