"""The guest's serial console as a stream: bytes go to a log file, lines can be waited on.

Kernel messages such as ``PM: suspend entry (s2idle)`` arrive as they are printed (the guest
boots with ``no_console_suspend``), and a wait for one ends the moment it appears.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from harness.errors import SetupError

log = logging.getLogger(__name__)

ANSI_ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
# A guest can print without ever ending a line; what is kept of one is bounded, the rest of it
# (until its newline) is dropped, and the line says it was cut.
MAX_LINE_BYTES = 64 * 1024
CUT_NOTE = f" [line cut at {MAX_LINE_BYTES // 1024} KiB]"


class SerialLogError(SetupError):
    """The serial log could not be written (a full disk, mostly): the guest's console is
    still followed in memory, but the run's evidence would be incomplete."""


class ConsoleLog:
    """Every console line of one guest, across relaunches; the raw bytes mirrored to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        self._lines: list[str] = []
        self._seen: list[float] = []  # host monotonic time each line was complete
        self._partial = b""
        self._cutting = False  # the line being received was cut: drop it up to its newline
        self.write_error: SerialLogError | None = None
        self._cond = threading.Condition()

    def feed(self, data: bytes) -> None:
        """Take what the console sent: lines are split and kept, the bytes go to the file.
        A failed write raises SerialLogError once (the lines are kept all the same); the file
        is not written again, and every later ``wait_for`` raises it."""
        with self._cond:
            chunks = (self._partial + data).split(b"\n")
            self._partial = chunks.pop()
            now = time.monotonic()
            for chunk in chunks:
                if self._cutting:
                    self._cutting = False  # the end of a line already kept, cut
                    continue
                self._add(chunk, now)
            if self._cutting:
                self._partial = b""
            elif len(self._partial) > MAX_LINE_BYTES:
                self._add(self._partial, now)
                self._partial, self._cutting = b"", True
            self._cond.notify_all()
            if self.write_error is None:
                self._write(data)

    def _add(self, chunk: bytes, now: float) -> None:
        cut = len(chunk) > MAX_LINE_BYTES
        text = ANSI_ESCAPE.sub(b"", chunk[:MAX_LINE_BYTES]).decode(errors="replace")
        text = text.strip("\r")
        if cut:
            log.warning("%s: a console line of more than %d bytes cut", self.path, MAX_LINE_BYTES)
            text += CUT_NOTE
        self._lines.append(text)
        self._seen.append(now)

    def _write(self, data: bytes) -> None:
        try:
            with self.path.open("ab") as out:
                out.write(data)
        except OSError as exc:
            self.write_error = SerialLogError(
                f"the serial log {self.path} cannot be written ({exc.strerror or exc}): free "
                "space on its disk or choose another --report-dir"
            )
            raise self.write_error from exc

    def mark(self) -> int:
        with self._cond:
            return len(self._lines)

    def lines_since(self, mark: int) -> list[str]:
        with self._cond:
            return list(self._lines[mark:])

    def pending(self) -> str:
        """The line still being received: a firmware's message box waits for a key press
        without ending its line, and what it says is there alone."""
        with self._cond:
            return ANSI_ESCAPE.sub(b"", self._partial).decode(errors="replace")

    def seen_since(self, mark: int) -> list[tuple[float, str]]:
        """(host monotonic time the line arrived, line) from ``mark`` on: what the guest's
        kernel did when, on the host's clock (the guest's own clock stands still in S3)."""
        with self._cond:
            return list(zip(self._seen[mark:], self._lines[mark:], strict=True))

    def wait_for(self, pattern: re.Pattern[str], since: int, timeout: float) -> str | None:
        """The first line at or after ``since`` matching ``pattern``; None on timeout."""
        deadline = time.monotonic() + timeout
        if self.write_error is not None:
            raise self.write_error
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
