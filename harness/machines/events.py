"""An append-only, thread-safe record of a guest's events (QMP or libvirt) to wait on.

Each backend records its own native events (QMP ``SUSPEND``, libvirt ``PMSUSPEND``) and tags
each with the backend-neutral signals it shows (``suspended``), so that transitions and checks
speak of signals while the report keeps what the platform actually said.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QEMU_EXITED = "QEMU_EXITED"  # recorded by the harness when a guest's QEMU process ends


@dataclass(frozen=True)
class RecordedEvent:
    """One platform event, stamped with the platform's time and the host's receive time."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    qemu_time: float = 0.0
    received: float = 0.0
    seq: int = 0
    signals: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event": self.name,
            "data": self.data,
            "qemu_time": self.qemu_time,
            "received": round(self.received, 6),
            "signals": list(self.signals),
        }


Classifier = Callable[[str, dict[str, Any]], tuple[str, ...]]


def no_signals(name: str, data: dict[str, Any]) -> tuple[str, ...]:
    return ()


class EventLog:
    """Every event of one guest, across QEMU relaunches, mirrored to a JSON-lines file."""

    def __init__(self, path: Path | None = None, classify: Classifier = no_signals) -> None:
        self._events: list[RecordedEvent] = []
        self._classify = classify
        self._cond = threading.Condition()
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def append(self, name: str, data: dict[str, Any], qemu_time: float = 0.0) -> RecordedEvent:
        with self._cond:
            event = RecordedEvent(
                name,
                data,
                qemu_time,
                time.monotonic(),
                len(self._events),
                self._classify(name, data),
            )
            self._events.append(event)
            if self.path is not None:
                with self.path.open("a") as out:
                    out.write(json.dumps(event.to_json()) + "\n")
            self._cond.notify_all()
        return event

    def mark(self) -> int:
        """A position to pass as ``since``: only events recorded after now count."""
        with self._cond:
            return len(self._events)

    def since(self, mark: int) -> list[RecordedEvent]:
        with self._cond:
            return list(self._events[mark:])

    def wait_for(self, names: Iterable[str], since: int, timeout: float) -> RecordedEvent | None:
        """First event named in ``names`` at or after ``since``; None if none within timeout."""
        wanted = set(names)
        return self.wait_until(lambda event: event.name in wanted, since, timeout)

    def wait_for_signal(
        self, signals: Iterable[str], since: int, timeout: float
    ) -> RecordedEvent | None:
        """First event at or after ``since`` that shows one of ``signals``; None on timeout."""
        wanted = set(signals)
        return self.wait_until(lambda event: bool(wanted & set(event.signals)), since, timeout)

    def wait_until(
        self, match: Callable[[RecordedEvent], bool], since: int, timeout: float
    ) -> RecordedEvent | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events[since:]:
                    if match(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
