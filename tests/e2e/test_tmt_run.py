"""The tmt plan run for real on this host (tmt's local provisioner): prepare installs with
./run setup, the test runs one case of the default cell, and tmt reads one result per case
with the case's evidence attached. tmt copies the tree without its image cache; the run is
pointed at this tree's cache (S3S4_IMAGE_CACHE), as a runner that keeps its cache would be,
rather than building the guest image a second time (a minute here)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from harness.setup.image import DEFAULT_CACHE

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
TMT = Path(sys.executable).parent / "tmt"


def test_tmt_runs_the_plan_and_reads_one_result_per_case(tmp_path: Path) -> None:
    workdir = tmp_path / "tmt-run"
    result = subprocess.run(
        [
            str(TMT),
            "--feeling-safe",
            "run",
            "--id",
            str(workdir),
            "-e",
            "S3S4_PYTEST_ARGS='-k s3-agent'",
            "-e",
            f"S3S4_IMAGE_CACHE={DEFAULT_CACHE}",
            "--all",
            "provision",
            "--how",
            "local",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={
            **os.environ,
            "TMT_WORKDIR_ROOT": str(tmp_path),
            "S3S4_IMAGE_CACHE": str(DEFAULT_CACHE),
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    results = YAML(typ="safe").load((workdir / "plans/cell/execute/results.yaml").read_text())
    assert [r["result"] for r in results] == ["pass"], results
    (case,) = results
    assert case["name"].endswith("/test_suspend_to_ram.py/test_suspend_to_ram[s3-agent]")
    assert case["ids"]["cell"].startswith("k6.1")
    logs = [workdir / "plans/cell/execute" / log for log in case["log"]]
    assert any(log.name == "serial.log" for log in logs)
    assert all(log.is_file() for log in logs), logs
