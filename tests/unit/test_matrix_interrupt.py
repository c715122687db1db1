"""An interrupted matrix lets the running cell stop as a run stops on Ctrl-C (guests stopped,
report written) within a bound, instead of killing it at once."""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.tools import matrix_run

CHILD = """
import pathlib, signal, sys, time
ready, cleaned, ignore = (pathlib.Path(p) for p in sys.argv[1:4])
def stop(*_):
    time.sleep(0.2)  # the cell's cleanup takes a moment
    cleaned.write_text("report written")
    sys.exit(130)
signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore.name == "ignore" else stop)
ready.write_text("")
time.sleep(60)
"""


def interrupted_while_waiting(ready: Path) -> type[subprocess.Popen[Any]]:
    class Popen(subprocess.Popen[Any]):
        def wait(self, timeout: float | None = None) -> int:
            if timeout is None:  # the matrix's own wait: the interrupt arrives during it
                deadline = time.monotonic() + 10
                while not ready.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
                raise KeyboardInterrupt
            return super().wait(timeout)

    return Popen


@pytest.mark.parametrize("mode", ["cooperate", "ignore"])
def test_an_interrupted_cell_is_passed_the_signal_and_given_its_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    ready, cleaned = tmp_path / "ready", tmp_path / "cleaned"
    monkeypatch.setattr(matrix_run, "received", lambda: "SIGTERM")  # sent to the matrix alone
    monkeypatch.setattr(subprocess, "Popen", interrupted_while_waiting(ready))
    argv = [sys.executable, "-c", CHILD, str(ready), str(cleaned), str(tmp_path / mode)]
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        matrix_run.run_cell(argv, grace=2.0)
    if mode == "cooperate":
        assert cleaned.read_text() == "report written"  # its cleanup ran to the end
        assert time.monotonic() - started < 2.0
    else:
        assert not cleaned.exists()  # killed once the grace ran out
        assert time.monotonic() - started >= 2.0
