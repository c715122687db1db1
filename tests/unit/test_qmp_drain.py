"""The events QEMU sent before it ended are recorded before its exit: ``drain`` waits for the
end of the QMP socket and an empty queue, within its bound."""

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from harness.aio import LoopThread
from harness.machines.events import EventLog, RecordedEvent
from harness.machines.qemu.monitor import QmpMonitor

GREETING = {
    "QMP": {
        "version": {"qemu": {"major": 11, "minor": 1, "micro": 3}, "package": ""},
        "capabilities": [],
    }
}
SHUTDOWN = {"event": "SHUTDOWN", "data": {"guest": True, "reason": "guest-shutdown"},
            "timestamp": {"seconds": 1, "microseconds": 0}}  # fmt: skip


def fake_qemu(path: Path, close: threading.Event) -> None:
    """Greets and takes qmp_capabilities; once ``close`` is set, sends SHUTDOWN and ends."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(json.dumps(GREETING).encode() + b"\n")
        request = json.loads(sock.recv(65536))  # qmp_capabilities, no newline after it
        sock.sendall(json.dumps({"return": {}, "id": request.get("id")}).encode() + b"\n")
        close.wait(30)
        sock.sendall(json.dumps(SHUTDOWN).encode() + b"\n")  # its last words, then its end


class SlowEventLog(EventLog):
    """An event log whose recording lags, as the loop thread does on a loaded host."""

    def append(self, name: str, data: dict[str, Any], qemu_time: float = 0.0) -> RecordedEvent:
        if name == "SHUTDOWN":
            time.sleep(0.3)
        return super().append(name, data, qemu_time)


def connected(tmp_path: Path) -> tuple[QmpMonitor, EventLog, LoopThread, threading.Event]:
    runner, events, close = LoopThread(), SlowEventLog(), threading.Event()
    monitor = QmpMonitor(runner, events)
    path = tmp_path / "qmp.sock"
    monitor.listen(path)
    threading.Thread(target=fake_qemu, args=(path, close), daemon=True).start()
    monitor.accept(10, lambda: True)
    return monitor, events, runner, close


def test_after_drain_the_events_sent_before_the_end_are_recorded(tmp_path: Path) -> None:
    monitor, events, runner, close = connected(tmp_path)
    close.set()  # QEMU ends
    monitor.drain(5)
    assert [event.name for event in events.since(0)] == ["SHUTDOWN"]
    monitor.close()
    runner.close()


def test_drain_is_bounded_while_qemu_keeps_its_socket(tmp_path: Path) -> None:
    monitor, _events, runner, close = connected(tmp_path)
    started = time.monotonic()
    monitor.drain(0.5)
    assert 0.4 < time.monotonic() - started < 3
    close.set()
    monitor.close()
    runner.close()
