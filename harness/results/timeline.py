"""A cycle's course on one time axis, from what its record in results.json holds: the host's
stages (checks, request, wake, checks again), the platform's events, the guest kernel's sleep
and resume (its own clock, placed against the platform's events), the guest's agent and ssh,
and the slowest device callbacks. Seconds from the request; nothing here draws."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from harness.results.device_times import KEY_PREFIX, cycle_device_times

LANES = ("host", "platform", "kernel", "guest")
SLOWEST_DEVICES = 6
KERNEL_LINE = re.compile(r"\[\s*(\d+\.\d+)\]\s*(.*)")
# Where the kernel's resume begins in its console lines (after a hibernation image is loaded
# the clock starts again from 0: that reset is the first mark).
RESUME_STARTS = (r"Low-level resume complete", r"Waking up from system sleep state S3",
                 r"Restarting tasks")  # fmt: skip
FROZEN = r"Freezing remaining freezable tasks completed"
IMAGE_READ = r"Image loading done|hibernation: Read \d+ kbytes"
# The platform's signs that a guest went down (harness.machines.protocol.Signal's values).
ENTRY_SIGNALS = ("suspended", "hibernated", "saved", "shutdown", "powered-off")


@dataclass(frozen=True)
class Span:
    lane: str
    label: str
    start: float
    end: float
    kind: str  # what it is, for its colour: checks, request, wake, freeze, sleep, resume ...


@dataclass(frozen=True)
class Mark:
    lane: str
    label: str
    at: float


@dataclass
class Timeline:
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    devices: list[tuple[str, float]] = field(default_factory=list)  # slowest first, seconds
    failed_checks: list[str] = field(default_factory=list)

    @property
    def start(self) -> float:
        return min([0.0] + [s.start for s in self.spans] + [m.at for m in self.marks])

    @property
    def end(self) -> float:
        return max([0.0] + [s.end for s in self.spans] + [m.at for m in self.marks])


def cycle_timeline(cycle: dict[str, Any]) -> Timeline:
    """The timeline of one cycle as results.json records it."""
    evidence = cycle.get("evidence") or {}
    timings: dict[str, float] = evidence.get("timings") or {}
    line = Timeline(
        devices=sorted(
            ((k.removeprefix(KEY_PREFIX), v) for k, v in cycle_device_times(cycle).items()),
            key=lambda kv: -kv[1],
        )[:SLOWEST_DEVICES],
        failed_checks=[c["name"] for c in cycle.get("checks", []) if not c.get("passed", True)],
    )
    wake = _host_stages(line, timings)
    events = _event_offsets(evidence, timings)
    for name, at, _ in events:
        line.marks.append(Mark("platform", name, at))
    woken = next((at for _, at, signals in events if "woken" in signals), wake)
    kernel = evidence.get("kernel_messages") or []
    _kernel(line, kernel, timings.get("request_to_entry"), (wake, woken), timings)
    return line


def _host_stages(line: Timeline, timings: dict[str, float]) -> float | None:
    """The host's stages in order; returns when the wake began (None: the cycle never woke)."""
    spans = line.spans
    if "checks_before" in timings:
        spans.append(Span("host", "checks before", -timings["checks_before"], 0.0, "checks"))
    if "request_to_entry" in timings:
        entered = timings["request_to_entry"]
        spans.append(Span("host", "request → entry", 0.0, entered, "request"))
        wake = entered
    elif "request_to_verdict" in timings:
        spans.append(Span("host", "request → failed", 0.0, timings["request_to_verdict"], "failed"))
        return None
    else:
        wake = 0.0  # a re-wake: no request, the wake is the origin
    if "wake_to_ready" not in timings:
        return wake
    ready = wake + timings["wake_to_ready"]
    spans.append(Span("host", "wake → ready", wake, ready, "wake"))
    if "resume_ssh" in timings:
        waited = ready - timings["resume_ssh"]
        agent = waited + timings.get("resume_agent", 0.0)
        spans.append(Span("guest", "agent", waited, agent, "agent"))
        spans.append(Span("guest", "ssh", agent, ready, "ssh"))
    if "checks_after" in timings:
        kind = "failed" if line.failed_checks else "checks"
        spans.append(Span("host", "checks after", ready, ready + timings["checks_after"], kind))
    return wake


def _event_offsets(
    evidence: dict[str, Any], timings: dict[str, float]
) -> list[tuple[str, float, list[str]]]:
    """Each platform event's seconds from the request. Without the request's own time (a run
    older than ``request_at``), the entry's event is placed where the entry wait ended."""
    events = evidence.get("events") or []
    origin = float(evidence.get("request_at") or 0.0)
    if not origin:
        entry = next((e for e in events if set(e.get("signals", [])) & set(ENTRY_SIGNALS)), None)
        if entry is None or "request_to_entry" not in timings:
            return []
        origin = float(entry["received"]) - timings["request_to_entry"]
    return [
        (e["event"], float(e["received"]) - origin, e.get("signals", []))
        for e in events
        if e.get("received")
    ]


def _kernel(
    line: Timeline,
    messages: list[str],
    entered: float | None,
    wake: tuple[float | None, float | None],
    timings: dict[str, float],
) -> None:
    """The kernel's sleep (its lines up to the sleep, ending at the entry) and its resume (its
    lines after, beginning at the platform's wake-up; an S4 resume kernel's clock counts from
    its start, ``relaunch_to_kernel`` after the host relaunched the machine)."""
    launched, woken = wake
    stamped = [(float(m[1]), m[2]) for m in map(KERNEL_LINE.search, messages) if m]
    if not stamped:
        return
    split = _resume_index(stamped)
    asleep, awake = stamped[:split], stamped[split:]
    if asleep and entered is not None:
        shift = entered - asleep[-1][0]
        frozen = _first(asleep, FROZEN)
        first = asleep[0][0]
        if frozen is not None:
            line.spans.append(Span("kernel", "freeze", first + shift, frozen + shift, "freeze"))
            first = frozen
        label = "image, write" if any("Image saving" in t for _, t in asleep) else "suspend"
        line.spans.append(Span("kernel", label, first + shift, asleep[-1][0] + shift, "sleep"))
    if awake and woken is not None:
        rebooted = bool(asleep) and awake[0][0] < asleep[-1][0]
        if rebooted and launched is not None and "relaunch_to_kernel" in timings:
            shift = launched + timings["relaunch_to_kernel"]  # the resume kernel's time 0
        else:
            shift = woken - awake[0][0]
        start = (awake[0][0] if not rebooted else 0.0) + shift
        read = [n for n, (_, t) in enumerate(awake) if re.search(IMAGE_READ, t)]
        loaded = read[-1] if read else None
        if loaded is not None:
            # The image's kernel goes on with the clock it had when the image was made.
            end = awake[loaded][0] + shift
            line.spans.append(Span("kernel", "boot, load image", start, end, "boot"))
            awake, start = awake[loaded + 1 :] or awake[loaded:], end
        line.spans.append(
            Span("kernel", "resume", start, start + awake[-1][0] - awake[0][0], "resume")
        )


def _resume_index(stamped: list[tuple[float, str]]) -> int:
    for n in range(1, len(stamped)):
        if stamped[n][0] < stamped[n - 1][0]:
            return n  # a new kernel's clock: the hibernation image's loader
    for pattern in RESUME_STARTS:
        found = next((n for n, (_, t) in enumerate(stamped) if re.search(pattern, t)), None)
        if found is not None:
            return found
    return len(stamped)


def _first(stamped: list[tuple[float, str]], pattern: str) -> float | None:
    return next((s for s, t in stamped if re.search(pattern, t)), None)
