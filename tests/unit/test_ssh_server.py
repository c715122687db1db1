"""SshConnection against a real ssh server (paramiko's, on a loopback port, in this process):
the guest's host key is checked against the image's, and a command's timeout bounds the whole
command, also one that trickles output and never ends."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from harness.errors import SshError
from harness.guest.ssh import SshConnection, SshKey

Behaviour = Callable[[paramiko.Channel, str], None]
AUTH_SUCCESSFUL = 0  # paramiko.common's values, untyped there
OPEN_SUCCEEDED = 0


class _Server(paramiko.ServerInterface):
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return AUTH_SUCCESSFUL

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        # Run the command once this method has returned and paramiko has answered the exec
        # request: a channel closed before that answer looks to the client like a refusal.
        timer = threading.Timer(0.05, self.behaviour, args=(channel, command.decode()))
        timer.daemon = True
        timer.start()
        return True


class FakeSshd:
    """Serves each connection on 127.0.0.1:port with ``host_key``; commands as ``behaviour``."""

    def __init__(self, host_key: paramiko.PKey, behaviour: Behaviour) -> None:
        self.host_key = host_key
        self.behaviour = behaviour
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def public_line(self) -> str:
        return f"{self.host_key.get_name()} {self.host_key.get_base64()} root@guest"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            self._transports.append(transport)
            try:
                transport.start_server(server=_Server(self.behaviour))
            except (OSError, EOFError, paramiko.SSHException):
                continue  # a client that gave up mid-handshake (a refused host key)

    def close(self) -> None:
        self._listener.close()
        for transport in self._transports:
            transport.close()


def answer(channel: paramiko.Channel, command: str) -> None:
    channel.sendall(f"ran {command}\n".encode())
    channel.sendall_stderr(b"a warning\n")
    channel.send_exit_status(3)
    channel.close()


def trickle(channel: paramiko.Channel, command: str) -> None:
    """A byte every 0.1 s, for ever: no single wait for output is ever long."""
    try:
        while True:
            channel.sendall(b".")
            time.sleep(0.1)
    except (OSError, EOFError, paramiko.SSHException):
        pass


@pytest.fixture
def host_key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate(bits=256)


@pytest.fixture
def key(tmp_path: Path) -> SshKey:
    return SshKey.generate(tmp_path)


@pytest.fixture
def sshd(host_key: paramiko.PKey, request: pytest.FixtureRequest) -> Iterator[FakeSshd]:
    server = FakeSshd(host_key, getattr(request, "param", answer))
    yield server
    server.close()


def test_the_images_host_key_is_accepted(sshd: FakeSshd, key: SshKey) -> None:
    other = paramiko.ECDSAKey.generate(bits=256)
    known = [f"{other.get_name()} {other.get_base64()}", sshd.public_line]
    connection = SshConnection(sshd.port, key, known)
    result = connection.run("uname", timeout=10)
    assert (result.exit_status, result.stdout, result.stderr) == (3, "ran uname\n", "a warning\n")
    connection.close()


def test_a_host_key_not_the_images_is_refused_at_once(sshd: FakeSshd, key: SshKey) -> None:
    other = paramiko.ECDSAKey.generate(bits=256)
    connection = SshConnection(sshd.port, key, [f"{other.get_name()} {other.get_base64()}"])
    started = time.monotonic()
    with pytest.raises(SshError, match="offered a ecdsa-sha2-nistp256 host key that is not its"):
        connection.connect(timeout=30)
    assert time.monotonic() - started < 5  # not retried until the timeout
    assert not connection.connected


def test_without_known_keys_the_first_key_is_pinned(sshd: FakeSshd, key: SshKey) -> None:
    connection = SshConnection(sshd.port, key)
    connection.connect(timeout=10)
    connection.close()
    sshd.host_key = paramiko.ECDSAKey.generate(bits=256)  # another guest on that port
    with pytest.raises(SshError, match="guest host key changed"):
        connection.connect(timeout=10)


@pytest.mark.parametrize("sshd", [trickle], indirect=True)
def test_a_command_that_trickles_output_ends_at_its_timeout(sshd: FakeSshd, key: SshKey) -> None:
    connection = SshConnection(sshd.port, key, [sshd.public_line])
    connection.connect(timeout=10)
    started = time.monotonic()
    with pytest.raises(SshError, match=r"timed out after 2s: output still coming"):
        connection.run("yes", timeout=2)
    assert time.monotonic() - started < 4
