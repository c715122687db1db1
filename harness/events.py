"""An append-only, thread-safe record of a guest's events (QMP or libvirt) to wait on."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RecordedEvent:
    """One QMP event, stamped with QEMU's time and the host's monotonic receive time."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    qemu_time: float = 0.0
    received: float = 0.0
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event": self.name,
            "data": self.data,
            "qemu_time": self.qemu_time,
            "received": round(self.received, 6),
        }


class EventLog:
    """Every event of one guest, across QEMU relaunches, mirrored to a JSON-lines file."""

    def __init__(self, path: Path | None = None) -> None:
        self._events: list[RecordedEvent] = []
        self._cond = threading.Condition()
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def append(self, name: str, data: dict[str, Any], qemu_time: float = 0.0) -> RecordedEvent:
        with self._cond:
            event = RecordedEvent(name, data, qemu_time, time.monotonic(), len(self._events))
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
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events[since:]:
                    if event.name in wanted:
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
