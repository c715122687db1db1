"""A pytest run of its own, started from the checkout as a user starts one: for the end-to-end
tests whose cases need options of their own (a device profile, a guest profile, a newer
stack), which a session cannot change once it has started."""

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 120.0  # a run stopped by SIGTERM stops its guests and daemons within this


@dataclass(frozen=True)
class PytestRun:
    """What a run left: its output (stdout and stderr together), exit status, pid and reports."""

    output: str
    returncode: int
    pid: int
    reports: Path

    def results(self) -> dict[str, Any]:
        """The run's results.json."""
        data: dict[str, Any] = json.loads((self.reports / "latest" / "results.json").read_text())
        return data


def run_pytest(
    args: Sequence[str], reports: Path, timeout_s: float, env: dict[str, str] | None = None
) -> PytestRun:
    """``pytest args`` in ROOT, its reports under ``reports``; bounded by ``timeout_s``, after
    which it is stopped (SIGTERM: the harness then stops what it started) and the test fails."""
    argv = [sys.executable, "-m", "pytest", *args]
    argv += ["-p", "no:cacheprovider", "--report-dir", str(reports)]
    run = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )
    try:
        output = run.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        run.terminate()
        output = run.communicate(timeout=STOP_GRACE_S)[0]
        pytest.fail(f"the run did not end within {timeout_s:.0f}s: {output[-3000:]}")
    return PytestRun(output, run.returncode, run.pid, reports)
