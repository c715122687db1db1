"""``./run history`` over runs of a real guest: a pass, an injected failure and a pass give the
failure's first run, the flip and the fix; a fourth run whose entry into sleep is slowed inside
the guest (a systemd sleep hook that sleeps: the guest's own time, whatever --timeout-scale
says) is reported slower; the exit status gates on each.

Each run is one S3 cycle on this test's guest (restored from the session's ready checkpoint),
written as a run writes it (RunReport, records as the plugin makes them), so that no run pays
for a boot of its own.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.checks.verdict import CycleSeries, Verdict
from harness.cycle.faults import BEFORE_REQUEST, Fault, kill_sentinel
from harness.cycle.run import run_series
from harness.machines.protocol import Machine
from harness.matrix.cell import Cell
from harness.results.run_report import RunReport, new_run_id
from harness.transitions.catalogue import S3_SYSTEMCTL
from tests.chromium import chromium_dom

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
HOOK = "/usr/lib/systemd/system-sleep/slow-entry"
CASE = "testcases/test_suspend_to_ram.py::test_suspend_to_ram"
DELAY_S = 6  # well above the spread of request_to_entry between cycles


def slow_entry() -> Fault:
    """systemd-sleep runs its hooks before it writes /sys/power/state: this one sleeps."""

    def install(machine: Machine) -> None:
        script = f'#!/bin/sh\n[ "$1" = pre ] && sleep {DELAY_S}\nexit 0\n'
        result = machine.run(f"mkdir -p {Path(HOOK).parent} && cat > {HOOK} && chmod +x {HOOK}",
                             stdin=script.encode())  # fmt: skip
        assert result.ok, result.stderr

    return Fault(f"systemd sleep hook sleeping {DELAY_S}s", install, BEFORE_REQUEST)


def one_run(root: Path, guest: Machine, cell: Cell, faults: list[Fault]) -> Verdict:
    run_id = new_run_id()
    report = RunReport(root / run_id, run_id)
    report.add_cell(cell)
    series = CycleSeries(S3_SYSTEMCTL.id, 1, run_series(guest, S3_SYSTEMCTL, 1, faults))
    report.add(
        {
            "test": f"{CASE}[{cell.id}-s3-systemctl]",
            "cell": cell.id,
            "outcome": "passed" if series.verdict is Verdict.PASS else "failed",
            "when": "call",
            "duration_s": 0.0,
            "verdicts": [series.verdict.value],
            "series": [series.to_json()],
            "error": "",
        }
    )
    report.write(0 if series.verdict is Verdict.PASS else 1)
    if series.verdict is not Verdict.PASS:
        guest.stop()  # the next run restores the checkpoint, as a new run would
    return series.verdict


def history(runs: list[Path], out: Path) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [str(ROOT / "run"), "history", *map(str, runs), "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode in (0, 1, 3), result.stdout[-2000:] + result.stderr[-2000:]
    return result.returncode, json.loads((out / "history.json").read_text()), result.stdout


def test_history_names_the_failure_the_flip_the_fix_and_a_slowdown(
    guest: Machine, cell: Cell, tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    verdicts = [one_run(root, guest, cell, faults) for faults in ([], [kill_sentinel()], [])]
    assert verdicts == [Verdict.PASS, Verdict.FAIL, Verdict.PASS]
    runs = sorted(d for d in root.iterdir() if not d.is_symlink())  # not latest

    status, found, text = history(runs[:2], tmp_path / "h2")
    (row,) = found["rows"]
    assert status == 1 and row["status"] == "new-failure", text
    assert row["failing_since"] == runs[1].name and row["last_pass"] == runs[0].name

    status, found, text = history(runs, tmp_path / "h3")
    (row,) = found["rows"]
    assert status == 0, text
    assert (row["status"], row["flips"], row["flaky"]) == ("fixed", 2, True), row
    assert row["verdicts"] == ["PASS", "FAIL", "PASS"] and row["last_pass"] == runs[2].name
    assert "sentinel_carried_on" in row["reasons"][1]
    assert f"fixed        PFP  {CASE}[s3-systemctl] on " in text

    assert one_run(root, guest, cell, [slow_entry()]) is Verdict.PASS
    runs = sorted(d for d in root.iterdir() if not d.is_symlink())  # not latest
    status, found, text = history([root], tmp_path / "h4")
    (row,) = found["rows"]
    slow = {s["stage"]: s for s in row["slowdowns"]}
    assert status == 3 and "request_to_entry" in slow, text
    assert slow["request_to_entry"]["seconds"] > slow["request_to_entry"]["threshold"]
    assert slow["request_to_entry"]["seconds"] - slow["request_to_entry"]["median"] >= DELAY_S - 1
    assert "slower: request_to_entry" in text

    dom = chromium_dom((tmp_path / "h4" / "history.html").as_uri())
    assert 'data-rendered="yes"' in dom and "request_to_entry" in dom and "slower" in dom
    assert dom.count('class="v PASS"') == 3 and dom.count('class="v FAIL"') == 1
