"""Endurance on a real guest: a failure in the middle is counted and classified, and the run
goes on from the ready checkpoint instead of stopping."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.cycle.faults import kill_sentinel
from harness.session import Settings
from harness.tools.endurance import run_endurance

pytestmark = pytest.mark.selftest


def test_a_failed_cycle_is_counted_and_the_run_goes_on(tmp_path: Path) -> None:
    fault = replace(kill_sentinel(), cycles=(2,))
    path = run_endurance("s3-agent", 3, Settings(), tmp_path, lambda _line: None, [fault])
    payload = json.loads(path.read_text())
    assert [c["verdict"] for c in payload["cycles"]] == ["PASS", "FAIL", "PASS"], payload
    summary = payload["summary"]
    assert (summary["passed"], summary["cycles"]) == (2, 3)
    (failure,) = summary["failures"]
    assert "sentinel_carried_on" in failure["class"] and failure["first_cycle"] == 2, failure
