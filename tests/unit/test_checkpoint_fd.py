"""Checkpoint files reach QEMU as open descriptors (``fd:``, or an fd set's ``file:`` from QEMU
9.0 on), never as an ``exec:`` command."""

import fcntl
import os
import stat
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.machines.checkpoint import LOAD_FD, SAVE_FD, load_uri, save_uri, takes_fdset


class FakeMonitor:
    """Records what each handed-over descriptor refers to while it is open."""

    def __init__(self) -> None:
        self.passed: list[tuple[str, int, str]] = []
        self.fds: list[int] = []

    def pass_fd(self, fd: int, name: str, timeout: float = 30.0) -> None:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        access = {os.O_RDONLY: "r", os.O_WRONLY: "w"}[fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE]
        self.passed.append((name, mode, access))
        self.fds.append(fd)

    def add_fd(self, fd: int, opaque: str, timeout: float = 30.0) -> int:
        self.pass_fd(fd, f"fdset:{opaque}")
        return 3


def test_a_save_hands_qemu_a_new_private_file_to_write(tmp_path: Path) -> None:
    monitor = FakeMonitor()
    state = tmp_path / "state.migration"
    assert save_uri(monitor, state) == f"fd:{SAVE_FD}"
    assert monitor.passed == [(SAVE_FD, 0o600, "w")]
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    with pytest.raises(OSError):
        os.fstat(monitor.fds[0])  # the harness's own copy is closed once QEMU has one


def test_a_restore_hands_qemu_the_saved_file_to_read(tmp_path: Path) -> None:
    monitor = FakeMonitor()
    state = tmp_path / "state.migration"
    state.write_bytes(b"QEVM")
    state.chmod(0o400)
    assert load_uri(monitor, state) == f"fd:{LOAD_FD}"
    assert monitor.passed == [(LOAD_FD, 0o400, "r")]


def test_a_symlink_in_place_of_the_state_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("not a checkpoint")
    (tmp_path / "state.migration").symlink_to(target)
    with pytest.raises(HarnessError, match="cannot open"):
        save_uri(FakeMonitor(), tmp_path / "state.migration")
    assert target.read_text() == "not a checkpoint"


def test_no_monitor_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no QMP connection"):
        save_uri(None, tmp_path / "state.migration")


def test_from_qemu_9_the_file_goes_in_an_fd_set(tmp_path: Path) -> None:
    # Later QEMUs refuse fd: on a regular file ("fd: migration to a file is not supported").
    monitor = FakeMonitor()
    state = tmp_path / "state.migration"
    assert save_uri(monitor, state, "11.1.3") == "file:/dev/fdset/3"
    assert load_uri(monitor, state, "11.1.3") == "file:/dev/fdset/3"
    assert monitor.passed == [(f"fdset:{SAVE_FD}", 0o600, "w"), (f"fdset:{LOAD_FD}", 0o600, "r")]
    assert [takes_fdset(v) for v in ("7.2.22", "8.2.2", "9.0.0", "10.0.2", "")] == [
        False, False, True, True, False,
    ]  # fmt: skip
