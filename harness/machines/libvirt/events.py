"""libvirt's domain events, named readably and tagged with the signals they show.

Lifecycle events are named ``EVENT/DETAIL`` (``STOPPED/SAVED``), PM events by their own names
(``PMSUSPEND``), agent events ``AGENT/CONNECTED``; the QMP-level facts behind them are the same
ones the direct backend sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import libvirt

from harness.machines.events import EventLog
from harness.machines.protocol import Signal

LIFECYCLE = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: ("DEFINED", ("ADDED", "UPDATED", "RENAMED", "FROM_SNAPSHOT")),
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: ("UNDEFINED", ("REMOVED", "RENAMED")),
    libvirt.VIR_DOMAIN_EVENT_STARTED: (
        "STARTED",
        ("BOOTED", "MIGRATED", "RESTORED", "FROM_SNAPSHOT", "WAKEUP", "RECREATED"),
    ),
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: (
        "SUSPENDED",
        (
            "PAUSED",
            "MIGRATED",
            "IOERROR",
            "WATCHDOG",
            "RESTORED",
            "FROM_SNAPSHOT",
            "API_ERROR",
            "POSTCOPY",
            "POSTCOPY_FAILED",
        ),
    ),
    libvirt.VIR_DOMAIN_EVENT_RESUMED: (
        "RESUMED",
        ("UNPAUSED", "MIGRATED", "FROM_SNAPSHOT", "POSTCOPY", "POSTCOPY_FAILED"),
    ),
    libvirt.VIR_DOMAIN_EVENT_STOPPED: (
        "STOPPED",
        ("SHUTDOWN", "DESTROYED", "CRASHED", "MIGRATED", "SAVED", "FAILED", "FROM_SNAPSHOT"),
    ),
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: ("SHUTDOWN", ("FINISHED", "GUEST", "HOST")),
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: ("PMSUSPENDED", ("MEMORY", "DISK")),
    libvirt.VIR_DOMAIN_EVENT_CRASHED: ("CRASHED", ("PANICKED", "CRASHLOADED")),
}

SIGNALS: dict[str, tuple[Signal, ...]] = {
    "PMSUSPEND": (Signal.SUSPENDED,),
    "PMWAKEUP": (Signal.WOKEN,),
    "PMSUSPEND_DISK": (Signal.HIBERNATED,),
    "REBOOT": (Signal.RESET,),
    "SHUTDOWN/GUEST": (Signal.SHUTDOWN,),
    "SHUTDOWN/FINISHED": (Signal.SHUTDOWN,),
    "STOPPED/SAVED": (Signal.POWERED_OFF, Signal.SAVED),
    "STOPPED/FROM_SNAPSHOT": (Signal.POWERED_OFF, Signal.SAVED),
    "STARTED/RESTORED": (Signal.RESTORED,),
    "STARTED/FROM_SNAPSHOT": (Signal.RESTORED,),
}
STOPPED_NAMES = tuple(
    f"STOPPED/{detail}" for detail in LIFECYCLE[libvirt.VIR_DOMAIN_EVENT_STOPPED][1]
)


def lifecycle_name(event: int, detail: int) -> str:
    name, details = LIFECYCLE.get(event, (f"EVENT{event}", ()))
    return f"{name}/{details[detail] if 0 <= detail < len(details) else detail}"


def libvirt_signals(name: str, data: dict[str, Any]) -> tuple[str, ...]:
    signals = SIGNALS.get(name, ())
    if name.startswith("STOPPED/") and not signals:
        signals = (Signal.POWERED_OFF,)
    return tuple(s.value for s in signals)


def subscribe(conn: libvirt.virConnect, dom: libvirt.virDomain, log: EventLog) -> list[int]:
    """Register this domain's lifecycle, PM, reboot and agent events into ``log``; the
    callback ids, for ``unsubscribe``."""

    def record(name: str, **data: Any) -> Callable[..., None]:
        def callback(*_args: Any) -> None:
            log.append(name, data)

        return callback

    def on_lifecycle(_c: Any, _d: Any, event: int, detail: int, _o: Any) -> None:
        log.append(lifecycle_name(event, detail), {})

    def on_pm(name: str) -> Callable[..., None]:
        def callback(_c: Any, _d: Any, reason: int, _o: Any) -> None:
            log.append(name, {"reason": reason})

        return callback

    def on_agent(_c: Any, _d: Any, state: int, reason: int, _o: Any) -> None:
        states = {1: "CONNECTED", 2: "DISCONNECTED"}
        log.append(f"AGENT/{states.get(state, state)}", {"reason": reason})

    handlers: list[tuple[int, Callable[..., None]]] = [
        (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle),
        (libvirt.VIR_DOMAIN_EVENT_ID_PMSUSPEND, on_pm("PMSUSPEND")),
        (libvirt.VIR_DOMAIN_EVENT_ID_PMWAKEUP, on_pm("PMWAKEUP")),
        (libvirt.VIR_DOMAIN_EVENT_ID_PMSUSPEND_DISK, on_pm("PMSUSPEND_DISK")),
        (libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, record("REBOOT")),
        (libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE, on_agent),
    ]
    return [conn.domainEventRegisterAny(dom, event_id, cb, None) for event_id, cb in handlers]


def unsubscribe(conn: libvirt.virConnect, callback_ids: list[int]) -> None:
    for callback_id in callback_ids:
        with contextlib.suppress(libvirt.libvirtError):
            conn.domainEventDeregisterAny(callback_id)
