"""Which backend-neutral signal each QMP event (and the harness's own QEMU_EXITED) shows."""

from __future__ import annotations

from typing import Any

from harness.machines.events import QEMU_EXITED
from harness.machines.protocol import Signal

QMP_SIGNALS = {
    "SUSPEND": Signal.SUSPENDED,
    "WAKEUP": Signal.WOKEN,
    "SUSPEND_DISK": Signal.HIBERNATED,
    "SHUTDOWN": Signal.SHUTDOWN,
    "RESET": Signal.RESET,
    QEMU_EXITED: Signal.POWERED_OFF,
}


def qmp_signals(name: str, data: dict[str, Any]) -> tuple[str, ...]:
    signal = QMP_SIGNALS.get(name)
    return (signal.value,) if signal else ()
