"""The machine x firmware pairings distributions do not ship together, each run as its own
cell: q35 with SeaBIOS (what virt-install makes for BIOS installs) and the i440FX pc with OVMF
(found through QEMU's firmware descriptors, named by its package's version)."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 600  # a cold boot for the cell's checkpoint, then one case: about a minute


def run_cell(tmp_path: Path, case: str, *options: str) -> dict[str, Any]:
    """One case of the suite on its own cell; its results.json."""
    reports = tmp_path / "reports"
    subprocess.run(
        [sys.executable, "-m", "pytest", "testcases", "-p", "no:cacheprovider",
         "-m", "not selftest", "-k", case, "--report-dir", str(reports), *options],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    (results,) = reports.glob("2*/results.json")
    data: dict[str, Any] = json.loads(results.read_text())
    return data


def test_pc_with_ovmf_passes_s3(tmp_path: Path) -> None:
    data = run_cell(tmp_path, "s3-agent", "--machine-type", "pc", "--firmware", "ovmf")
    (cell,) = data["cells"]
    assert cell["machine"] == "pc" and cell["firmware"].startswith("ovmf"), cell
    # Named by the version of the package that installed it (ovmf2022.11), not by a hash.
    assert re.fullmatch(r"ovmf\d+\.\d+", cell["firmware"]), cell
    (test,) = data["tests"]
    assert test["verdicts"] == ["PASS"], test["series"][0]["reason"]


def test_q35_with_seabios_sleeps_once_and_names_why_the_second_s3_reaches_nothing(
    tmp_path: Path,
) -> None:
    """The first S3 on a boot passes; SeaBIOS does not restore ICH9's PM base on resume, so
    the second request reaches no register, and the FAIL says so (the cause is named)."""
    data = run_cell(tmp_path, "repeated", "--machine-type", "q35", "--firmware", "seabios")
    (cell,) = data["cells"]
    assert cell["machine"] == "q35" and cell["firmware"].startswith("seabios"), cell
    ((series,),) = [t["series"] for t in data["tests"]]
    first, second = series["cycles"]
    assert first["verdict"] == "PASS", first["reason"]
    assert second["verdict"] == "FAIL" and series["cause"] == "ACPI PM registers unmapped"
    assert "the chipset's ACPI PM registers are not mapped" in second["reason"], second["reason"]
    assert series["known_issue"] == "", series["known_issue"]
