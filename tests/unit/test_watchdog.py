"""The watchdog: when its harness is killed outright it kills what runs from the harness's run
directory and removes it; after a clean shutdown it leaves everything alone."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HARNESS = """
import sys, time
from pathlib import Path
from harness.setup.watchdog import Watchdog
dog = Watchdog(Path(sys.argv[1]))
dog.start()
if sys.argv[2] == "clean":
    dog.stop()
print("ready", flush=True)
time.sleep(300)
"""
DEADLINE_S = 20.0


def sleeper(run_dir: Path) -> subprocess.Popen[bytes]:
    """Stands in for a libvirt QEMU: not the harness's child, its argv names the run dir."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", str(run_dir / "root.qcow2")],
        start_new_session=True,
    )


def fake_harness(run_dir: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(run_dir), mode], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def gone_within(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_a_killed_harness_leaves_nothing_running(tmp_path: Path) -> None:
    run_dir = tmp_path / "1234-run"
    run_dir.mkdir()
    guest = sleeper(run_dir)
    harness = fake_harness(run_dir, "killed")
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    try:
        assert gone_within(guest, DEADLINE_S), "the guest process outlived the killed harness"
        deadline = time.monotonic() + DEADLINE_S
        while run_dir.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the watchdog removes it after the kill; no event to wait on
        assert not run_dir.exists()
    finally:
        guest.kill()


def test_a_clean_shutdown_lets_everything_be(tmp_path: Path) -> None:
    run_dir = tmp_path / "1234-run"
    run_dir.mkdir()
    guest = sleeper(run_dir)
    harness = fake_harness(run_dir, "clean")
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    try:
        assert not gone_within(guest, 2.0), "a clean harness's watchdog killed a process"
        assert run_dir.exists()
    finally:
        guest.kill()
