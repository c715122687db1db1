"""qemu-guest-agent client built on qemu.qmp.

The agent speaks QMP without a greeting and prefixes the reply to ``guest-sync-delimited``
with a 0xFF byte; after a resume the channel may also hold stale or partial lines. The
protocol subclass strips the delimiter and drops lines that are not JSON, so that a fresh
sync id re-establishes a clean exchange on every connection.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qemu.qmp import ExecuteError, QMPClient, QMPError
from qemu.qmp.error import ProtocolError
from qemu.qmp.message import Message

from harness.aio import LoopThread, wait_for_incoming
from harness.errors import AgentCommandError, AgentError
from harness.guest.agent_exec import run_script
from harness.guest.ssh import CommandResult

log = logging.getLogger(__name__)

SYNC_ATTEMPT_SECONDS = 3.0

# Answers to sync attempts that timed out arrive later with ids nobody waits for; qemu.qmp
# drops them with a warning each, which here is expected and only noise.
logging.getLogger("qemu.qmp.protocol.qga").setLevel(logging.ERROR)


class _AgentProtocol(QMPClient):
    async def _do_recv(self) -> Message:
        while True:
            raw = (await self._readline()).lstrip(b"\xff")
            if not raw.strip():
                continue
            try:
                return Message(raw, eager=True)
            except ProtocolError:
                log.debug("guest agent: dropped a line that is not JSON: %r", raw[:200])


class GuestAgent:
    """One connection to the guest agent's virtio-serial chardev."""

    def __init__(self, runner: LoopThread, socket_path: Path) -> None:
        self._runner = runner
        self._socket_path = socket_path
        self._client: _AgentProtocol | None = None

    def listen(self) -> None:
        """Listen before QEMU starts; QEMU's chardev connects to us as a client."""
        self.close()
        client = _AgentProtocol("qga")
        client.await_greeting = False
        client.negotiate = False
        self._runner.run(client.start_server(str(self._socket_path)), timeout=10)
        self._client = client

    def accept(self, timeout: float, alive: Callable[[], bool]) -> None:
        wait_for_incoming(self._runner, self._require().accept(), timeout, alive, "guest agent")

    def sync(self, timeout: float, alive: Callable[[], bool]) -> float:
        """Repeat guest-sync-delimited with fresh ids until the agent answers; seconds taken.

        Until the agent runs (boot, resume) commands go unanswered; each attempt is bounded
        and a stale answer to an earlier attempt is dropped by its id.
        """
        client = self._require()
        start = time.monotonic()
        deadline = start + timeout
        while True:
            token = random.randint(1, 2**31 - 1)
            try:
                reply = self._runner.run(
                    client.execute("guest-sync-delimited", {"id": token}), SYNC_ATTEMPT_SECONDS
                )
                if reply == token:
                    return time.monotonic() - start
            except TimeoutError:
                pass
            except QMPError as exc:
                raise AgentError(f"guest agent connection failed: {exc}") from exc
            if not alive():
                raise AgentError("QEMU exited while waiting for the guest agent")
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest agent did not answer within {timeout:.0f}s")

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float = 30.0
    ) -> Any:
        try:
            return self._runner.run(self._execute(command, arguments), timeout)
        except TimeoutError as exc:
            raise AgentError(f"guest agent {command}: no answer within {timeout:.0f}s") from exc

    def shell(self, script: str, timeout: float) -> CommandResult:
        """``sh -c script`` through guest-exec, within ``timeout``."""
        return run_script(lambda cmd, args: self.execute(cmd, args, timeout), script, timeout)

    def fire(
        self, command: str, arguments: dict[str, Any] | None = None
    ) -> concurrent.futures.Future[Any]:
        """Send a command that gets no reply on success (guest-suspend-*); returns its future.

        The future completes only if the agent answers, which for these commands means an
        error; callers wait on QMP events instead and cancel the future afterwards.
        """
        return self._runner.submit(self._execute(command, arguments))

    async def _execute(self, command: str, arguments: dict[str, Any] | None) -> Any:
        try:
            return await self._require().execute(command, arguments)
        except ExecuteError as exc:
            raise AgentCommandError(command, str(exc.error.error.desc)) from exc
        except QMPError as exc:
            raise AgentError(f"guest agent {command}: connection lost ({exc})") from exc

    def _require(self) -> _AgentProtocol:
        if self._client is None:
            raise AgentError("guest agent is not connected")
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            self._runner.run(client.disconnect(), timeout=5)
        except (TimeoutError, QMPError, OSError, EOFError) as exc:
            log.debug("guest agent close: %s", exc)
