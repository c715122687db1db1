"""Sleep requests whose refusal reaches the verdict in the refuser's own words.

``InGuestCommand`` detaches its command, so a command that is refused (systemd: "Call to
Hibernate failed: Not enough swap space for hibernation"; the kernel: "write error: No space
left on device") is seen only as a guest that never went to sleep. ``ReportedCommand`` runs
the same command detached, and when it exits non-zero the guest writes what it said, its exit
status and the free swap to the kernel log (``/dev/kmsg``), which the console carries to the
host while the guest stays up. The host ends the wait for entry on that line: UNSUPPORTED
where systemd says the state is not available, FAIL with the kernel's own lines otherwise.
``RefusalNamed`` wraps an entry so that a refusal that comes just after the kernel has said
it is back ("hibernation exit") is still named, rather than "slept and resumed".
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import threading
import time
from dataclasses import dataclass, replace

from harness.errors import GuestFault, HarnessError, StateUnsupported
from harness.machines.protocol import Machine
from harness.transitions.catalogue import DISK_PLATFORM, S4_SYSTEMCTL
from harness.transitions.entries import ExplainedEntry
from harness.transitions.marks import Marks
from harness.transitions.parts import Transition
from harness.transitions.requests import InGuestCommand

TAG = "s3s4-request-refused"
TAG_LINE = re.compile(rf"{TAG}: (.*)")
WATCH_SLICE_S = 0.5  # how often the watch for the refusal line looks at its own end
# After the kernel says it is back, the refused command's own line follows within
# milliseconds (the shell runs on as soon as the write returns); seconds under TCG at worst.
REFUSAL_LINE_S = 15.0
# What systemd says when it offers no hibernation (logind's CanHibernate is not "yes").
SYSTEMD_UNAVAILABLE = re.compile(
    r"not supported|Not enough (suitable )?swap|not configured|No swap", re.IGNORECASE
)
# The kernel's lines of a hibernation that went wrong before the power-off.
KERNEL_REFUSAL = re.compile(
    r"PM: .*(Cannot|Not enough|failed|Failed|Error|error)|PM: hibernation: Wrote \d+ kbytes"
)


# The request as the guest runs it; its own words avoid the kernel's PM words ("Swap" ...),
# so that its line is not taken for a step of the kernel's sleep sequence. logind says why it
# refuses a sleep only at debug level, so that level is on while the command runs, and
# logind's lines about swap, resume and hibernation since the start go with the refusal;
# each part bounded for a kernel log line.
REPORTING = """start=$(date +%s)
logind() { busctl set-property org.freedesktop.login1 /org/freedesktop/LogControl1 \\
    org.freedesktop.LogControl1 LogLevel s "$1" 2>/dev/null; }
logind debug
out=$( { @SCRIPT@; } 2>&1 ); rc=$?
logind info
[ $rc -eq 0 ] && exit 0
why=$(journalctl -u systemd-logind --since=@$start -o cat 2>/dev/null |
    grep -iE 'swap|resume|hibernat' | grep -vE 'process message|^Sent message' |
    tail -n 2 | cut -c1-150 | tr '\\n' ' ')
free=$(awk '/^SwapFree:/ {print $2}' /proc/meminfo)
out=$(printf %s "$out" | tr '\\n' ' ' | tail -c 400)
printf '<3>@TAG@: exited %s (free swap %s kB): %s%s\\n' "$rc" "$free" "$out" \\
    "${why:+ [logind: $why]}" > /dev/kmsg
"""


@dataclass(frozen=True, kw_only=True)
class ReportedCommand:
    """A command run in the guest, detached, that reports a refusal on the console."""

    script: str
    label: str = ""

    @property
    def description(self) -> str:
        return (self.label or self.script) + " (in guest)"

    def send(self, machine: Machine) -> concurrent.futures.Future[object]:
        mark = machine.console.mark()
        reporting = REPORTING.replace("@SCRIPT@", self.script).replace("@TAG@", TAG)
        InGuestCommand(script=reporting, label=self.label or self.script).send(machine)
        answer: concurrent.futures.Future[object] = concurrent.futures.Future()
        watch = threading.Thread(
            target=_watch,
            args=(machine, mark, answer, self.description, machine.timeouts.hibernate),
            name=f"refusal-watch-{machine.name}",
            daemon=True,
        )
        watch.start()
        return answer


def _watch(
    machine: Machine,
    mark: int,
    answer: concurrent.futures.Future[object],
    description: str,
    limit: float,
) -> None:
    """Settle ``answer`` with the refusal once the console shows it; give up when the answer
    is cancelled (the sleep was entered) or after ``limit``."""
    deadline = time.monotonic() + limit
    while not answer.cancelled() and time.monotonic() < deadline:
        try:
            line = machine.console.wait_for(TAG_LINE, mark, WATCH_SLICE_S)
        except (HarnessError, OSError):
            return  # the console is gone with its machine: nothing left to watch
        if line is not None:
            unavailable, said = refusal(line, machine.console.lines_since(mark), description)
            # A plain HarnessError: the wait for entry makes it the request's FAIL.
            error = StateUnsupported(said) if unavailable else HarnessError(said)
            with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled since
                answer.set_exception(error)
            return


def refusal(line: str, console: list[str], description: str) -> tuple[bool, str]:
    """(whether the state is unavailable, the verdict's reason) for the refusal ``line``:
    unavailable in systemd's words where it offers no such state, else a failure with the
    kernel's lines of the attempt."""
    found = TAG_LINE.search(line)
    said = found.group(1).strip() if found else line.strip()
    if SYSTEMD_UNAVAILABLE.search(said):
        return True, f"{description} refused: {said}"
    kernel = [ln.strip() for ln in console if KERNEL_REFUSAL.search(ln) and TAG not in ln]
    words = f"; the kernel: {' | '.join(kernel[-3:])}" if kernel else ""
    return False, f"{description} refused: {said}{words}"


@dataclass(frozen=True, kw_only=True)
class RefusalNamed(ExplainedEntry):
    """``inner``'s wait; where it ends on a guest that says it came back without sleeping,
    the request's refusal line (when one follows) names the cause instead."""

    def cause(self, machine: Machine, marks: Marks, description: str) -> HarnessError | None:
        line = machine.console.wait_for(TAG_LINE, marks.console, REFUSAL_LINE_S)
        if line is None:
            return None
        console = machine.console.lines_since(marks.console)
        unavailable, said = refusal(line, console, description)
        return StateUnsupported(said) if unavailable else GuestFault("request", said)


def reported(transition: Transition, suffix: str = "reported") -> Transition:
    """``transition`` with its in-guest request reporting a refusal (see ReportedCommand)."""
    request = transition.request
    if not isinstance(request, InGuestCommand):
        raise TypeError(f"{transition.id}: only an in-guest command can report its refusal")
    return replace(
        transition,
        id=f"{transition.id}-{suffix}",
        request=ReportedCommand(script=request.script, label=request.label),
        entry=RefusalNamed(inner=transition.entry),
    )


S4_SYSTEMCTL_REPORTED = reported(S4_SYSTEMCTL)
# The kernel's refusal is the errno of the write to /sys/power/state; coreutils' echo names
# it ("No space left on device"), where dash's builtin says "I/O error" whatever it was.
S4_SYSFS_REPORTED = reported(
    replace(
        DISK_PLATFORM,
        id="s4-sysfs",
        request=InGuestCommand(
            script="echo platform > /sys/power/disk && /bin/echo disk > /sys/power/state",
            label="echo disk > /sys/power/state",
        ),
    )
)
