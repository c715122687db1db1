"""No process of the harness outlives it, interrupted (Ctrl-C) or killed outright (SIGKILL):
its QEMUs, a libvirt domain's QEMU (libvirtd's, not the harness's child), the libvirtd and
virtlogd it started, and its watchdog."""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.setup.runtime import RUNTIME_ROOT, sweep_stale

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
QEMU_START_TIMEOUT = 120.0
EXIT_TIMEOUT = 60.0


def qemu_pids_of(harness_pid: int) -> list[int]:
    """QEMU processes whose sockets live in that harness process's run directory."""
    marker = f"/s3s4-harness/{harness_pid}-".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and marker in cmdline:
            pids.append(int(entry.name))
    return pids


def _interruptible() -> None:
    """A job started in the background by a non-interactive shell (as CI runners may do)
    inherits SIGINT ignored, and Python keeps it so: give the suite a terminal's default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def children_of(pid: int) -> list[int]:
    """Direct children (libvirtd, virtlogd, the watchdog), from /proc/*/stat."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


CASES = {
    "qemu": [str(ROOT / "testcases"), "-k", "s3-agent"],
    "libvirt": [str(ROOT / "testcases" / "test_libvirt.py"), "-k", "dompmsuspend-mem"],
}


def start_suite(tmp_path: Path, backend: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            *CASES[backend],
            "-p",
            "no:cacheprovider",
            "--report-dir",
            str(tmp_path / "reports"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_interruptible,
    )


def wait_for_qemu(proc: subprocess.Popen[bytes]) -> list[int]:
    deadline = time.monotonic() + QEMU_START_TIMEOUT
    while time.monotonic() < deadline:
        pids = qemu_pids_of(proc.pid)
        if pids:
            return pids
        assert proc.poll() is None, "the suite ended before starting QEMU"
        time.sleep(0.2)  # polling /proc is the only way to see another process's children
    proc.kill()
    pytest.fail(f"no QEMU started within {QEMU_START_TIMEOUT:.0f}s")


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [
            pid for pid in pids if Path(f"/proc/{pid}").exists() and b"zombie" not in _state(pid)
        ]
        time.sleep(0.1)
    return alive


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/status").read_bytes().lower()
    except OSError:
        return b"zombie"


@pytest.mark.parametrize("backend", ["qemu", "libvirt"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_nothing_of_the_harness_survives_it(
    tmp_path: Path, sig: signal.Signals, backend: str
) -> None:
    proc = start_suite(tmp_path, backend)
    pids = wait_for_qemu(proc)
    helpers = children_of(proc.pid)
    names = {pid: _name(pid) for pid in helpers}
    if backend == "libvirt" and not {"libvirtd", "virtlogd"} <= set(names.values()):
        pytest.skip(f"a libvirtd was already running; the harness started none ({names})")
    os.kill(proc.pid, sig)
    proc.wait(EXIT_TIMEOUT)
    assert wait_gone(pids, EXIT_TIMEOUT) == [], f"QEMU {pids} outlived the harness ({sig.name})"
    left = wait_gone(helpers, EXIT_TIMEOUT)
    assert left == [], f"{[names[p] for p in left]} outlived the harness ({sig.name})"
    # A harness killed outright cannot remove its run directory; the next start sweeps it.
    sweep_stale()
    assert not list(RUNTIME_ROOT.glob(f"{proc.pid}-*")), "stale run directory left behind"


def test_two_runs_at_once_do_not_collide(tmp_path: Path) -> None:
    """Two suites started together on one host: own run directories, sockets, ports and keys,
    one image cache shared under its lock; both pass and neither leaves anything behind."""
    runs = [start_run(tmp_path / f"reports-{n}") for n in (1, 2)]
    outputs = [run.communicate(timeout=1200)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
        assert "1 passed" in output, output[-3000:]
        assert not list(RUNTIME_ROOT.glob(f"{run.pid}-*")), "run directory left behind"


def start_run(report_dir: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pytest", str(ROOT / "testcases"), "-k", "s3-agent"]
    argv += ["-p", "no:cacheprovider", "--report-dir", str(report_dir)]
    return subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.parametrize("planted", ["symlink", "foreign", "group-writable"])
def test_a_run_root_another_user_could_control_is_refused_before_anything_runs(
    tmp_path: Path, planted: str
) -> None:
    """A run root made in advance by someone else (a symbolic link to their choice, their own
    directory, or one they can write into) ends the run at once with one error line; the
    numbered entry a sweep would have deleted is still there."""
    short = Path(tempfile.mkdtemp(prefix="s3s4-root-"))  # TMPDIR for the suite
    try:
        victim = short / "victim"
        (victim / "1-theirs").mkdir(parents=True)
        root = short / "s3s4-harness"
        if planted == "symlink":
            root.symlink_to(victim)
        else:
            root.mkdir(mode=0o700)
            (root / "1-theirs").mkdir()
            if planted == "foreign":
                os.chown(root, pwd.getpwnam("nobody").pw_uid, -1)
            else:
                root.chmod(0o770)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "testcases", "-k", "s3-agent", "-p",
             "no:cacheprovider", "--report-dir", str(tmp_path / "reports")],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "TMPDIR": str(short)},
        )  # fmt: skip
        errors = [line for line in result.stdout.splitlines() if "error: " in line]
        assert result.returncode == 2 and len(errors) == 1, result.stdout[-3000:]
        assert f"run root {root} " in errors[0], errors[0]
        assert (victim / "1-theirs").is_dir()
        if planted != "symlink":
            assert (root / "1-theirs").is_dir()
    finally:
        shutil.rmtree(short)
