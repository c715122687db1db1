"""The HTML report's data: evidence found per case and cell, latencies, safe embedding."""

import json
from pathlib import Path

from harness.results.html import evidence_index, latency_medians, render
from harness.results.merge import merge


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "guests").mkdir(parents=True)
    (run / "guests" / "serial.log").write_text("boot\n[ 1.0] PM: suspend entry (deep)\n")
    cycle = {
        "verdict": "PASS",
        "reason": "",
        "combination": {"qemu_version": "7.2.22"},
        "artifacts": {"serial_log": "guests/serial.log"},
        "checks": [{"name": "events_seen", "passed": True, "detail": "saw </script> ok"}],
        "evidence": {
            "transition": "s3-agent",
            "events": [{"event": "SUSPEND", "signals": ["suspended"]}],
            "kernel_messages": ["PM: suspend entry (deep)"],
            "timings": {"request_to_entry": 1.0, "cycle_total": 9.0},
        },
    }
    record = {
        "test": "t.py::test_s3[cellA-s3-agent]",
        "cell": "cellA",
        "outcome": "passed",
        "verdicts": ["PASS"],
        "series": [{"reason": "", "cycles": [cycle, cycle]}],
    }
    (run / "results.json").write_text(
        json.dumps({"run_id": "r1", "cells": [{"id": "cellA"}], "tests": [record]})
    )
    return run


def test_evidence_is_found_by_case_and_cell(tmp_path: Path) -> None:
    index = evidence_index([_run_dir(tmp_path)])
    entry = index[("t.py::test_s3[s3-agent]", "cellA")]
    assert entry["cycles"][0]["serial_tail"][-1].endswith("PM: suspend entry (deep)")
    assert entry["cycles"][0]["events"] == ["SUSPEND suspended"]
    assert latency_medians(index) == {"cellA": {"request_to_entry": 1.0, "cycle_total": 9.0}}


def test_the_page_embeds_the_data_without_closing_its_script(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    page = render(merge([json.loads((run / "results.json").read_text())]), [run])
    assert page.count("</script>") == 2  # the data block and the code, nothing from the data
    assert "saw <\\/script> ok" in page
