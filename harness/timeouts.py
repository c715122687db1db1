"""Named upper bounds for every wait. They are limits, not pauses: waits end on events."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Timeouts:
    """Seconds; generous enough for TCG on a busy 2-core host."""

    boot: float = 300.0
    resume: float = 300.0
    agent: float = 120.0
    ssh: float = 120.0
    suspend_entry: float = 90.0
    wake: float = 60.0
    hibernate: float = 300.0
    command: float = 120.0
    shutdown: float = 30.0

    def scaled(self, factor: float) -> Timeouts:
        return replace(self, **{f.name: getattr(self, f.name) * factor for f in fields(self)})
