"""QEMU's serial chardev connects to a socket the harness listens on; bytes feed a ConsoleLog."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from harness.aio import LoopThread, wait_for_incoming
from harness.guest.console.log import ConsoleLog, SerialLogError

logger = logging.getLogger(__name__)


class ConsoleServer:
    """Accepts QEMU's serial chardev connection and feeds a ConsoleLog.

    By default for one launch; ``persistent`` keeps listening for every later QEMU of the same
    guest (under libvirt, QEMU is restarted by restore, start and revert, some of them run by
    others such as libvirt-guests, and QEMU refuses to start if nobody listens).
    """

    def __init__(
        self, runner: LoopThread, socket_path: Path, log: ConsoleLog, persistent: bool = False
    ) -> None:
        self._runner = runner
        self._socket_path = socket_path
        self._log = log
        self._persistent = persistent
        self._server: asyncio.AbstractServer | None = None
        self._connected: asyncio.Future[None] | None = None

    def listen(self) -> None:
        self._socket_path.unlink(missing_ok=True)
        self._runner.run(self._listen(), timeout=10)

    async def _listen(self) -> None:
        self._connected = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_unix_server(self._serve, str(self._socket_path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(None)
        if self._server is not None and not self._persistent:
            self._server.close()
        try:
            while data := await reader.read(65536):
                try:
                    self._log.feed(data)
                except SerialLogError as exc:
                    # Keep reading: a console nobody reads would stall the guest's serial
                    # port, and its lines are still followed in memory.
                    logger.error("%s", exc)
        except asyncio.CancelledError:
            pass  # the harness is closing its loop while QEMU still holds the connection
        finally:
            writer.close()

    def accept(self, timeout: float, alive: Callable[[], bool]) -> None:
        wait_for_incoming(self._runner, self._wait_connected(), timeout, alive, "console")

    async def _wait_connected(self) -> None:
        assert self._connected is not None
        await asyncio.shield(self._connected)

    def close(self) -> None:
        if self._server is not None:
            self._runner.submit(self._close())
            self._server = None

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
