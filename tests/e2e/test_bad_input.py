"""Bad input: one clear line naming the fix, a non-zero exit, and nothing left behind (no
process naming the run's directory, no run directory, no half-built file).

The first group runs the harness as a user would (a pytest or CLI process); the second hands
a real guest something it lacks (no swap, no agent).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.checks.verdict import Verdict
from harness.machines import base as machine_base
from harness.machines.qemu.machine import QemuMachine
from harness.plugin import PowerCycle
from harness.session import HarnessSession
from harness.setup.image import ImageCache, Recipe
from harness.setup.runtime import RUNTIME_ROOT
from harness.setup.watchdog import processes_naming
from harness.transitions.catalogue import S3_AGENT, S4_AGENT

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]


def harness(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def suite(tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> str:
    """The suite's one error line; asserts exit 2 and that the run left nothing behind."""
    result = harness(
        tmp_path,
        "-m",
        "pytest",
        "testcases",
        "-k",
        "s3-agent",
        "-p",
        "no:cacheprovider",
        "--report-dir",
        str(tmp_path / "reports"),
        *options,
        env=env,
    )
    errors = [ln for ln in result.stdout.splitlines() if "error: " in ln]
    assert result.returncode == 2 and len(errors) == 1, result.stdout[-3000:] + result.stderr
    assert_nothing_left()
    return errors[0]


def assert_nothing_left() -> None:
    runs = list(RUNTIME_ROOT.glob("*")) if RUNTIME_ROOT.is_dir() else []
    mine = [run for run in runs if not _owner_alive(run)]
    assert not mine, f"run directories left behind: {mine}"
    assert not [p for run in runs for p in processes_naming(run) if not _owner_alive(run)]


def _owner_alive(run: Path) -> bool:
    pid = run.name.split("-", 1)[0]
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def test_missing_qemu_binary(tmp_path: Path) -> None:
    line = suite(tmp_path, "--qemu", "/nonexistent/qemu-system-x86_64")
    assert line.endswith(
        "error: QEMU binary '/nonexistent/qemu-system-x86_64' not found: run ./run setup "
        "(installs qemu-system-x86), or pass --qemu PATH or --qemu VERSION (from Debian's "
        "archive) !"
    ), line


def test_missing_guest_kernel(tmp_path: Path) -> None:
    line = suite(tmp_path, "--kernel", str(tmp_path / "bzImage"))
    assert f"error: guest kernel {tmp_path}/bzImage not found: pass --kernel " in line, line


def test_a_guest_kernel_that_is_not_a_bzimage(tmp_path: Path) -> None:
    line = suite(tmp_path, "--kernel", "/etc/os-release")
    assert "error: /etc/os-release is not an x86 bzImage (no boot header): pass " in line, line


def test_truncated_base_image(tmp_path: Path) -> None:
    """A copy of the cache whose base image lost its second half (the real cache untouched)."""
    image = ImageCache().ensure(Recipe.load("debian"), None)
    cache = tmp_path / "cache"
    broken = cache / image.disk.parent.name
    broken.mkdir(parents=True)
    for name in ("manifest.json", "vmlinuz", "initrd.img", "ssh_host_keys.pub"):
        os.link(image.disk.parent / name, broken / name)
    size = image.disk.stat().st_size
    with image.disk.open("rb") as source, (broken / "base.qcow2").open("wb") as target:
        target.write(source.read(size // 2))
    line = suite(tmp_path, env={"S3S4_IMAGE_CACHE": str(cache)})
    assert f"error: image {broken} is corrupt (qemu-img check: " in line, line
    assert line.endswith(f"delete {broken} and run again to rebuild it !"), line
    assert image.disk.stat().st_size == size


def test_unknown_cell(tmp_path: Path) -> None:
    result = harness(tmp_path, "-m", "harness", "matrix", "--cell", "nosuch")
    assert result.returncode == 2
    first_cell = "linux-image-amd64_qemu-system-x86-64_seabios_pc_auto"
    assert result.stderr.startswith(f"error: no cell matches nosuch; cells: {first_cell}, ")
    assert result.stderr.count("\n") == 1


def test_malformed_matrix_file(tmp_path: Path) -> None:
    matrix = tmp_path / "matrix.toml"
    matrix.write_text("[axes]\nkernel = [\n")
    result = harness(tmp_path, "-m", "harness", "matrix", "--file", str(matrix))
    assert result.returncode == 2
    expected = (
        f"error: matrix file {matrix} is not valid TOML: Invalid value (at end of document)\n"
    )
    assert result.stderr == expected, result.stderr
    assert result.stderr.count("\n") == 1


def test_guest_without_swap_cannot_hibernate(power_cycle: PowerCycle, guest: QemuMachine) -> None:
    # Masked too: the harness's `systemctl start swap.target` would otherwise bring it back.
    assert guest.run("swapoff -a && systemctl mask --runtime dev-vdb.swap").ok
    outcome = power_cycle(S4_AGENT, machine=guest).last
    assert outcome.verdict is Verdict.ERROR, outcome.reason
    assert outcome.reason.startswith(
        "guest has no active swap: S4 needs a swap device at least as large as its RAM"
    ), outcome.reason


def test_guest_without_agent(power_cycle: PowerCycle, guest: QemuMachine) -> None:
    guest.run("systemctl stop qemu-guest-agent")
    outcome = power_cycle(S3_AGENT, machine=guest).last
    assert outcome.verdict is Verdict.ERROR, outcome.reason
    assert outcome.reason.startswith(
        "the guest agent does not answer (guest agent guest-ping: "
        "no answer within 15s): the agent cases need "
        "qemu-guest-agent running in the guest"
    ), outcome.reason


def test_disk_full_while_saving_the_checkpoint(tmp_path: Path) -> None:
    """The run directory on a 160 MiB tmpfs: the guest boots, its checkpoint does not fit.
    Every case is an ERROR naming the full disk, after one boot, and nothing is left."""
    small = Path(tempfile.mkdtemp(prefix="s3s4-full-"))  # short: socket paths live below it
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(small)], check=True)
    try:
        result = harness(
            tmp_path,
            "-m",
            "pytest",
            "testcases",
            "-k",
            "s3-agent or s3-sysfs",
            "-p",
            "no:cacheprovider",
            "--report-dir",
            str(tmp_path / "reports"),
            env={"TMPDIR": str(small)},
        )
        assert result.returncode == 1, result.stdout[-3000:]
        (run,) = (tmp_path / "reports").glob("2*/results.json")
        tests = json.loads(run.read_text())["tests"]
        assert [t["outcome"] for t in tests] == ["failed", "failed"], tests
        for test in tests:
            assert (
                "the ready checkpoint could not be taken: checkpoint save: the disk "
                in (test["error"])
            ), test["error"][-1500:]
            assert "is full (" in test["error"] and "set TMPDIR to a larger disk" in test["error"]
        assert tests[1]["duration_s"] < 5, "the second case booted again"
        assert list(small.rglob("*")) == [] or not list((small / "s3s4-harness").iterdir())
        assert processes_naming(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
        small.rmdir()


def test_a_temporary_directory_too_deep_for_sockets(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    line = suite(tmp_path, env={"TMPDIR": str(deep)})
    assert f"error: {deep}/s3s4-harness is too long a path for the guests' sockets (" in line
    assert line.endswith("bytes): set TMPDIR to a shorter directory !"), line


def test_an_ssh_port_taken_before_qemu_binds_it_is_replaced(
    harness_session: HarnessSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ports are picked free by the kernel, but another process can take one before QEMU
    binds it; QEMU then refuses to start, and the harness starts it on another port."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    harness_session.ready_checkpoint()  # its template picks a port of its own, first
    monkeypatch.setattr(machine_base, "free_local_port", lambda: taken)
    machine = harness_session.fresh_guest("port-taken")
    try:
        assert isinstance(machine, QemuMachine)
        machine.ensure_ready()
        output = (machine.evidence_dir / "qemu-output.log").read_text()
        assert f"tcp:127.0.0.1:{taken}-:22" in output, output  # QEMU's own refusal, kept
        assert machine.run("true").ok
        assert f"hostfwd=tcp:127.0.0.1:{taken}-" not in " ".join(machine.argv)
    finally:
        harness_session.discard(machine)
        busy.close()
