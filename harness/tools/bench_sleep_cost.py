"""What a sleeping guest costs its host (the virtual counterpart of fwts' s3power): QEMU's CPU
time and its threads' wakeups per second over a fixed measurement window while the guest is in
S3, s2idle and freeze, against the same guest idling awake.

The window opens only once the state is proven (QEMU's ``SUSPEND`` for S3, the kernel's
``PM: suspend-to-idle`` for s2idle and freeze) and the guest is woken after it closes. CPU is
QEMU's utime+stime from ``/proc/<pid>/stat``; wakeups are its threads' voluntary and
involuntary context switches from ``/proc/<pid>/task/*/status`` (each a time a thread ran
again after it had stopped).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.machines.protocol import Machine
from harness.transitions.catalogue import FREEZE, S2IDLE, S3_AGENT
from harness.transitions.marks import Marks
from harness.transitions.parts import Transition

PROC = Path("/proc")
WINDOW_S = 20.0  # long enough that a guest's periodic timers (1-10 s) show several times
STATES: tuple[tuple[str, Transition | None], ...] = (
    ("awake, idle", None),
    ("S3", S3_AGENT),
    ("s2idle", S2IDLE),
    ("freeze", FREEZE),
)


@dataclass(frozen=True)
class Counters:
    """One look at a process: its CPU seconds and each thread's context switches."""

    at: float
    cpu_s: float
    switches: dict[int, int]


@dataclass(frozen=True)
class StateCost:
    state: str
    window_s: float
    cpu_percent: float  # of one host CPU
    wakeups_per_s: float
    threads: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def cpu_seconds(stat: str, ticks_per_s: int) -> float:
    """utime + stime of a ``/proc/<pid>/stat`` line (fields 14 and 15; the command name, in
    parentheses, may hold spaces, so the fields are counted after its closing one)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_s


def context_switches(status: str) -> int:
    """voluntary + nonvoluntary context switches of a ``/proc/<pid>/task/<tid>/status``."""
    total = 0
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            total += int(value)
    return total


def read_counters(
    pid: int, proc: Path = PROC, clock: Callable[[], float] = time.monotonic
) -> Counters:
    """The process's counters now; threads that end while they are read are left out."""
    base = proc / str(pid)
    try:
        cpu = cpu_seconds((base / "stat").read_text(), os.sysconf("SC_CLK_TCK"))
    except OSError as exc:
        raise HarnessError(f"QEMU (pid {pid}) is gone: {exc}") from exc
    switches = {}
    for task in (base / "task").iterdir():
        try:
            switches[int(task.name)] = context_switches((task / "status").read_text())
        except OSError:
            continue
    return Counters(clock(), cpu, switches)


def cost(state: str, before: Counters, after: Counters) -> StateCost:
    """The window's CPU share and wakeups per second. A thread born in the window counts all
    of its switches; one that ended in it counts none (its last ones are lost with it)."""
    window = after.at - before.at
    wakeups = sum(n - before.switches.get(tid, 0) for tid, n in after.switches.items())
    return StateCost(
        state,
        round(window, 2),
        100 * (after.cpu_s - before.cpu_s) / window,
        max(0, wakeups) / window,
        len(after.switches),
    )


def qemu_pid(qmp_socket: Path, proc: Path = PROC) -> int:
    """The QEMU process whose command line names this machine's QMP socket (unique to it)."""
    needle = str(qmp_socket).encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in argv and b"qemu" in argv.split(b"\0", 1)[0]:
            return int(entry.name)
    raise HarnessError(f"no QEMU process names {qmp_socket}: is the guest running?")


def measure(
    pid: int, state: str, window_s: float, wait: Callable[[float], object] = time.sleep
) -> StateCost:
    """One measurement window on ``pid`` (a fixed span to count over, not a wait for an
    event: the state is proven before it opens)."""
    before = read_counters(pid)
    wait(window_s)
    return cost(state, before, read_counters(pid))


def sleep_costs(
    machine: Machine, pid: int, window_s: float, progress: Callable[[str], None]
) -> list[StateCost]:
    """Each state in turn on one ready guest: entered, proven, measured, woken."""
    costs = []
    for state, transition in STATES:
        progress(f"host cost: {state}, {window_s:.0f} s window")
        if transition is None:
            costs.append(measure(pid, state, window_s))
            continue
        marks = Marks.now(machine)
        answer = transition.request.send(machine)
        transition.entry.wait(machine, marks, answer, transition.request.description)
        if answer is not None:
            answer.cancel()
        costs.append(measure(pid, state, window_s))
        transition.wake.perform(machine, marks, {})
    return costs


def cost_table(costs: Sequence[StateCost], write: Callable[[str], None] = print) -> None:
    """CPU % and wakeups/s per state, and each against the awake guest's."""
    write(f"{'state':<12} {'window':>7} {'QEMU CPU':>9} {'wakeups/s':>10} {'vs awake CPU':>13}")
    awake = next((c for c in costs if c.state.startswith("awake")), None)
    for c in costs:
        share = (
            f"{c.cpu_percent / awake.cpu_percent:12.2f}x"
            if awake is not None and awake.cpu_percent > 0
            else f"{'-':>13}"
        )
        write(
            f"{c.state:<12} {c.window_s:>6.1f}s {c.cpu_percent:>8.1f}% "
            f"{c.wakeups_per_s:>10.0f} {share}"
        )
