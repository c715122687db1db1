"""Termination signals taken as an interrupt.

SIGTERM (a CI job cancelled, ``timeout``, a service manager stopping the run) and SIGHUP (its
terminal closed) end a process at once by default, without the cleanup that Ctrl-C gets: guests
left running, libvirt domains left defined, no report of what ran. Here they raise
``Terminated``, a KeyboardInterrupt, in the main thread, so the run takes Ctrl-C's way out:
guests stopped, domains undefined, the reports written and marked interrupted, a non-zero exit.
A signal the process was started with ignored (``nohup``) stays ignored.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

_received: list[str] = []


class Terminated(KeyboardInterrupt):
    """A termination signal arrived; ``str()`` names it."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    _received.append(name)
    raise Terminated(f"{name} received")


def take_termination_as_interrupt() -> None:
    """Install the handlers (main thread only: Python runs handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in TERMINATION_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _interrupt)


def received() -> str | None:
    """The first termination signal this process took as an interrupt, if any."""
    return _received[0] if _received else None
