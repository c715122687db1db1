"""SIGTERM (a CI job cancelled, ``timeout``) and SIGHUP (a closed terminal) end the run the way
Ctrl-C does: no QEMU, libvirt daemon or domain of the harness left, its run directory gone, a
non-zero exit, and a results.json marked interrupted by that signal that lists the cases that ran.

SIGTERM comes mid-case, after a case has passed, on each backend. SIGHUP comes as the first QEMU
starts (the ready checkpoint's cold boot), where test_cleanup sends Ctrl-C: the two signals take
one handler into the same way out, so SIGHUP needs no boot and case of its own to prove it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.setup.runtime import RUNTIME_ROOT
from tests.e2e.test_cleanup import EXIT_TIMEOUT, children_of, qemu_pids_of, wait_gone

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
FIRST_CASE_TIMEOUT = 600.0  # the ready checkpoint's cold boot, then one whole case
NEXT_QEMU_TIMEOUT = 120.0

CASES = {
    "qemu": [str(ROOT / "testcases" / "test_suspend_to_ram.py"), "-k", "s3-agent or s3-sysfs"],
    "libvirt": [
        str(ROOT / "testcases" / "test_libvirt.py"),
        "-k",
        "dompmsuspend-mem or dompmsuspend-hybrid",
    ],
}


def start_suite(report_dir: Path, backend: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pytest", *CASES[backend], "-v", "-p", "no:cacheprovider"]
    return subprocess.Popen(
        [*argv, "--report-dir", str(report_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )


def wait_for_first_pass(proc: subprocess.Popen[str]) -> list[str]:
    """The suite's output up to the first case's PASSED line (pytest -v prints it as it ends)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + FIRST_CASE_TIMEOUT
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if " PASSED" in line:
            return seen
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail("no case passed before the signal:\n" + "".join(seen[-30:]))


def wait_for_qemu(proc: subprocess.Popen[str]) -> list[int]:
    """A QEMU of this harness running: the ready checkpoint's, or the second case's guest."""
    deadline = time.monotonic() + NEXT_QEMU_TIMEOUT
    while time.monotonic() < deadline:
        if pids := qemu_pids_of(proc.pid):
            return pids
        assert proc.poll() is None, "the suite ended before it started a QEMU"
        time.sleep(0.2)  # polling /proc is the only way to see another process's children
    proc.kill()
    pytest.fail(f"no QEMU started within {NEXT_QEMU_TIMEOUT:.0f}s")


@pytest.mark.parametrize(
    ("backend", "sig", "mid_case"),
    [
        ("qemu", signal.SIGTERM, True),
        ("qemu", signal.SIGHUP, False),
        ("libvirt", signal.SIGTERM, True),
    ],
    ids=["qemu-sigterm-mid-case", "qemu-sighup-at-boot", "libvirt-sigterm-mid-case"],
)
def test_termination_is_an_interrupt(
    tmp_path: Path, backend: str, sig: signal.Signals, mid_case: bool
) -> None:
    report_dir = tmp_path / "reports"
    proc = start_suite(report_dir, backend)
    first = wait_for_first_pass(proc) if mid_case else []
    qemus = wait_for_qemu(proc)
    helpers = children_of(proc.pid)
    os.kill(proc.pid, sig)
    rest, _ = proc.communicate(timeout=EXIT_TIMEOUT)
    output = "".join(first) + rest
    assert proc.returncode not in (0, None), output[-3000:]
    assert wait_gone(qemus, EXIT_TIMEOUT) == [], f"QEMU {qemus} outlived the harness"
    assert wait_gone(helpers, EXIT_TIMEOUT) == [], "a daemon or the watchdog outlived it"
    assert not list(RUNTIME_ROOT.glob(f"{proc.pid}-*")), "run directory left behind"
    results = json.loads(next(report_dir.glob("*/results.json")).read_text())
    assert results["interrupted"] is True, results
    assert results["interrupted_by"] == sig.name, results
    passed = [r for r in results["tests"] if r["outcome"] == "passed" and r["when"] == "call"]
    if mid_case:
        assert len(passed) == 1 and passed[0]["verdicts"] == ["PASS"], results["tests"]
    else:
        assert passed == [], results["tests"]
        assert "test_suspend_to_ram.py::" in results["interrupted_test"], results
    assert (next(report_dir.glob("*/results.json")).parent / "report.html").is_file()
