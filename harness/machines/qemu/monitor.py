"""QMP monitor: a thin synchronous facade over qemu.qmp that records every event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from qemu.qmp import ExecuteError, QMPClient, QMPError, Runstate

from harness.aio import LoopThread, wait_for_incoming
from harness.errors import HarnessError
from harness.machines.events import EventLog

log = logging.getLogger(__name__)

DRAIN_POLL_S = 0.01  # while the pump empties its queue (a handful of events at most)


class QmpCommandError(HarnessError):
    """QEMU answered a QMP command with an error."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"QMP {command} failed: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QmpMonitor:
    """One QMP connection to one QEMU process; its events go to a shared EventLog."""

    def __init__(self, runner: LoopThread, events: EventLog, name: str = "qmp") -> None:
        self._runner = runner
        self._events = events
        self._client = QMPClient(name)
        self._pump: asyncio.Task[None] | None = None

    def listen(self, socket_path: Path) -> None:
        """Listen before QEMU starts, so that QEMU connects to us and nobody polls a socket."""
        self._runner.run(self._client.start_server(str(socket_path)), timeout=10)

    def accept(self, timeout: float, alive: Callable[[], bool]) -> None:
        """Wait until the QEMU started after ``listen`` has connected and greeted."""
        wait_for_incoming(self._runner, self._client.accept(), timeout, alive, "QMP")
        self._pump = self._runner.run(self._start_pump(), timeout=5)

    async def _start_pump(self) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self._pump_events())

    async def _pump_events(self) -> None:
        async for event in self._client.events:
            stamp = event.get("timestamp")
            qemu_time = 0.0
            if isinstance(stamp, dict):
                qemu_time = float(stamp.get("seconds", 0)) + stamp.get("microseconds", 0) / 1e6
            data = event.get("data", {})
            self._events.append(
                str(event["event"]), dict(data) if isinstance(data, dict) else {}, qemu_time
            )

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float = 30.0
    ) -> Any:
        return self._call(command, self._client.execute(command, arguments), timeout)

    def pass_fd(self, fd: int, name: str, timeout: float = 30.0) -> None:
        """Hand QEMU an open file descriptor (SCM_RIGHTS on this socket, then ``getfd``), for
        a command that takes ``fd:NAME``: QEMU then opens no path and runs no program."""
        try:
            self._call("getfd", self._pass_fd(fd, name), timeout)
        except OSError as exc:  # sendmsg on a socket QEMU has closed
            raise HarnessError(f"QMP getfd: the descriptor could not be sent ({exc})") from exc

    async def _pass_fd(self, fd: int, name: str) -> None:
        self._client.send_fd_scm(fd)  # on the loop's thread: nothing else writes meanwhile
        await self._client.execute("getfd", {"fdname": name})

    def add_fd(self, fd: int, opaque: str, timeout: float = 30.0) -> int:
        """Hand QEMU an open file descriptor as a new fd set (SCM_RIGHTS, then ``add-fd``),
        for a ``file:/dev/fdset/N`` URI; the set's id N."""
        try:
            added = self._call("add-fd", self._add_fd(fd, opaque), timeout)
        except OSError as exc:  # sendmsg on a socket QEMU has closed
            raise HarnessError(f"QMP add-fd: the descriptor could not be sent ({exc})") from exc
        return int(added["fdset-id"])

    async def _add_fd(self, fd: int, opaque: str) -> Any:
        self._client.send_fd_scm(fd)
        return await self._client.execute("add-fd", {"opaque": opaque})

    def _call(self, command: str, call: Coroutine[Any, Any, Any], timeout: float) -> Any:
        try:
            return self._runner.run(call, timeout)
        except ExecuteError as exc:
            raise QmpCommandError(command, exc.error_class, str(exc.error.error.desc)) from exc
        except TimeoutError as exc:
            raise HarnessError(f"QMP {command} got no answer within {timeout:.0f}s") from exc
        except QMPError as exc:
            raise HarnessError(f"QMP {command}: connection lost ({exc})") from exc

    def drain(self, timeout: float) -> None:
        """Once QEMU has ended: wait, within ``timeout``, until every event it sent before
        its socket closed is in the EventLog, so that what the harness records of the exit
        comes after them (a guest's SHUTDOWN before the process's end), however late the
        loop thread runs. The exit is recorded all the same past the bound."""
        try:
            self._runner.run(self._drained(), timeout=timeout)
        except (TimeoutError, QMPError, OSError, EOFError) as exc:
            log.debug("QMP drain: %s", exc)

    async def _drained(self) -> None:
        # The reader queues each event as it reads it and ends at the end of the socket; the
        # pump takes an event off the queue and records it in one step.
        while self._client.runstate is Runstate.RUNNING:
            await self._client.runstate_changed()
        while self._pump is not None and not self._pump.done() and not self._client.events.empty():
            await asyncio.sleep(DRAIN_POLL_S)

    def close(self) -> None:
        try:
            self._runner.run(self._close(), timeout=5)
        except (TimeoutError, QMPError, OSError, EOFError) as exc:
            log.debug("QMP close: %s", exc)

    async def _close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        await self._client.disconnect()
