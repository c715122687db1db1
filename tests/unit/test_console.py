import re
import socket
import threading
import time
from pathlib import Path

import pytest

from harness.aio import LoopThread
from harness.guest.console.log import CUT_NOTE, MAX_LINE_BYTES, ConsoleLog, SerialLogError
from harness.guest.console.server import ConsoleServer


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


def test_a_line_without_a_newline_is_cut_and_the_rest_of_it_dropped(tmp_path: Path) -> None:
    log = ConsoleLog(tmp_path / "serial.log")
    log.feed(b"before\n")
    for _ in range(40):  # 2.5 MiB without a newline, in the server's read size
        log.feed(b"x" * 65536)
    assert len(log._partial) <= MAX_LINE_BYTES
    log.feed(b"yyy\nafter\n")
    before, cut, after = log.lines_since(0)
    assert (before, after) == ("before", "after")
    assert cut == "x" * MAX_LINE_BYTES + CUT_NOTE
    assert CUT_NOTE == " [line cut at 64 KiB]"
    assert (tmp_path / "serial.log").stat().st_size == 7 + 40 * 65536 + 10  # the file has all


def test_a_long_line_arriving_whole_is_cut_too(tmp_path: Path) -> None:
    log = ConsoleLog(tmp_path / "serial.log")
    log.feed(b"z" * (MAX_LINE_BYTES + 5) + b"\nnext\n")
    assert log.lines_since(0) == ["z" * MAX_LINE_BYTES + CUT_NOTE, "next"]


def test_a_full_disk_is_a_named_error_and_the_lines_are_still_followed(tmp_path: Path) -> None:
    log = ConsoleLog(tmp_path / "serial.log")
    log.path = Path("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(SerialLogError, match=r"/dev/full cannot be written \(No space left"):
        log.feed(b"PM: suspend entry (deep)\n")
    log.feed(b"PM: suspend exit\n")  # not written again, not raised again
    assert log.lines_since(0) == ["PM: suspend entry (deep)", "PM: suspend exit"]
    with pytest.raises(SerialLogError, match="free space on its disk"):
        log.wait_for(re.compile("suspend exit"), 0, timeout=1)


def test_the_console_server_reads_on_past_a_full_disk(tmp_path: Path) -> None:
    runner = LoopThread()
    try:
        log = ConsoleLog(tmp_path / "serial.log")
        log.path = Path("/dev/full")
        server = ConsoleServer(runner, tmp_path / "console.sock", log)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(tmp_path / "console.sock"))
            server.accept(5, lambda: True)
            client.sendall(b"one\n")
            deadline = time.monotonic() + 5
            while log.mark() < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            client.sendall(b"two\n")
            while log.mark() < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert log.lines_since(0) == ["one", "two"]
        assert log.write_error is not None
        server.close()
    finally:
        runner.close()


def test_a_line_not_yet_ended_is_pending_without_its_terminal_control(tmp_path: Path) -> None:
    """shim's message box waits for a key press and never ends its line."""
    console = ConsoleLog(tmp_path / "serial.log")
    console.feed(b"BdsDxe: starting Boot0001\r\n\x1b[14;49H ERROR Verification failed: (0x1A)")
    assert console.lines_since(0) == ["BdsDxe: starting Boot0001"]
    assert "ERROR Verification failed: (0x1A)" in console.pending()
    assert "\x1b" not in console.pending()
