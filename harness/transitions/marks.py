"""Where a cycle began: the event log's and the console's marks, from which each wait and
each judge reads only what came after."""

from __future__ import annotations

from dataclasses import dataclass

from harness.machines.protocol import PlatformRecords


@dataclass(frozen=True)
class Marks:
    """Where a cycle began in the event log and in the console."""

    events: int
    console: int

    @classmethod
    def now(cls, machine: PlatformRecords) -> Marks:
        return cls(events=machine.events.mark(), console=machine.console.mark())
