"""Progress of long waits: quiet for short waits, plain lines in a log, one rewritten line at
a terminal, the stage with its elapsed time and bound."""

from harness import progress as progress_module
from harness.progress import PLAIN_EVERY_S, QUIET_S, WaitProgress, clock


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_log_gets_plain_lines_at_the_quiet_mark_then_every_so_often() -> None:
    lines: list[str] = []
    now = FakeClock()
    progress = WaitProgress(lines.append, None, now)
    with progress.waiting("resume: agent and ssh", 300):
        progress.tick()
        assert lines == []  # a short wait says nothing
        now.t += QUIET_S
        progress.tick()
        progress.tick()
        now.t += PLAIN_EVERY_S
        progress.tick()
        now.t += 5
    assert lines == [
        "[wait] waiting for resume: agent and ssh: 0:10 of 5:00",
        "[wait] waiting for resume: agent and ssh: 0:40 of 5:00",
        "[wait] resume: agent and ssh: over after 0:45",
    ]


def test_a_wait_that_ends_soon_leaves_no_line() -> None:
    lines: list[str] = []
    progress = WaitProgress(lines.append, None, FakeClock())
    with progress.waiting("wake: woken", 60):
        progress.tick()
    assert lines == []


def test_a_terminal_gets_one_line_rewritten_and_erased_at_the_end() -> None:
    text: list[str] = []
    now = FakeClock()
    progress = WaitProgress(lambda line: text.append(line + "\n"), text.append, now)
    with progress.waiting("boot", 300), progress.waiting("suspend-entry: suspended", 90):
        now.t += QUIET_S + 2
        progress.tick()
    assert text[0] == "\rwaiting for suspend-entry: suspended: 0:12 of 1:30\x1b[K"
    assert text[-1] == "\r\x1b[K" and not any("\n" in t for t in text)


def test_clock_reads_minutes_and_hours() -> None:
    assert (clock(5), clock(300), clock(3725)) == ("0:05", "5:00", "1:02:05")


def test_a_closed_writer_loses_the_line_never_the_wait() -> None:
    """A run's terminal writer closed under it (a pytest run inside another) fails no wait."""

    def closed(_text: str) -> None:
        raise ValueError("I/O operation on closed file.")

    now = FakeClock()
    progress = WaitProgress(closed, None, now)
    with progress.waiting("boot (agent, ssh)", 300):
        now.t += QUIET_S
        progress.tick()
        now.t += 5
    live = WaitProgress(closed, closed, now)
    with live.waiting("boot (agent, ssh)", 300):
        now.t += QUIET_S
        live.tick()


def test_a_run_puts_back_the_writers_it_replaced() -> None:
    lines: list[str] = []
    before = progress_module.use(lines.append)
    try:
        inner = progress_module.use(print)
        assert inner == (lines.append, None)
        assert progress_module.use(*inner) == (print, None)
    finally:
        progress_module.use(*before)
