"""Just enough of GDB's remote serial protocol to change one vCPU's registers through QEMU's
gdbstub (HMP ``gdbserver``), for fault injection: QEMU pauses the guest while a debugger is
attached and resumes it on detach. Register numbers are those of QEMU's x86-64 target
(16 RIP, 17 EFLAGS, 18 CS).

The stub listens on a unix socket in the machine's private (0700) run directory, never on a
TCP port: whoever connects first may rewrite the guest's registers, and on loopback that is
any local user."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.machines.vcpu_lockup import IF_FLAG

RIP, EFLAGS, CS = 0x10, 0x11, 0x12
SOCKET_NAME = "gdb.sock"


def gdbserver_command(path: Path) -> str:
    """The HMP command that starts QEMU's gdbstub on the unix socket ``path``."""
    if "," in str(path):
        raise ValueError(f"{path}: a chardev path cannot hold a comma")
    return f"gdbserver unix:{path},server=on,wait=off"


class GdbStubError(HarnessError):
    pass


class GdbStub:
    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError as exc:
            self._sock.close()
            raise GdbStubError(f"gdbstub at {path}: {exc}") from exc
        self._buffer = b""
        self._deadline_s = timeout
        # QEMU 7.2 has no no-ack mode: every packet is acknowledged ("+"), both ways. It
        # answers single-register reads and writes (p, P) only to a client that has read its
        # target description.
        if self.request("qXfer:features:read:target.xml:0,1000")[:1] not in ("l", "m"):
            raise GdbStubError("gdbstub: no target description")

    def request(self, payload: str) -> str:
        """Send ``payload``; the reply's payload (stop packets QEMU sends meanwhile are
        skipped: it announces the stop it made on attach)."""
        self._send(payload)
        while (reply := self._packet()).startswith("T"):
            pass
        return reply

    def run_for(self, seconds: float) -> str:
        """Let the guest run for ``seconds`` (or until it stops by itself), then stop it; the
        stop reply. Stopped at once after resuming, the vCPUs would not have run at all."""
        self._send("c")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self._sock], [], [], left)
            if readable:
                self._buffer += self._recv()  # the ack of "c"; a packet means it stopped
                if b"$" in self._buffer:
                    return self._packet()
        self._sock.sendall(b"\x03")
        return self._packet()

    def select_cpu(self, index: int) -> None:
        if self.request(f"Hg{index + 1:x}") != "OK":
            raise GdbStubError(f"gdbstub: no vCPU {index}")

    def read_register(self, number: int) -> int:
        reply = self.request(f"p{number:x}")
        if not reply or reply.startswith("E"):
            raise GdbStubError(f"gdbstub: register {number:#x} unreadable ({reply})")
        return int.from_bytes(bytes.fromhex(reply), "little")

    def write_register(self, number: int, value: int, size: int) -> None:
        data = value.to_bytes(size, "little").hex()
        if self.request(f"P{number:x}={data}") != "OK":
            raise GdbStubError(f"gdbstub: register {number:#x} not written")

    def detach(self) -> None:
        """Detach: QEMU resumes the guest (on a closed connection too, so a stub that closes
        before the ack of its reply is no error)."""
        try:
            self.request("D")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._sock.close()

    def _send(self, payload: str) -> None:
        checksum = sum(payload.encode()) % 256
        self._sock.sendall(f"${payload}#{checksum:02x}".encode())

    def _packet(self) -> str:
        """The next ``$payload#xx`` packet's payload (acks and notifications skipped)."""
        deadline = time.monotonic() + self._deadline_s
        while True:
            start = self._buffer.find(b"$")
            end = self._buffer.find(b"#", start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0 and len(self._buffer) >= end + 3:
                payload = self._buffer[start + 1 : end].decode()
                self._buffer = self._buffer[end + 3 :]
                self._sock.sendall(b"+")
                return payload
            if time.monotonic() > deadline:
                raise GdbStubError(f"gdbstub: no reply within {self._deadline_s:.0f}s")
            self._buffer += self._recv()

    def _recv(self) -> bytes:
        try:
            data = self._sock.recv(4096)
        except TimeoutError as exc:
            raise GdbStubError("gdbstub: no reply") from exc
        if not data:
            raise GdbStubError("gdbstub: connection closed")
        return data


USER_MODE = 3
RUN_BETWEEN_LOOKS_S = 0.05


def clear_interrupt_flag_in_user_space(path: Path, cpu: int, attempts: int = 50) -> int:
    """Attach to the gdbstub at ``path``; stop the guest until vCPU ``cpu`` is caught in user
    space (CPL 3), clear its interrupt flag there and detach. A CPU looping in user space
    with IF clear never takes an interrupt again (the kernel cannot set it back): a hard
    lockup without a kernel module. Returns the RIP it was caught at."""
    stub = GdbStub(path)
    seen: list[str] = []
    try:
        for _ in range(attempts):
            stub.select_cpu(cpu)
            cs = stub.read_register(CS)
            seen.append(f"{cs:#x}@{stub.read_register(RIP):#x}")
            if cs & 3 == USER_MODE:
                flags = stub.read_register(EFLAGS)
                stub.write_register(EFLAGS, flags & ~IF_FLAG, 4)
                if stub.read_register(EFLAGS) & IF_FLAG:
                    raise GdbStubError("gdbstub: the interrupt flag did not stay cleared")
                return stub.read_register(RIP)
            stub.run_for(RUN_BETWEEN_LOOKS_S)
        raise GdbStubError(
            f"gdbstub: vCPU {cpu} not caught in user space in {attempts} stops: {seen[-5:]}"
        )
    finally:
        stub.detach()
