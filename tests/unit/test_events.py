import threading
from pathlib import Path

from harness.machines.events import EventLog


def test_wait_for_sees_only_events_after_the_mark(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    log.append("SUSPEND", {})
    mark = log.mark()
    assert log.wait_for({"SUSPEND"}, mark, timeout=0.01) is None
    log.append("WAKEUP", {})
    log.append("SUSPEND", {"n": 2})
    event = log.wait_for({"SUSPEND"}, mark, timeout=0.01)
    assert event is not None and event.data == {"n": 2}
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 3


def test_wait_for_wakes_when_another_thread_appends() -> None:
    log = EventLog()
    timer = threading.Timer(0.05, log.append, args=("WAKEUP", {}))
    timer.start()
    event = log.wait_for({"WAKEUP"}, 0, timeout=10)
    timer.join()
    assert event is not None and event.name == "WAKEUP"
