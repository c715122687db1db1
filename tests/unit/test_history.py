"""``./run history``: streaks, flips, component changes, the slowdown rule and the gating exit
status, over results.json files written as runs write them; the page in a real chromium."""

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.results import history
from harness.results.history_html import render
from harness.results.merge import merge
from tests.chromium import chromium_dom

CASE = "testcases/test_suspend_to_ram.py::test_suspend_to_ram[s3-sysfs]"


def cell(qemu: str = "7.2.22") -> dict[str, Any]:
    return {
        "id": f"k6.1.0-57-q{qemu}-seabios1.16.2-pc-tcg",
        "kernel": "6.1.0-57-amd64",
        "qemu": qemu,
        "firmware": "seabios1.16.2",
        "machine": "pc",
        "accel": "tcg",
        "backend": "qemu",
        "packages": [],
    }


def write_run(
    root: Path,
    n: int,
    verdict: str,
    entry_s: float = 2.0,
    qemu: str = "7.2.22",
    after: dict[str, str] | None = None,
) -> Path:
    run_id = f"20261201-{n:02d}0000-ab{n:02d}"
    the_cell = cell(qemu)
    node = CASE.replace("[s3-sysfs]", f"[{the_cell['id']}-s3-sysfs]")
    cycle = {
        "verdict": verdict,
        "reason": "" if verdict == "PASS" else "check: sentinel_carried_on",
        "evidence": {
            "timings": {"request_to_entry": entry_s, "cycle_total": entry_s + 8},
            "after": after or {},
        },
    }
    record = {
        "test": node,
        "cell": the_cell["id"],
        "outcome": "passed" if verdict == "PASS" else "failed",
        "verdicts": [verdict],
        "series": [{"cycles": [cycle]}],
    }
    directory = root / run_id
    directory.mkdir(parents=True)
    payload = {
        "schema": 1,
        "run_id": run_id,
        "started": f"2026-12-01T{n:02d}:00:00+0000",
        "cells": [the_cell],
        "tests": [record],
    }
    (directory / "results.json").write_text(json.dumps(payload))
    return directory


def analysed(root: Path) -> dict[str, Any]:
    return history.history(history.load_runs([root]))


def test_a_failure_its_first_run_the_flip_and_the_fix(tmp_path: Path) -> None:
    for n, verdict in enumerate(["PASS", "PASS", "FAIL", "FAIL", "PASS"], 1):
        write_run(tmp_path, n, verdict)
    before_fix = history.history(history.load_runs(sorted(tmp_path.iterdir())[:4]))
    (row,) = before_fix["rows"]
    assert row["status"] == "failing" and row["failing_since"] == "20261201-030000-ab03"
    assert row["last_pass"] == "20261201-020000-ab02"
    (row,) = analysed(tmp_path)["rows"]
    assert row["cell"] == "pc-seabios-tcg" and row["case"] == CASE
    assert row["verdicts"] == ["PASS", "PASS", "FAIL", "FAIL", "PASS"]
    assert (row["status"], row["flips"], row["flaky"]) == ("fixed", 2, True)
    assert row["pass_rate"] == 0.6 and row["failing_since"] is None


def test_runs_are_ordered_by_start_not_by_argument_and_counted_once(tmp_path: Path) -> None:
    dirs = [write_run(tmp_path, n, v) for n, v in enumerate(["PASS", "FAIL"], 1)]
    (tmp_path / "latest").symlink_to(dirs[1].name)
    result = history.history(history.load_runs([*reversed(dirs), tmp_path / "latest"]))
    assert len(result["runs"]) == 2
    assert result["rows"][0]["status"] == "new-failure"
    assert result["new_failures"] == [f"{CASE} on pc-seabios-tcg"]
    assert history.exit_status(result) == history.EXIT_NEW_FAILURE


def test_a_flip_with_a_new_qemu_is_not_flaky_and_the_change_is_marked(tmp_path: Path) -> None:
    write_run(tmp_path, 1, "PASS")
    write_run(tmp_path, 2, "FAIL", qemu="8.2.1")
    (row,) = analysed(tmp_path)["rows"]
    assert row["flips"] == 1 and not row["flaky"]
    assert row["component_changes"] == {"20261201-020000-ab02": ["qemu 7.2.22 -> 8.2.1"]}


def test_two_cells_of_one_slot_in_a_run_keep_their_ids(tmp_path: Path) -> None:
    cells = [cell("7.2.22"), cell("8.2.1")]
    assert history._slots(cells) == {c["id"]: c["id"] for c in cells}
    assert history._slots(cells[:1]) == {cells[0]["id"]: "pc-seabios-tcg"}


def test_the_slowdown_rule_follows_the_spread_not_a_percentage() -> None:
    assert history.slow_threshold([2.0, 2.1]) is None  # too few to know the spread
    steady = history.slow_threshold([2.0, 2.0, 2.0, 2.0])
    assert steady == pytest.approx(2.5)  # no spread: the floor (0.5 s)
    noisy = history.slow_threshold([2.0, 4.0, 2.5, 3.5, 3.0])
    assert noisy is not None and noisy > 5.0  # 3 x 1.4826 x MAD(0.5) above the median


def test_a_slowed_stage_is_a_new_slowdown_and_gates(tmp_path: Path) -> None:
    for n, seconds in enumerate([2.0, 2.2, 1.9, 2.1], 1):
        write_run(tmp_path, n, "PASS", entry_s=seconds)
    assert history.exit_status(analysed(tmp_path)) == history.EXIT_OK
    write_run(tmp_path, 5, "PASS", entry_s=7.0)
    result = analysed(tmp_path)
    (row,) = result["rows"]
    stages = {s["stage"]: s for s in row["slowdowns"]}
    assert set(stages) == {"request_to_entry", "cycle_total"}
    assert stages["request_to_entry"]["median"] == pytest.approx(2.05)
    assert stages["request_to_entry"]["new"] is True
    assert history.exit_status(result) == history.EXIT_NEW_SLOWDOWN
    assert any("slower: request_to_entry 7.00s" in line for line in history.text(result))


def test_endurance_cycles_are_runs(tmp_path: Path) -> None:
    run = tmp_path / "endurance-20261201-010000"
    run.mkdir()
    cycles = [
        {"cycle": n, "verdict": v, "reason": "", "started": f"2026-12-01T01:0{n}:00+0000",
         "timings": {"request_to_entry": 2.0}}
        for n, v in enumerate(["PASS", "FAIL", "PASS"], 1)
    ]  # fmt: skip
    payload = {
        "cell": cell()["id"],
        "cells": [cell()],
        "summary": {"transition": "s3-agent"},
        "cycles": cycles,
    }
    (run / "endurance.json").write_text(json.dumps(payload))
    (row,) = analysed(tmp_path)["rows"]
    assert row["case"] == "endurance::s3-agent" and row["flips"] == 2
    assert row["verdicts"] == ["PASS", "FAIL", "PASS"]


def test_cli_writes_json_and_html_and_exits_by_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(tmp_path / "runs", 1, "PASS")
    write_run(tmp_path / "runs", 2, "FAIL")
    assert main(["history", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 1
    assert "new-failure" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "history.json").read_text())["new_failures"]
    assert main(["history", str(tmp_path / "nothing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_the_page_renders_in_a_real_browser(tmp_path: Path) -> None:
    """Debian's chromium, headless, runs the page's script: rows, verdict squares, sparklines
    with the slower run marked, the component change on the timeline."""
    for n, (verdict, seconds, qemu) in enumerate(
        [("PASS", 2.0, "7.2.22"), ("PASS", 2.1, "7.2.22"), ("FAIL", 2.0, "7.2.22"),
         ("PASS", 1.9, "8.2.1"), ("PASS", 9.0, "8.2.1")], 1
    ):  # fmt: skip
        write_run(tmp_path / "runs", n, verdict, seconds, qemu)
    page = tmp_path / "history.html"
    page.write_text(render(analysed(tmp_path / "runs")))
    dom = chromium_dom(page.as_uri())
    assert 'data-rendered="yes"' in dom, dom[:2000]
    assert dom.count('class="v PASS"') == 4 and dom.count('class="v FAIL"') == 1
    assert 'data-stage="request_to_entry"' in dom and "request_to_entry 9.00s: slower" in dom
    assert "components changed: qemu 7.2.22 -&gt; 8.2.1" in dom


def test_a_matrix_run_gives_verdicts_and_its_cells_timings(tmp_path: Path) -> None:
    for n, qemu in enumerate(["7.2.22", "8.2.1"], 1):
        matrix_dir = tmp_path / f"matrix-{n}"
        cells = matrix_dir / "cells"
        one = write_run(cells, n, "PASS", entry_s=2.0 + n, qemu=qemu)
        two = write_run(cells, n + 10, "FAIL", qemu=qemu)
        runs = [json.loads((d / "results.json").read_text()) for d in (one, two)]
        runs[1]["cells"][0]["machine"] = "q35"  # another slot
        runs[1]["tests"][0]["cell"] = runs[1]["cells"][0]["id"] = "k-q35"
        runs[1]["tests"][0]["test"] = CASE.replace("[s3-sysfs]", "[k-q35-s3-sysfs]")
        (two / "results.json").write_text(json.dumps(runs[1]))
        (matrix_dir / "matrix.json").write_text(json.dumps(merge(runs)))
    result = analysed(tmp_path)
    assert [r["run_id"] for r in result["runs"]] == ["matrix-1", "matrix-2"]
    rows = {row["cell"]: row for row in result["rows"]}
    assert rows["pc-seabios-tcg"]["timings"]["request_to_entry"] == [3.0, 4.0]
    assert rows["pc-seabios-tcg"]["component_changes"] == {"matrix-2": ["qemu 7.2.22 -> 8.2.1"]}
    assert rows["q35-seabios-tcg"]["status"] == "failing"


def test_a_device_callback_that_got_slower_is_named(tmp_path: Path) -> None:
    for n, usecs in enumerate([40000, 52000, 45000, 1900000], 1):
        after = {"devpm.slow.1": f"{usecs} resume virtio-pci 0000:00:03.0"}
        write_run(tmp_path, n, "PASS", after=after)
    result = analysed(tmp_path)
    (row,) = result["rows"]
    device = "device resume virtio-pci 0000:00:03.0"
    assert row["timings"][device] == [0.04, 0.052, 0.045, 1.9]
    assert [s["stage"] for s in row["slowdowns"]] == [device]
    assert render(result).count(f'data-stage="{device}"') == 1
