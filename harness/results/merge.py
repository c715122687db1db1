"""Results of several runs as one matrix (cases by cells), and two matrices compared.

Input is what each run writes, ``results.json`` (see docs/results-schema.md); a run may hold
one cell or several, and shards of one matrix merge into the matrix of the whole.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SetupError

MATRIX_SCHEMA = 1
# Worst first: a case's verdict in a cell is the worst of its series.
SEVERITY = ("ERROR", "FAIL", "XFAIL", "UNSUPPORTED", "PASS")
BAD = {"ERROR", "FAIL"}


def load_run(path: Path) -> dict[str, Any]:
    """A run's results.json, given the file or its run directory."""
    file = path / "results.json" if path.is_dir() else path
    try:
        data: dict[str, Any] = json.loads(file.read_text())
    except FileNotFoundError as exc:
        raise SetupError(f"no results.json at {path}") from exc
    except json.JSONDecodeError as exc:
        raise SetupError(f"{file} is not valid JSON: {exc}") from exc
    if "tests" not in data or "cells" not in data:
        raise SetupError(f"{file} is not a harness results.json (no tests or cells)")
    return data


def case_name(nodeid: str, cell: str | None) -> str:
    """The test's id without its cell: the same case in every cell has the same name."""
    if not cell:
        return nodeid
    return nodeid.replace(f"[{cell}]", "").replace(f"[{cell}-", "[")


def record_verdict(record: dict[str, Any]) -> str:
    """One word per case and cell: the worst verdict of its series, XFAIL for a known issue,
    ERROR when the test failed before any verdict (e.g. in its setup)."""
    verdicts = list(record.get("verdicts") or [])
    if record.get("outcome") == "skipped" and "FAIL" in verdicts:
        return "XFAIL"
    if not verdicts:
        return "ERROR" if record.get("outcome") == "failed" else "PASS"
    return str(min(verdicts, key=lambda v: SEVERITY.index(v) if v in SEVERITY else 0))


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs (or shards) into one matrix; a later run's result for a case and cell wins."""
    cells: dict[str, Any] = {}
    cases: dict[str, dict[str, Any]] = {}
    for run in runs:
        for cell in run.get("cells", []):
            cells[cell["id"]] = cell
        for record in run["tests"]:
            cell_id = record.get("cell")
            if not cell_id:
                continue  # harness self-tests without a cell
            first_series = (record.get("series") or [{}])[0]
            cases.setdefault(case_name(record["test"], cell_id), {})[cell_id] = {
                "verdict": record_verdict(record),
                "outcome": record.get("outcome"),
                "duration_s": record.get("duration_s"),
                "run": run.get("run_id"),
                "reason": first_series.get("reason", "") if isinstance(first_series, dict) else "",
            }
    return {
        "schema": MATRIX_SCHEMA,
        "runs": [run.get("run_id") for run in runs],
        "cells": dict(sorted(cells.items())),
        "cases": {case: dict(sorted(by_cell.items())) for case, by_cell in sorted(cases.items())},
    }


def verdict_table(matrix: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Only the verdicts: what two matrices must share to be the same result."""
    return {
        case: {cell: entry["verdict"] for cell, entry in by_cell.items()}
        for case, by_cell in matrix["cases"].items()
    }


@dataclass(frozen=True)
class Change:
    kind: str  # regression | fix | new-failure | missing
    case: str
    cell: str
    was: str | None
    now: str | None


@dataclass
class Comparison:
    changes: list[Change] = field(default_factory=list)

    def of(self, kind: str) -> list[Change]:
        return [change for change in self.changes if change.kind == kind]

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(change) for change in self.changes]


def compare(old: dict[str, Any], new: dict[str, Any]) -> Comparison:
    """What changed from ``old`` to ``new``, case by case and cell by cell (as SQUAD and
    KernelCI report it): regressions (was good, now FAIL/ERROR), fixes, failures of cases or
    cells the old run did not have, and results the new run lacks."""
    before, after = verdict_table(old), verdict_table(new)
    result = Comparison()
    for case in sorted(set(before) | set(after)):
        for cell in sorted(set(before.get(case, {})) | set(after.get(case, {}))):
            was, now = before.get(case, {}).get(cell), after.get(case, {}).get(cell)
            kind = _change(was, now)
            if kind:
                result.changes.append(Change(kind, case, cell, was, now))
    return result


def _change(was: str | None, now: str | None) -> str | None:
    if now is None:
        return "missing"
    if was is None:
        return "new-failure" if now in BAD else None
    if now in BAD and was not in BAD:
        return "regression"
    if was in BAD and now not in BAD:
        return "fix"
    return None
