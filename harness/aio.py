"""A private asyncio loop on a daemon thread, so synchronous pytest code can drive qemu.qmp."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from qemu.qmp import QMPError

from harness.errors import QemuStartError

T = TypeVar("T")


class LoopThread:
    """Runs coroutines on one background event loop and waits for them with a bound."""

    def __init__(self, name: str = "harness-aio") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop; cancel it and raise TimeoutError past ``timeout``."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result within {timeout}s") from None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` without waiting for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        """Cancel what is still pending (connections' reader tasks), then stop the loop."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(TimeoutError, RuntimeError):
            self.run(_cancel_pending(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


async def _cancel_pending() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def wait_for_incoming(
    runner: LoopThread,
    accept: Coroutine[Any, Any, None],
    timeout: float,
    alive: Callable[[], bool],
    what: str,
) -> None:
    """Wait for an incoming connection from QEMU, giving up early if QEMU has died."""
    future = runner.submit(accept)
    deadline = time.monotonic() + timeout
    while True:
        try:
            future.result(timeout=0.5)
            return
        except concurrent.futures.TimeoutError:
            if not alive():
                future.cancel()
                raise QemuStartError(f"QEMU exited before connecting its {what} socket") from None
            if time.monotonic() > deadline:
                future.cancel()
                raise QemuStartError(
                    f"QEMU did not connect its {what} socket in {timeout:.0f}s"
                ) from None
        except QMPError as exc:
            raise QemuStartError(f"{what} connection from QEMU failed: {exc}") from exc
