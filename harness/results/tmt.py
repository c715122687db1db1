"""The harness's results as tmt custom results (``result: custom``): one tmt result per test
case and cell, named ``/<cell id>/<case>``, with its evidence attached as logs.

tmt reads ``$TMT_TEST_DATA/results.json``; log paths in it are relative to that directory.
Verdicts map to tmt's outcomes: PASS pass, FAIL fail, ERROR error, UNSUPPORTED skip, and a
known issue (XFAIL) warn, its FAIL kept in the note.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.results.merge import case_name, load_run, record_verdict

OUTCOMES = {"PASS": "pass", "FAIL": "fail", "ERROR": "error", "UNSUPPORTED": "skip"}
XFAIL_OUTCOME = "warn"
RUN_FILES = ("results.json", "junit.xml", "report.html")


def tmt_results(run_dirs: list[Path], data_dir: Path) -> list[dict[str, Any]]:
    """Every test of every run, as tmt results whose logs are relative to ``data_dir``."""
    results = []
    for run_dir in run_dirs:
        run = load_run(run_dir)
        shared = [_relative(run_dir / name, data_dir) for name in RUN_FILES]
        for record in run["tests"]:
            results.append(_result(record, run_dir, data_dir, shared))
    return results


def _result(
    record: dict[str, Any], run_dir: Path, data_dir: Path, shared: list[str]
) -> dict[str, Any]:
    verdict = record_verdict(record)
    cell = record.get("cell") or "no-cell"
    name = case_name(record["test"], record.get("cell")).replace("::", "/")
    logs = []
    for series in record.get("series") or []:
        for cycle in series.get("cycles") or []:
            for path in (cycle.get("artifacts") or {}).values():
                if (run_dir / path).is_file():
                    logs.append(_relative(run_dir / path, data_dir))
    notes = [f"verdict {verdict}"]
    reason = _reason(record)
    if reason:
        notes.append(reason)
    return {
        "name": f"/{cell}/{name}",
        "result": OUTCOMES.get(verdict, XFAIL_OUTCOME if verdict == "XFAIL" else "error"),
        "note": notes,
        "log": sorted(set(logs)) + [p for p in shared if (data_dir / p).exists()],
        "duration": _duration(float(record.get("duration_s") or 0)),
        "ids": {"cell": cell, "pytest": record["test"]},
    }


def _reason(record: dict[str, Any]) -> str:
    for series in record.get("series") or []:
        if series.get("verdict") != "PASS" and series.get("reason"):
            return str(series["reason"])[:500]
    error = str(record.get("error") or "").strip()
    return error.splitlines()[-1][:500] if error else ""


def _relative(path: Path, data_dir: Path) -> str:
    return os.path.relpath(path.resolve(), data_dir.resolve())


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def write(run_dirs: list[Path], data_dir: Path) -> Path:
    """``data_dir/results.json`` for tmt; returns its path."""
    path = data_dir / "results.json"
    path.write_text(json.dumps(tmt_results(run_dirs, data_dir), indent=2) + "\n")
    return path
