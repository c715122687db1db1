"""Start and stop a child process (QEMU, a daemon) so that it can never outlive the harness."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in the child before exec (``preexec_fn``): the kernel kills it if the harness
    dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ChildProcess:
    """One child process (QEMU, libvirtd, virtlogd), its output in a log file, in a session of
    its own.

    A session of its own keeps the terminal's Ctrl-C away from the child, so the harness decides
    the order of shutdown; PR_SET_PDEATHSIG takes it down if the harness is killed outright.
    The kernel ties that signal to the thread that forked the child, not to the process: start
    a child only from a thread that lives as long as it (the main thread), never from a pool.
    """

    def __init__(
        self,
        argv: list[str],
        output_log: Path,
        on_exit: Callable[[int], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self.env = env or {}
        self.output_log = output_log
        self._on_exit = on_exit
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.output_log.open("ab") as out:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
                env={**os.environ, **self.env} if self.env else None,
            )
        if self._on_exit is not None:
            threading.Thread(
                target=self._watch,
                args=(self._popen, self._on_exit),
                name=f"qemu-{self._popen.pid}-watch",
                daemon=True,
            ).start()

    @staticmethod
    def _watch(popen: subprocess.Popen[bytes], on_exit: Callable[[int], None]) -> None:
        on_exit(popen.wait())

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def wait(self, timeout: float) -> bool:
        """True once the process has exited, False if it is still running after ``timeout``."""
        if self._popen is None:
            return True
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (at once when ``grace`` is 0)."""
        if not self.running:
            return
        assert self._popen is not None
        if grace > 0:
            self._popen.terminate()
        if grace <= 0 or not self.wait(grace):
            self._popen.kill()
            self.wait(max(grace, 5.0))

    def output_tail(self, max_bytes: int = 2000) -> str:
        """The end of what QEMU printed, for error messages."""
        try:
            data = self.output_log.read_bytes()[-max_bytes:]
        except OSError:
            return ""
        return data.decode(errors="replace").strip()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_to_end(
    argv: list[str],
    output: TextIO,
    on_line: Callable[[str], None],
    timeout: float,
    stop_grace: float,
) -> int:
    """Run a long step (an image build) in a session of its own, dying with the harness; its
    output lines go to ``output`` and ``on_line``; its exit status.

    Interrupted (Ctrl-C, or any exception) or past ``timeout`` (TimeoutError), its whole
    process group is stopped (SIGTERM, SIGKILL after ``stop_grace`` seconds) and waited for
    before this returns: nothing of it still runs when the caller cleans up after it.
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    assert proc.stdout is not None
    reader = threading.Thread(
        target=_copy_lines, args=(proc.stdout, output, on_line), name="step-output", daemon=True
    )
    reader.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired as exc:
        stop_group(proc, stop_grace)
        raise TimeoutError(f"{argv[0]} still running after {timeout:.0f}s; stopped") from exc
    except BaseException:
        stop_group(proc, stop_grace)
        raise
    finally:
        reader.join(stop_grace)
    return proc.returncode


def _copy_lines(stream: TextIO, output: TextIO, on_line: Callable[[str], None]) -> None:
    for line in stream:
        output.write(line)
        on_line(line)


def stop_group(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM to ``proc``'s process group (its session's leader), SIGKILL after ``grace``
    seconds; waits until ``proc`` has exited."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
