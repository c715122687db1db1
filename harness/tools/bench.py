"""Benchmark: what the harness costs against what the guest itself spends.

Runs on the default cell, outside pytest, and prints medians (with min and max) of: cold boot
and checkpoint start to a ready guest; S3, S4 and hybrid cycles split by stage; the guest's own
suspend/resume times read from its kernel log timestamps; and the ratio of the two.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.verdict import Verdict
from harness.cycle.run import run_cycle
from harness.errors import HarnessError
from harness.machines.events import RecordedEvent
from harness.machines.protocol import Machine, PlatformRecords
from harness.machines.qemu.machine import QemuMachine
from harness.session import HarnessSession, Settings
from harness.setup.image import Progress
from harness.transitions.catalogue import HYBRID_AGENT_WAKE, S3_AGENT, S4_AGENT
from harness.transitions.marks import Marks
from harness.transitions.parts import Transition

CYCLES = ((S3_AGENT, "S3"), (S4_AGENT, "S4"), (HYBRID_AGENT_WAKE, "hybrid"))
CLOCK_JUMP_S = 1.0
SUSPEND_WORDS = ("suspend entry", "suspend exit")
STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")


@dataclass
class Figures:
    """Samples (seconds) per named measure, in the order first seen."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float | None) -> None:
        if value is not None:
            self.samples.setdefault(name, []).append(value)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "runs": len(values),
            }
            for name, values in self.samples.items()
        }


def stamped(lines: Sequence[str]) -> list[tuple[float, str]]:
    """(kernel timestamp, text) of every console line that carries a printk timestamp."""
    found = []
    for line in lines:
        match = STAMP.match(line.strip().split("login: ", 1)[-1])
        if match:
            found.append((float(match.group(1)), match.group(2)))
    return found


def _first(lines: list[tuple[float, str]], text: str, start: int = 0) -> int | None:
    for index in range(start, len(lines)):
        if text in lines[index][1]:
            return index
    return None


def guest_sleep_seconds(lines: Sequence[str], hybrid: bool = False) -> float | None:
    """``PM: suspend entry`` to ``PM: suspend exit`` (hybrid: hibernation entry to exit, the
    image written and then S3): the kernel clock stands still while the guest sleeps in RAM,
    so this is the guest's own work of going down and coming back."""
    marks = stamped(lines)
    words = (
        ("hibernation entry", "hibernation exit") if hybrid else ("suspend entry", "suspend exit")
    )
    entry, leave = _first(marks, words[0]), _first(marks, words[1])
    if entry is None or leave is None:
        return None
    return marks[leave][0] - marks[entry][0]


def guest_s4_seconds(lines: Sequence[str]) -> dict[str, float] | None:
    """Three clocks follow each other on the console: the hibernating kernel (entry until it
    powers off), the resume kernel (boots from 0 and loads the image) and the restored kernel
    (resumes at the time of its snapshot until ``hibernation exit``). Each span is measured on
    its own clock. The resume kernel's clock starts again from 0; the restored kernel's shows
    as a jump (either way) of more than a second after the few lines that end the load."""
    marks = stamped(lines)
    entry = _first(marks, "hibernation entry")
    loaded = _first(marks, "Image loading done", (entry or 0) + 1)
    leave = _first(marks, "hibernation exit", (loaded or 0) + 1)
    if entry is None or loaded is None or leave is None:
        return None
    booted = _next_clock(marks, entry, loaded, backwards_only=True)
    restored = _next_clock(marks, loaded, leave)
    if booted is None or restored is None:
        return None
    return {
        "write": marks[booted - 1][0] - marks[entry][0],
        "load": marks[restored - 1][0],
        "resume": marks[leave][0] - marks[restored][0],
    }


def _next_clock(
    marks: list[tuple[float, str]], start: int, end: int, backwards_only: bool = False
) -> int | None:
    for index in range(start + 1, end + 1):
        step = marks[index][0] - marks[index - 1][0]
        if step < 0 or (not backwards_only and step > CLOCK_JUMP_S):
            return index
    return None


# The steps of the checks after the wake besides the facts script (whose last part, the
# closing look, is a probe of its own in the split), in their order; all but the clock's
# resync run beside the facts script.
AFTER_WAKE_STEPS = (
    ("agent_clock", "clock read and set through the agent"),
    ("agent_net", "network facts through the agent (beside the facts script)"),
    ("echo", "the TCP echo"),
    ("transfers", "1 MiB each way (beside the facts script)"),
    ("stream_tail", "the stream's tail (after the transfers)"),
)


# The parts of that split that are the guest's own work (the rest is the harness's ssh check).
GUEST_PARTS = (
    "user space down",
    "kernel down",
    "firmware and kernel up",
    "user space up to the agent",
)


def s3_host_clock_split(
    console: Sequence[tuple[float, str]],
    events: Sequence[RecordedEvent],
    timings: dict[str, float],
) -> dict[str, float] | None:
    """An S3 cycle's waits split on the host's clock by when the guest kernel's console lines
    and QEMU's events arrived: the guest's user space on the way down (request until the
    kernel's ``suspend entry``), the kernel's way down (until ``SUSPEND``), firmware and
    kernel coming back (``WAKEUP`` until ``suspend exit``) and user space coming back (until
    the agent answers); the kernel's own clock counts neither user space part."""
    entry = next((t for t, line in console if "PM: suspend entry" in line), None)
    leave = next((t for t, line in console if "PM: suspend exit" in line), None)
    slept = next((e.received for e in events if e.name == "SUSPEND"), None)
    woke = next((e.received for e in events if e.name == "WAKEUP"), None)
    needed = ("request_to_entry", "resume_agent", "resume_ssh")
    if None in (entry, leave, slept, woke) or any(k not in timings for k in needed):
        return None
    assert entry is not None and leave is not None and slept is not None and woke is not None
    down, up = slept - entry, leave - woke
    return {
        "user space down": timings["request_to_entry"] - down,
        "kernel down": down,
        "firmware and kernel up": up,
        "user space up to the agent": timings["resume_agent"] - up,
        "agent to ssh": timings["resume_ssh"] - timings["resume_agent"],
    }


def _cycle(machine: Machine, transition: Transition, figures: Figures, label: str) -> None:
    marks = Marks.now(machine)
    outcome = run_cycle(machine, transition)
    if outcome.verdict is not Verdict.PASS:
        raise HarnessError(f"{label} cycle did not pass: {outcome.reason}")
    t = outcome.evidence.timings
    lines = machine.console.lines_since(marks.console)
    checks = t.get("checks_before", 0.0) + t.get("checks_after", 0.0)
    harness = t["cycle_total"]
    figures.add(f"{label}: checks before, all", t.get("checks_before"))
    figures.add(f"{label}:   of which the facts script before", t.get("capture_before"))
    figures.add(f"{label}: request -> entry event", t.get("request_to_entry"))
    figures.add(f"{label}: wake -> agent", t.get("resume_agent"))
    figures.add(f"{label}: wake -> ssh", t.get("resume_ssh"))
    figures.add(f"{label}: checks after, all", t.get("checks_after"))
    figures.add(f"{label}:   of which the facts script after", t.get("capture_after"))
    for key in sorted(k for k in t if k.startswith("capture_after_")):
        figures.add(f"{label}:     probe {key.removeprefix('capture_after_')}", t[key])
    for key, what in AFTER_WAKE_STEPS:
        figures.add(f"{label}:   of which {what}", t.get(key))
    # The goal's measure: the checks of one cycle, before and after (its own median, not the sum
    # of the two medians above).
    figures.add(f"{label}: checks before and after", checks)
    figures.add(f"{label}: whole cycle, harness", harness)
    if transition.id.startswith("s4"):
        own = guest_s4_seconds(lines)
        if own:
            firmware = t.get("relaunch_to_kernel")
            figures.add(f"{label}: guest writes image", own["write"])
            figures.add(
                f"{label}: relaunch -> kernel's first line (firmware, decompression)", firmware
            )
            figures.add(f"{label}: guest boots and loads image", own["load"])
            figures.add(f"{label}: guest resumes after load", own["resume"])
            total = sum(own.values())
            figures.add(f"{label}: guest own total, kernel clocks", total)
            figures.add(f"{label}: ratio harness / guest, kernel clocks", harness / total)
            if firmware is not None:
                # The kernel's clocks start after the firmware and the decompression: both
                # are the guest's own work too (QEMU's own start is a small part of it).
                figures.add(f"{label}: guest own total, with firmware", total + firmware)
                figures.add(
                    f"{label}: ratio harness / guest, with firmware", harness / (total + firmware)
                )
    else:
        if label == "S3":
            _host_clock_figures(machine, marks, figures, label, t)
        s3 = guest_sleep_seconds(lines, hybrid=transition.id.startswith("hybrid"))
        figures.add(f"{label}: guest own (suspend entry -> exit)", s3)
        if s3:
            figures.add(f"{label}: ratio harness / guest", harness / s3)
            figures.add(f"{label}: ratio without checks", (harness - checks) / s3)


def _host_clock_figures(
    machine: PlatformRecords, marks: Marks, figures: Figures, label: str, t: dict[str, float]
) -> None:
    split = s3_host_clock_split(
        machine.console.seen_since(marks.console), machine.events.since(marks.events), t
    )
    for part, seconds in (split or {}).items():
        figures.add(f"{label}:   host clock: {part}", seconds)
    if split and (wall := sum(v for k, v in split.items() if k in GUEST_PARTS)) > 0:
        figures.add(f"{label}: guest own on the host clock (user space and kernel)", wall)
        waits = t["request_to_entry"] + t["wake_to_ready"]
        figures.add(f"{label}: ratio without checks, host clock", waits / wall)


def run_benchmark(runs: int, settings: Settings, out_dir: Path, progress: Progress) -> Path:
    """Measure everything ``runs`` times on the default cell; write JSON, return its path."""
    figures = Figures()
    session = HarnessSession(settings, out_dir / "guests", progress)
    started = time.time()
    try:
        progress(f"cell {session.cell.id}")
        checkpoint = session.ready_checkpoint()
        figures.add("cold boot -> agent", checkpoint.boot_timings.get("agent"))
        figures.add("cold boot -> ssh", checkpoint.boot_timings.get("ssh"))
        figures.add("checkpoint capture", checkpoint.capture_s)
        for n in range(2, runs + 1):
            progress(f"cold boot {n}/{runs}")
            cold = _fresh(session, f"cold-{n}", cold=True)
            timings = cold.cold_boot()
            figures.add("cold boot -> agent", timings.get("agent"))
            figures.add("cold boot -> ssh", timings.get("ssh"))
            session.discard(cold)
        machine = None
        for n in range(1, runs + 1):
            progress(f"checkpoint start {n}/{runs}")
            if machine is not None:
                session.discard(machine)
            machine = _fresh(session, f"restored-{n}")
            figures.add("checkpoint start -> ssh", machine.boot().get("total"))  # None: fell back
        assert machine is not None
        for transition, label in (
            (S3_AGENT, "S3"),
            (S4_AGENT, "S4"),
            (HYBRID_AGENT_WAKE, "hybrid"),
        ):
            for n in range(1, runs + 1):
                progress(f"{label} cycle {n}/{runs}")
                _cycle(machine, transition, figures, label)
        payload = {
            "cell": session.cell.id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "runs": runs,
            "checkpoint_bytes": checkpoint.size_bytes,
            "figures": figures.summary(),
        }
    finally:
        session.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "benchmark.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def _fresh(session: HarnessSession, label: str, cold: bool = False) -> QemuMachine:
    machine = session.fresh_qemu_guest(label)
    if cold:
        machine.ready_from = None
    return machine


def table(payload: dict[str, Any], write: Callable[[str], None] = print) -> None:
    write(f"benchmark on {payload['cell']}, {payload['runs']} runs, {payload['started']}")
    write(f"{'measure':58} {'median':>8} {'min':>8} {'max':>8}")
    for name, row in payload["figures"].items():
        unit = "x" if "ratio" in name else "s"
        write(
            f"{name:58} {row['median']:7.2f}{unit} {row['min']:7.2f}{unit} {row['max']:7.2f}{unit}"
        )
