"""ssh into a guest with paramiko: a per-run key, one persistent connection, bounded waits."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.errors import SetupError, SshError, SshKeyRefused

CONNECT_ATTEMPT_SECONDS = 10.0

# paramiko logs every refused attempt with a traceback while sshd is still starting.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class BinaryResult:
    """A command's exit status and its standard output as the bytes it wrote."""

    command: str
    exit_status: int
    data: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class SshKey:
    """A key pair written with 0600 permissions; ``public_line`` goes to authorized_keys."""

    private_path: Path
    public_line: str

    @classmethod
    def generate(cls, directory: Path) -> SshKey:
        """A new key in ``directory``; a file already there (not made by this call, so
        perhaps by someone else) is refused, never written through."""
        key = paramiko.ECDSAKey.generate(bits=256)
        path = directory / "id_ecdsa"
        buffer = io.StringIO()
        key.write_private_key(buffer)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError as exc:
            raise SetupError(
                f"{path} exists already: the harness writes its key only to a new file "
                f"(remove {path.parent} and run again)"
            ) from exc
        with os.fdopen(fd, "w") as handle:
            handle.write(buffer.getvalue())
        return cls(path, f"{key.get_name()} {key.get_base64()} s3s4-harness")

    def load(self) -> paramiko.PKey:
        return paramiko.ECDSAKey.from_private_key_file(str(self.private_path))


class _PinHostKey(paramiko.MissingHostKeyPolicy):
    """Accept only the guest's own host key. With ``known`` keys (``type base64``, as in a
    ``.pub`` file), any other key is refused. Without (a cloud image: its host keys are made
    at its first boot), the first key seen is accepted and then insisted on: trust on first
    use, over a port that only this host's loopback reaches."""

    def __init__(self, known: Sequence[str] = ()) -> None:
        self.known = frozenset(" ".join(line.split()[:2]) for line in known)
        self.pinned: paramiko.PKey | None = None

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if self.known:
            if f"{key.get_name()} {key.get_base64()}" not in self.known:
                raise SshError(
                    f"the guest at {hostname} offered a {key.get_name()} host key that is not "
                    "its image's: refusing to talk to it"
                )
        elif self.pinned is None:
            self.pinned = key
        elif self.pinned != key:
            raise SshError(f"guest host key changed for {hostname}")


class EchoChannel:
    """A ``cat`` running in the guest on the persistent connection: what goes in comes back."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel

    def roundtrip(self, payload: bytes, timeout: float) -> bytes:
        """Send ``payload`` and read the same number of bytes back; what arrived on error."""
        received = b""
        try:
            self._channel.settimeout(timeout)
            self._channel.sendall(payload)
            while len(received) < len(payload):
                chunk = self._channel.recv(len(payload) - len(received))
                if not chunk:
                    break
                received += chunk
        except (OSError, paramiko.SSHException, EOFError):
            pass
        return received

    def close(self) -> None:
        self._channel.close()


class StreamDownload:
    """A command's stdout read on a background thread: a transfer that can span a transition."""

    def __init__(self, channel: paramiko.Channel, limit: float) -> None:
        self._channel = channel
        self._data = bytearray()
        self._done = threading.Event()
        channel.settimeout(limit)
        threading.Thread(target=self._read, name="ssh-stream", daemon=True).start()

    def _read(self) -> None:
        try:
            while chunk := self._channel.recv(65536):
                self._data += chunk
        except (OSError, paramiko.SSHException, EOFError):
            pass
        finally:
            self._done.set()

    def result(self, timeout: float) -> bytes | None:
        """Everything received once the command has ended; None if still running."""
        return bytes(self._data) if self._done.wait(timeout) else None

    def close(self) -> None:
        self._channel.close()


def _read_to_end(channel: paramiko.Channel, recv: Callable[[int], bytes], deadline: float) -> bytes:
    """What ``recv`` gives until end of file; TimeoutError once ``deadline`` has passed."""
    data = bytearray()
    while (left := deadline - time.monotonic()) > 0:
        channel.settimeout(left)
        try:
            chunk = recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return bytes(data)
        data += chunk
    raise TimeoutError(f"output still coming at the deadline ({len(data)} bytes so far)")


class SshConnection:
    """A persistent ssh connection to root@127.0.0.1:port, reopened when it drops."""

    def __init__(self, port: int, key: SshKey, host_keys: Sequence[str] = ()) -> None:
        """``host_keys``: the guest's public host keys, the only ones accepted (see
        ``_PinHostKey`` for a guest whose keys are not known in advance)."""
        self.port = port
        self._key = key
        self._policy = _PinHostKey(host_keys)
        self._client: paramiko.SSHClient | None = None

    @property
    def connected(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def connect(self, timeout: float) -> float:
        """Connect, retrying while sshd is not up yet; seconds taken. A refused key ends the
        attempts at once (SshKeyRefused): retrying cannot change the guest's mind."""
        start = time.monotonic()
        deadline = start + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(self._policy)
            attempt = min(CONNECT_ATTEMPT_SECONDS, max(1.0, deadline - time.monotonic()))
            try:
                client.connect(
                    "127.0.0.1",
                    port=self.port,
                    username="root",
                    pkey=self._key.load(),
                    timeout=attempt,
                    banner_timeout=attempt,
                    auth_timeout=attempt,
                    allow_agent=False,
                    look_for_keys=False,
                )
            except SshError:
                client.close()
                raise  # the host key refused: not the guest
            except paramiko.AuthenticationException as exc:
                client.close()
                raise SshKeyRefused(
                    f"the guest's sshd on 127.0.0.1:{self.port} refused the harness's key: {exc}"
                ) from exc
            except (OSError, paramiko.SSHException) as exc:
                client.close()
                last_error = exc
                # sshd not listening yet answers at once; pace the retries a little.
                time.sleep(0.25)
                continue
            self.close()
            self._client = client
            return time.monotonic() - start
        raise SshError(f"ssh to 127.0.0.1:{self.port} failed for {timeout:.0f}s: {last_error}")

    def run(self, command: str, timeout: float, stdin: bytes | None = None) -> CommandResult:
        """Run ``command`` (a shell string the caller built safely); bounded by ``timeout``."""
        result = self.fetch(command, timeout, stdin)
        return CommandResult(
            command, result.exit_status, result.data.decode(errors="replace"), result.stderr
        )

    def fetch(self, command: str, timeout: float, stdin: bytes | None = None) -> BinaryResult:
        """``run``, keeping what the command wrote as bytes (binary data needs no encoding in
        the guest: under TCG every program started there costs tens of ms). ``timeout``
        bounds the whole command, not each wait for output: one that trickles output
        forever ends at it all the same."""
        deadline = time.monotonic() + timeout
        if not self.connected:
            self.connect(timeout)
        assert self._client is not None
        try:
            channel = self._client.get_transport().open_session(timeout=timeout)  # type: ignore[union-attr]
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            stdout = _read_to_end(channel, channel.recv, deadline)
            stderr = _read_to_end(channel, channel.recv_stderr, deadline)
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("no exit status")
            status = channel.recv_exit_status()
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
            self.close()
            raise SshError(f"ssh command failed or timed out after {timeout:.0f}s: {exc}") from exc
        return BinaryResult(command, status, stdout, stderr.decode(errors="replace"))

    def open_echo(self, timeout: float) -> EchoChannel:
        return EchoChannel(self._exec_channel("cat", timeout))

    def open_stream(self, command: str, limit: float) -> StreamDownload:
        return StreamDownload(self._exec_channel(command, limit), limit)

    def _exec_channel(self, command: str, timeout: float) -> paramiko.Channel:
        """A new channel on the persistent connection, running ``command``."""
        if not self.connected:
            self.connect(timeout)
        assert self._client is not None
        transport = self._client.get_transport()
        assert transport is not None
        try:
            channel = transport.open_session(timeout=timeout)
            channel.exec_command(command)
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
            raise SshError(f"ssh channel for {command.splitlines()[0][:60]!r}: {exc}") from exc
        return channel

    def close(self) -> None:
        """Close the connection; also from another thread, to fail a command waiting on it
        (never ``None.close()``: the client is read once)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
