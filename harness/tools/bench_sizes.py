"""The benchmark's sizes: S4 against the guest's memory, S3 and S4 against its vCPUs, and what
a sleeping guest costs its host. Each size is a session of its own (its QEMU started with that
memory or those vCPUs), its guest cold booted and settled as the ready checkpoint's is."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.checks.probes import WARM_UP
from harness.checks.verdict import CycleOutcome, Verdict
from harness.cycle.run import run_cycle
from harness.errors import HarnessError
from harness.machines.qemu.machine import QemuMachine
from harness.ready_checkpoints import SETTLE_SECONDS
from harness.session import HarnessSession, Settings
from harness.setup.image import Progress
from harness.tools import bench_s4, bench_sleep_cost
from harness.tools.bench import guest_s4_seconds, guest_sleep_seconds
from harness.transitions.catalogue import S3_AGENT, S4_AGENT
from harness.transitions.marks import Marks
from harness.transitions.parts import Transition

FILL_SHARE = 0.125  # of the guest's memory, held in tmpfs: below the kernel's default
# image_size (2/5 of RAM) with the idle guest's own pages, so nothing is swapped out to fit


@dataclass(frozen=True)
class CpuRow:
    """One S3 and one S4 cycle at one vCPU count (seconds; None: not in the records)."""

    cpus: int
    s3_cycle_s: float
    s3_guest_s: float | None  # the kernel's suspend entry -> exit
    s4_cycle_s: float
    s4_guest_s: float | None  # the three kernels' own spans and the firmware, summed


@dataclass
class SizesReport:
    started: str
    cell: str = ""
    memory: list[dict[str, Any]] = field(default_factory=list)
    disk: dict[str, Any] | None = None
    cpus: list[dict[str, Any]] = field(default_factory=list)
    sleep_cost: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


def parse_sizes(text: str, what: str, allowed: range) -> list[int]:
    """``1,4,8`` -> [1, 4, 8], sorted; a bad list is a one-line error naming the fix."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        sizes = []
    if not sizes or any(n not in allowed for n in sizes):
        raise HarnessError(
            f"--{what} {text!r}: give whole numbers from {allowed.start} to {allowed.stop - 1}, "
            f"comma separated (e.g. --{what} 1,4,8)"
        )
    return sizes


def _session(settings: Settings, evidence: Path, progress: Progress) -> HarnessSession:
    """A session that takes no ready checkpoint: each size's guest is booted once, for its
    own cycles, so a checkpoint would cost a boot and save none."""
    return HarnessSession(replace(settings, cold_boot=True), evidence, progress)


def _ready_guest(session: HarnessSession, label: str) -> QemuMachine:
    """A guest cold booted, settled and warmed up as the ready checkpoint's is."""
    machine = session.fresh_qemu_guest(label)
    machine.boot()
    settled = machine.run(f"timeout {SETTLE_SECONDS} systemctl is-system-running --wait\n{WARM_UP}")
    if not settled.ok:
        raise HarnessError(f"{label}: the guest did not settle: {settled.stderr.strip()}")
    return machine


def _passed(
    machine: QemuMachine, transition: Transition, label: str
) -> tuple[CycleOutcome, list[str]]:
    marks = Marks.now(machine)
    outcome = run_cycle(machine, transition)
    if outcome.verdict is not Verdict.PASS:
        raise HarnessError(f"{label}: {transition.id} did not pass: {outcome.reason}")
    return outcome, machine.console.lines_since(marks.console)


def memory_rows(
    settings: Settings,
    gib: int,
    fill_share: float,
    runs: int,
    evidence: Path,
    progress: Progress,
    disk_probe: Callable[[QemuMachine, int], dict[str, Any]] | None = None,
) -> tuple[str, list[bench_s4.ScalingRow], dict[str, Any] | None]:
    """``runs`` S4 cycles of a guest with ``gib`` GiB, its memory filled first; with
    ``disk_probe``, the host disk measured where its swap image lives, as large as its image."""
    session = _session(replace(settings, memory_mib=gib * 1024), evidence, progress)
    rows = []
    disk = None
    try:
        machine = _ready_guest(session, f"s4-{gib}g")
        fill_mib = int(gib * 1024 * fill_share)
        if fill_mib:
            progress(f"{gib} GiB: filling {fill_mib} MiB of the guest's memory")
            filled = machine.run(bench_s4.fill_command(fill_mib))
            if not filled.ok:
                raise HarnessError(f"{gib} GiB: the fill failed: {filled.stderr.strip()}")
        for n in range(1, runs + 1):
            progress(f"{gib} GiB: S4 cycle {n}/{runs}")
            outcome, lines = _passed(machine, S4_AGENT, f"{gib} GiB")
            transfer = bench_s4.image_transfer(lines)
            if transfer is None:
                raise HarnessError(f"{gib} GiB: the kernel printed no Wrote/Read records")
            t = outcome.evidence.timings
            rows.append(
                bench_s4.ScalingRow(
                    gib,
                    fill_mib,
                    transfer,
                    t["cycle_total"],
                    t.get("checks_before", 0.0) + t.get("checks_after", 0.0),
                    _s4_guest_seconds(lines, t),
                )
            )
        if disk_probe is not None:
            largest = max(row.transfer.written_kb for row in rows) * 1024
            disk = disk_probe(machine, largest)
        return session.cell.id, rows, disk
    finally:
        session.close()


def _s4_guest_seconds(lines: Sequence[str], timings: dict[str, float]) -> float | None:
    """The guest's own S4 work: its kernels' spans and the firmware before the resume kernel."""
    own = guest_s4_seconds(lines)
    if own is None or "relaunch_to_kernel" not in timings:
        return None
    return sum(own.values()) + timings["relaunch_to_kernel"]


def _disk_probe(machine: QemuMachine, size_bytes: int) -> dict[str, Any]:
    return asdict(bench_s4.host_disk_throughput(machine.paths.swap_disk.parent, size_bytes))


def cpu_row(
    settings: Settings, cpus: int, evidence: Path, progress: Progress
) -> tuple[str, CpuRow]:
    session = _session(replace(settings, cpus=cpus), evidence, progress)
    try:
        machine = _ready_guest(session, f"cpus-{cpus}")
        progress(f"{cpus} vCPUs: S3 cycle")
        s3, s3_lines = _passed(machine, S3_AGENT, f"{cpus} vCPUs")
        progress(f"{cpus} vCPUs: S4 cycle")
        s4, s4_lines = _passed(machine, S4_AGENT, f"{cpus} vCPUs")
        return session.cell.id, CpuRow(
            cpus,
            s3.evidence.timings["cycle_total"],
            guest_sleep_seconds(s3_lines),
            s4.evidence.timings["cycle_total"],
            _s4_guest_seconds(s4_lines, s4.evidence.timings),
        )
    finally:
        session.close()


def sleep_cost(
    settings: Settings, window_s: float, evidence: Path, progress: Progress
) -> tuple[str, list[bench_sleep_cost.StateCost]]:
    session = _session(settings, evidence, progress)
    try:
        machine = _ready_guest(session, "sleep-cost")
        pid = bench_sleep_cost.qemu_pid(machine.paths.qmp_socket)
        return session.cell.id, bench_sleep_cost.sleep_costs(machine, pid, window_s, progress)
    finally:
        session.close()


@dataclass(frozen=True)
class SizesPlan:
    memory_gib: Sequence[int] = ()
    cpus: Sequence[int] = ()
    sleep_window_s: float | None = None  # None: no sleep-cost part
    fill_share: float = FILL_SHARE
    runs: int = 1


def run_sizes(plan: SizesPlan, settings: Settings, out_dir: Path, progress: Progress) -> Path:
    """Every part of ``plan``; the JSON's path (``sizes.json`` in ``out_dir``)."""
    started = time.monotonic()
    report = SizesReport(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    evidence = out_dir / "guests"
    for gib in plan.memory_gib:
        probe = _disk_probe if gib == max(plan.memory_gib) else None
        cell, rows, disk = memory_rows(
            settings, gib, plan.fill_share, plan.runs, evidence, progress, probe
        )
        report.cell = cell
        report.memory += [row.as_json() for row in rows]
        report.disk = disk or report.disk
    for cpus in plan.cpus:
        cell, row = cpu_row(settings, cpus, evidence, progress)
        report.cell = report.cell or cell
        report.cpus.append(asdict(row))
    if plan.sleep_window_s is not None:
        cell, costs = sleep_cost(settings, plan.sleep_window_s, evidence, progress)
        report.cell = report.cell or cell
        report.sleep_cost = [c.as_json() for c in costs]
    report.wall_s = round(time.monotonic() - started, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "sizes.json"
    path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return path


def cpu_table(rows: Sequence[dict[str, Any]], write: Callable[[str], None] = print) -> None:
    write(f"{'vCPUs':>5} {'S3 cycle':>9} {'S3 guest':>9} {'S4 cycle':>9} {'S4 guest':>9}")
    for row in rows:
        write(
            f"{row['cpus']:>5} {row['s3_cycle_s']:>8.1f}s {_seconds(row['s3_guest_s'])} "
            f"{row['s4_cycle_s']:>8.1f}s {_seconds(row['s4_guest_s'])}"
        )


def _seconds(value: float | None) -> str:
    return f"{value:>8.1f}s" if value is not None else f"{'-':>9}"


def print_report(payload: dict[str, Any], write: Callable[[str], None] = print) -> None:
    """The tables of a ``sizes.json``: S4 against memory, cycles against vCPUs, sleep cost."""
    write(f"sizes on {payload['cell'] or 'the default cell'}, {payload['started']}")
    if payload["memory"]:
        write("S4 against the guest's memory (MB = 1000 KiB, the kernel's unit)")
        rows = [_scaling_row(row) for row in payload["memory"]]
        disk = payload["disk"]
        bench_s4.scaling_table(rows, bench_s4.DiskThroughput(**disk) if disk else None, write)
    if payload["cpus"]:
        write("S3 and S4 against the guest's vCPUs")
        cpu_table(payload["cpus"], write)
    if payload["sleep_cost"]:
        write("what a sleeping guest costs its host (QEMU's process)")
        bench_sleep_cost.cost_table(
            [bench_sleep_cost.StateCost(**c) for c in payload["sleep_cost"]], write
        )
    write(f"wall time {payload['wall_s']:.0f} s")


def _scaling_row(row: dict[str, Any]) -> bench_s4.ScalingRow:
    return bench_s4.ScalingRow(
        row["memory_gib"],
        row["fill_mib"],
        bench_s4.ImageTransfer(**row["transfer"]),
        row["cycle_s"],
        row["checks_s"],
        row.get("guest_s"),
    )
