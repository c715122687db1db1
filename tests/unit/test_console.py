import re
import threading
import time
from pathlib import Path

from harness.guest.console.log import ConsoleLog


def test_lines_are_split_across_chunks_and_stripped_of_colour(tmp_path: Path) -> None:
    log = ConsoleLog(tmp_path / "serial.log")
    log.feed(b"[  OK  ] \x1b[0;32mStarted\x1b[0m thing\r\nPM: suspend en")
    assert log.lines_since(0) == ["[  OK  ] Started thing"]
    log.feed(b"try (deep)\n")
    assert log.lines_since(1) == ["PM: suspend entry (deep)"]
    assert (tmp_path / "serial.log").read_bytes().endswith(b"PM: suspend entry (deep)\n")


def test_wait_for_ends_when_the_line_arrives_and_respects_the_mark(tmp_path: Path) -> None:
    log = ConsoleLog(tmp_path / "serial.log")
    log.feed(b"PM: suspend exit\n")
    mark = log.mark()
    assert log.wait_for(re.compile("suspend exit"), mark, timeout=0.01) is None
    timer = threading.Timer(0.05, log.feed, args=(b"[ 9.1] PM: suspend exit\n",))
    timer.start()
    line = log.wait_for(re.compile("suspend exit"), mark, timeout=10)
    timer.join()
    assert line == "[ 9.1] PM: suspend exit"


def test_each_line_is_stamped_when_its_end_arrives_not_its_start(tmp_path: Path) -> None:
    log = ConsoleLog(tmp_path / "serial.log")
    log.feed(b"first\nsec")
    between = time.monotonic()
    log.feed(b"ond\n")
    (first_seen, first), (second_seen, second) = log.seen_since(0)
    assert (first, second) == ("first", "second")
    assert first_seen <= between <= second_seen
    assert log.seen_since(1) == [(second_seen, "second")]
