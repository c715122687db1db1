"""Progress of long waits for whoever watches the run: the stage being waited on, how long it
has taken and its bound, so that an S4 relaunch or a hung guest is not minutes of silence.

A wait says nothing for its first QUIET_S (most waits end sooner). Then, at a terminal, one
line is rewritten in place every tick and erased when the wait ends; in a log (not a
terminal, or ``CI=true``) a plain line is written at the quiet mark and every PLAIN_EVERY_S,
and one more when the wait ends. ``use`` redirects the lines (the pytest plugin sends them
past its output capture).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass

QUIET_S = 10.0  # a shorter wait is not worth a line
PLAIN_EVERY_S = 30.0  # a log gets a line this often: enough to see it move, not a flood
TICK_S = 1.0  # a terminal's line is rewritten this often

Writer = Callable[[str], None]


@dataclass
class _Wait:
    stage: str
    bound: float
    started: float
    reported: float | None = None  # when its last plain line was written


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stderr_live(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def stderr_is_live() -> bool:
    """A person watches a terminal: lines may be rewritten in place. CI logs get plain lines."""
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() != "true"


class WaitProgress:
    """The waits under way (one per thread at most shown: its innermost), and a thread that
    reports them while any lasts longer than ``quiet``."""

    def __init__(
        self,
        write_line: Writer = _stderr_line,
        live: Writer | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write_line = write_line
        self.live = live  # writes raw text to a terminal; None: plain lines only
        self.now = now
        self._waits: dict[int, list[_Wait]] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._shown = False  # a live line is on the terminal

    @contextmanager
    def waiting(self, stage: str, bound: float) -> Iterator[None]:
        """Report the block as a wait for ``stage``, bounded by ``bound`` seconds."""
        wait = _Wait(stage, bound, self.now())
        key = threading.get_ident()
        with self._cond:
            self._waits.setdefault(key, []).append(wait)
            self._start_thread()
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                stack = self._waits.get(key, [])
                if wait in stack:
                    stack.remove(wait)
                if not stack:
                    self._waits.pop(key, None)
                self._ended(wait)

    def tick(self) -> None:
        """One look at the waits: what the reporting thread does every TICK_S."""
        with self._cond:
            shown = [s[-1] for s in self._waits.values() if s]
            shown = [w for w in shown if self.now() - w.started >= QUIET_S]
            if self.live is not None:
                if shown:
                    self._say(self.live, "\r" + "; ".join(map(self._describe, shown)) + "\x1b[K")
                    self._shown = True
                return
            for wait in shown:
                if wait.reported is None or self.now() - wait.reported >= PLAIN_EVERY_S:
                    wait.reported = self.now()
                    self._say(self.write_line, f"[wait] {self._describe(wait)}")

    def _describe(self, wait: _Wait) -> str:
        return (
            f"waiting for {wait.stage}: {clock(self.now() - wait.started)} of {clock(wait.bound)}"
        )

    def _ended(self, wait: _Wait) -> None:
        if self.live is not None:
            if self._shown and not self._waits:
                self._say(self.live, "\r\x1b[K")
                self._shown = False
        elif wait.reported is not None:
            ended = f"[wait] {wait.stage}: over after {clock(self.now() - wait.started)}"
            self._say(self.write_line, ended)

    @staticmethod
    def _say(write: Writer, text: str) -> None:
        """Progress is for the person watching: a stream that is gone (a closed terminal
        writer, a closed pipe) loses the line, never the wait it reports on."""
        with suppress(OSError, ValueError):
            write(text)

    def _start_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="wait-progress", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        """Tick while a wait is under way; sleep on the condition while none is."""
        while True:
            with self._cond:
                while not self._waits:
                    self._cond.wait()
                self._cond.wait(TICK_S)
            self.tick()


_reporter = WaitProgress(live=_stderr_live if stderr_is_live() else None)


def use(write_line: Writer, live: Writer | None = None) -> tuple[Writer, Writer | None]:
    """Send the lines to ``write_line`` (and, for a terminal, rewritten text to ``live``);
    returns the writers used until now, for whoever set these to put them back."""
    with _reporter._cond:
        previous = (_reporter.write_line, _reporter.live)
        _reporter.write_line = write_line
        _reporter.live = live
    return previous


def waiting(stage: str, bound: float) -> AbstractContextManager[None]:
    """Report the block as a wait for ``stage`` (bounded by ``bound`` s) if it lasts."""
    return _reporter.waiting(stage, bound)
