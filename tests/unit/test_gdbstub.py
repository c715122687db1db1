"""The gdbstub client against a scripted stub that speaks as QEMU 7.2's does (acks, a stop
packet on attach, p/P only after the target description), and the spinning program the
lockup fault runs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cycle.faults import spin_executable
from harness.machines.gdbstub import (
    CS,
    EFLAGS,
    RIP,
    GdbStubError,
    clear_interrupt_flag_in_user_space,
    gdbserver_command,
)
from harness.machines.vcpu_lockup import IF_FLAG


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory short enough for a unix socket's path (pytest's tmp_path may not be)."""
    path = Path(tempfile.mkdtemp(prefix="s3s4-gdb-"))
    yield path
    shutil.rmtree(path)


def _frame(payload: str) -> bytes:
    return f"${payload}#{sum(payload.encode()) % 256:02x}".encode()


class ScriptedStub(threading.Thread):
    """vCPU 1 is in the kernel at the first stop and in user space from the second on."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.stops = 1
        self.eflags = 0x246
        self.received: list[str] = []
        self.described = False

    def registers(self) -> dict[int, tuple[int, int]]:
        user = self.stops > 1
        return {
            RIP: (0x400078 if user else 0xFFFFFFFF81000000, 8),
            EFLAGS: (self.eflags, 4),
            CS: (0x33 if user else 0x10, 4),
        }

    def run(self) -> None:
        conn, _ = self.server.accept()
        conn.sendall(_frame("T02thread:01;"))  # QEMU reports the stop it made on attach
        buffer = b""
        while True:
            data = conn.recv(4096)
            if not data:
                return
            buffer += data
            while True:
                buffer = buffer.lstrip(b"+")
                if buffer.startswith(b"\x03"):
                    buffer = buffer[1:]
                    self.stops += 1
                    conn.sendall(_frame("T02thread:02;"))
                    continue
                end = buffer.find(b"#")
                if not buffer.startswith(b"$") or end < 0 or len(buffer) < end + 3:
                    break
                payload, buffer = buffer[1:end].decode(), buffer[end + 3 :]
                self.received.append(payload)
                conn.sendall(b"+")
                reply = self.answer(payload)
                if reply is not None:
                    conn.sendall(_frame(reply))
                if payload == "D":
                    conn.close()
                    return

    def answer(self, payload: str) -> str | None:
        if payload.startswith("qXfer:features:read:target.xml"):
            self.described = True
            return "l<target/>"
        if payload.startswith("Hg"):
            return "OK"
        if payload.startswith(("p", "P")) and not self.described:
            return ""  # as QEMU: unsupported until the description was read
        if payload.startswith("p"):
            value, size = self.registers()[int(payload[1:], 16)]
            return value.to_bytes(size, "little").hex()
        if payload.startswith("P"):
            number, _, data = payload[1:].partition("=")
            assert int(number, 16) == EFLAGS
            self.eflags = int.from_bytes(bytes.fromhex(data), "little")
            return "OK"
        if payload == "c":
            return None  # answered by a stop packet once interrupted
        return "OK"


def test_the_interrupt_flag_is_cleared_where_the_vcpu_runs_user_code(short_dir: Path) -> None:
    stub = ScriptedStub(short_dir / "gdb.sock")
    stub.start()
    rip = clear_interrupt_flag_in_user_space(stub.path, cpu=1)
    stub.join(timeout=5)
    assert rip == 0x400078
    assert stub.eflags == 0x246 & ~IF_FLAG
    assert stub.received.count("c") == 1  # the first stop found it in the kernel
    assert "Hg2" in stub.received  # vCPU 1 is gdb thread 2
    assert stub.received[-1] == "D"  # detached: QEMU resumes the guest


def test_the_stub_is_asked_for_on_a_unix_socket_only() -> None:
    assert gdbserver_command(Path("/run/s3s4-harness/1-a/qemu-1/gdb.sock")) == (
        "gdbserver unix:/run/s3s4-harness/1-a/qemu-1/gdb.sock,server=on,wait=off"
    )
    with pytest.raises(ValueError, match="comma"):
        gdbserver_command(Path("/tmp/a,server=on,b"))


def test_no_stub_listening_is_a_gdbstub_error(short_dir: Path) -> None:
    with pytest.raises(GdbStubError, match=r"gdbstub at .*gdb\.sock"):
        clear_interrupt_flag_in_user_space(short_dir / "gdb.sock", cpu=1)


def test_the_spinning_program_spins(tmp_path: Path) -> None:
    """The 122-byte ELF runs and never exits by itself (this host is x86-64 Linux too)."""
    if subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip() != "x86_64":
        pytest.skip("needs an x86-64 host")
    program = tmp_path / "spin"
    program.write_bytes(spin_executable())
    program.chmod(0o755)
    result = subprocess.run(["timeout", "0.3", str(program)], check=False)
    assert result.returncode == 124  # killed by timeout: it was still running
