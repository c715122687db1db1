"""The matrix end to end on two real cells (the host's QEMU 7.2 with its SeaBIOS and an e1000e
NIC named by the file's device axis, and QEMU from bookworm-backports with SeaBIOS 1.16.3 from
the archive), one S3 case each: every cell reports the versions its running system shows, the
device cell's id names its profile as ``--nic e1000e`` does and its guest's network check ran
on e1000e; the two shards split the cells between them (``--list --shard``: the selection a
sharded run makes), and the cells' runs merged with ``harness merge`` are the whole.

The device axis costs no boot of its own: each cell cold boots its one case (``--cold-boot``:
for a single case a ready checkpoint is only a save and a restore more), the e1000e cell on
the ``devices`` guest profile's image, which tests/e2e/test_devices.py builds and caches
earlier in CI and where an e1000e guest is restored from its checkpoint."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from harness.results.merge import compare, load_run, verdict_table
from tests.chromium import chromium_dom

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
MATRIX = """
[axes]
kernel = ["linux-image-amd64"]
qemu = ["qemu-system-x86_64", "10.0"]
firmware = ["seabios"]
machine = ["pc"]
accel = ["auto"]
devices = [{ nic = "e1000e" }]

[[exclude]]
qemu = "10.0"

[[include]]
kernel = "linux-image-amd64"
qemu = "10.0"
firmware = "seabios:1.16.3"
machine = "pc"
accel = "auto"
"""
CASE = ["testcases/test_suspend_to_ram.py", "-k", "test_suspend_to_ram and s3-agent"]
CASE_NAME = "testcases/test_suspend_to_ram.py::test_suspend_to_ram[s3-agent]"


def _matrix(tmp_path: Path, name: str, *args: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / name
    result = subprocess.run(
        [sys.executable, "-m", "harness", "matrix", "--file", str(tmp_path / "m.toml"),
         "--out", str(out), *args, "--", *CASE, "--cold-boot", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    assert (out / "matrix.json").is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    matrix: dict[str, Any] = json.loads((out / "matrix.json").read_text())
    return result.returncode, matrix


@pytest.fixture(scope="module")
def matrix_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-cell matrix run once, whole; the host's QEMU package must stay as it was."""
    directory = tmp_path_factory.mktemp("matrix")
    (directory / "m.toml").write_text(MATRIX)
    host_qemu = _host_version("qemu-system-x86")
    status, whole = _matrix(directory, "whole")
    assert status == 0, whole
    assert _host_version("qemu-system-x86") == host_qemu, "the host's QEMU package was touched"
    return directory


def test_two_cells_detect_their_versions_and_shards_split_them_and_runs_merge(
    matrix_dir: Path,
) -> None:
    tmp_path = matrix_dir
    whole = json.loads((tmp_path / "whole" / "matrix.json").read_text())
    cells = whole["cells"]
    assert len(cells) == 2, cells
    detected = sorted((c["qemu"], c["firmware"]) for c in cells.values())
    assert detected[0][0].startswith("10.0.") and detected[0][1] == "seabios1.16.3", detected
    assert detected[1][0].startswith("7.2."), detected
    (nic_cell,) = (cell for cell, c in cells.items() if c["qemu"].startswith("7.2."))
    # Named as a run given --nic e1000e names it: the devices profile's image, the NIC.
    assert "-devices-q7.2." in nic_cell and nic_cell.endswith("-nic-e1000e"), nic_cell
    assert set(verdict_table(whole)[CASE_NAME].values()) == {"PASS"}, whole["cases"]
    # What each cell's running QEMU and guest reported, beside the id.
    for run_dir in (tmp_path / "whole" / "cells").iterdir():
        if run_dir.name == "latest":
            continue
        (record,) = load_run(run_dir)["tests"]
        combination = record["series"][0]["cycles"][0]["combination"]
        assert record["cell"].startswith("k" + combination["kernel"].removesuffix("-amd64"))
        assert f"-q{combination['qemu_version']}-" in record["cell"], (record["cell"], combination)
        assert combination["bios_version"].startswith(cells[record["cell"]]["firmware"][7:])
        # The guest's NIC, as its network check found it before the sleep.
        nic = record["series"][0]["cycles"][0]["evidence"]["before"]["net.driver"]
        assert nic == ("e1000e" if record["cell"] == nic_cell else "virtio_net"), record["cell"]

    # Each shard lists one cell (ids as the runs named them), and together they are the whole.
    shards = [_listed_ids(tmp_path, "--shard", f"{i}/2") for i in (1, 2)]
    assert [len(ids) for ids in shards] == [1, 1] and set(shards[0] + shards[1]) == set(cells)
    # Each cell's run, as a shard's runner would hand it on, merges into the whole.
    runs = [str(p) for p in sorted((tmp_path / "whole" / "cells").iterdir()) if p.name != "latest"]
    merged = subprocess.run(
        [sys.executable, "-m", "harness", "merge", *runs, "--out", str(tmp_path / "merged")],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "matrix.json" in merged.stdout
    from_runs = json.loads((tmp_path / "merged" / "matrix.json").read_text())
    assert verdict_table(from_runs) == verdict_table(whole)
    assert compare(whole, from_runs).changes == []


def _listed_ids(tmp_path: Path, *args: str) -> list[str]:
    """The cell ids ``harness matrix --list`` prints (it detects them: no guest boots)."""
    listed = subprocess.run(
        [sys.executable, "-m", "harness", "matrix", "--file", str(tmp_path / "m.toml"), "--list",
         *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    ids = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    assert "?" not in ids, listed.stdout  # an id that could not be detected
    return ids


def test_the_html_report_renders_in_a_real_browser(matrix_dir: Path) -> None:
    """Debian's chromium, headless, runs the page's script: the matrix is drawn, and a
    result's evidence (checks, events, serial log) opens from a link."""
    page = matrix_dir / "whole" / "matrix.html"
    whole = json.loads((matrix_dir / "whole" / "matrix.json").read_text())
    cell = sorted(whole["cells"])[0]
    dom = chromium_dom(f"{page.as_uri()}#open={quote(CASE_NAME + '|' + cell)}")
    assert 'data-rendered="yes"' in dom, dom[:2000]
    assert dom.count('class="v PASS"') == 2, dom[:3000]
    assert f"{CASE_NAME} on {cell}" in dom
    assert "events_seen: saw suspended -&gt; woken" in dom
    assert "PM: suspend entry" in dom  # kernel lines and the serial log
    assert "<svg" in dom  # latency plots


def _host_version(package: str) -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
    ).stdout
