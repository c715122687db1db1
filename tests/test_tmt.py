"""tmt metadata (plans/, tmt/) lints clean with tmt's own linter, names a real cell, and the
results the tmt test writes pass tmt's own results schema."""

import json
import subprocess
import sys
from pathlib import Path

import fmf  # type: ignore[import-untyped]
import fmf.utils  # type: ignore[import-untyped]
import tmt.utils  # type: ignore[import-untyped]

from harness.matrix import spec as matrix
from harness.results import tmt as tmt_results

ROOT = Path(__file__).resolve().parent.parent
TMT = Path(sys.executable).parent / "tmt"


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TMT), "--root", str(tree), "lint"], capture_output=True, text=True, check=False
    )


def test_tmt_metadata_lints_clean() -> None:
    result = lint(ROOT)
    flagged = [ln for ln in result.stdout.splitlines() if ln.startswith(("fail", "warn"))]
    assert result.returncode == 0 and not flagged, result.stdout + result.stderr


def test_tmt_lint_fails_a_broken_plan(tmp_path: Path) -> None:
    (tmp_path / ".fmf").mkdir()
    (tmp_path / ".fmf" / "version").write_text("1\n")
    (tmp_path / "plan.fmf").write_text("summary: broken\nexecute:\n    how: nonsense\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "fail" in result.stdout


def test_the_plans_default_cell_is_a_cell_of_the_default_matrix() -> None:
    plan = fmf.Tree(str(ROOT)).find("/plans/cell")
    labels = {cell.label for cell in matrix.load(matrix.DEFAULT_MATRIX)}
    assert plan.data["environment"]["S3S4_CELL"] in labels


def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "data" / "matrix" / "cells" / "20261124-000000-abcd"
    evidence = run / "guests" / "cell1" / "test_s3"
    evidence.mkdir(parents=True)
    (evidence / "serial.log").write_text("PM: suspend entry (deep)\n")
    (run / "junit.xml").write_text("<testsuites/>")
    cycle = {"verdict": "FAIL", "artifacts": {"serial_log": "guests/cell1/test_s3/serial.log"}}
    records = [
        {
            "test": "testcases/t.py::test_s3[cell1-s3-agent]",
            "cell": "cell1",
            "outcome": "failed",
            "duration_s": 75.4,
            "verdicts": ["FAIL"],
            "error": "",
            "series": [{"verdict": "FAIL", "reason": "clock_in_step: -6 s", "cycles": [cycle]}],
        },
        {
            "test": "testcases/t.py::test_s1[cell1-standby]",
            "cell": "cell1",
            "outcome": "skipped",
            "duration_s": 2,
            "verdicts": ["UNSUPPORTED"],
            "error": "",
            "series": [],
        },
        {
            "test": "testcases/t.py::test_s4[cell1-s4-agent]",
            "cell": "cell1",
            "outcome": "skipped",
            "duration_s": 3,
            "verdicts": ["FAIL"],
            "error": "",
            "series": [],
        },
        {
            "test": "testcases/t.py::test_boot[cell1]",
            "cell": "cell1",
            "outcome": "failed",
            "duration_s": 1,
            "verdicts": [],
            "error": "E   BootTimeout: boot",
            "series": [],
        },
    ]
    (run / "results.json").write_text(json.dumps({"tests": records, "cells": [{"id": "cell1"}]}))
    return run


def test_results_become_tmt_custom_results_that_tmt_accepts(tmp_path: Path) -> None:
    run = run_dir(tmp_path)
    data = tmp_path / "data"
    results = json.loads(tmt_results.write([run], data).read_text())
    by_name = {r["name"]: r for r in results}
    s3 = by_name["/cell1/testcases/t.py/test_s3[s3-agent]"]
    assert s3["result"] == "fail" and "clock_in_step: -6 s" in s3["note"]
    assert s3["duration"] == "00:01:15"
    assert "matrix/cells/20261124-000000-abcd/guests/cell1/test_s3/serial.log" in s3["log"]
    assert all((data / log).is_file() for r in results for log in r["log"])
    outcomes = [
        by_name[f"/cell1/testcases/t.py/{n}"]["result"]
        for n in ("test_s1[standby]", "test_s4[s4-agent]", "test_boot")
    ]
    assert outcomes == ["skip", "warn", "error"]
    schema = tmt.utils.load_schema(Path("results.yaml"))
    checked = fmf.utils.validate_data(results, schema, schema_store=tmt.utils.load_schema_store())
    assert not checked.errors, checked.errors


def test_tmt_schema_check_rejects_a_wrong_outcome(tmp_path: Path) -> None:
    schema = tmt.utils.load_schema(Path("results.yaml"))
    bad = [{"name": "/x", "result": "xfail"}]
    checked = fmf.utils.validate_data(bad, schema, schema_store=tmt.utils.load_schema_store())
    assert checked.errors
