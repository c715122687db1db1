"""The guest's serial console as a stream: bytes go to a log file, lines can be waited on.

Kernel messages such as ``PM: suspend entry (s2idle)`` arrive as they are printed (the guest
boots with ``no_console_suspend``), and a wait for one ends the moment it appears.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

ANSI_ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class ConsoleLog:
    """Every console line of one guest, across relaunches; the raw bytes mirrored to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        self._lines: list[str] = []
        self._seen: list[float] = []  # host monotonic time each line was complete
        self._partial = b""
        self._cond = threading.Condition()

    def feed(self, data: bytes) -> None:
        with self._cond:
            with self.path.open("ab") as out:
                out.write(data)
            chunks = (self._partial + data).split(b"\n")
            self._partial = chunks.pop()
            now = time.monotonic()
            for chunk in chunks:
                text = ANSI_ESCAPE.sub(b"", chunk).decode(errors="replace").strip("\r")
                self._lines.append(text)
                self._seen.append(now)
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self._lines)

    def lines_since(self, mark: int) -> list[str]:
        with self._cond:
            return list(self._lines[mark:])

    def seen_since(self, mark: int) -> list[tuple[float, str]]:
        """(host monotonic time the line arrived, line) from ``mark`` on: what the guest's
        kernel did when, on the host's clock (the guest's own clock stands still in S3)."""
        with self._cond:
            return list(zip(self._seen[mark:], self._lines[mark:], strict=True))

    def wait_for(self, pattern: re.Pattern[str], since: int, timeout: float) -> str | None:
        """The first line at or after ``since`` matching ``pattern``; None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            scanned = since
            while True:
                for line in self._lines[scanned:]:
                    if pattern.search(line):
                        return line
                scanned = len(self._lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def tail(self, count: int = 3) -> str:
        with self._cond:
            lines = [line.strip() for line in self._lines if line.strip()][-count:]
        return " | ".join(lines) or "(console empty)"
