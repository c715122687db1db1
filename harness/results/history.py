"""Many runs as one history, per case and cell: the verdict sequence, the last pass, the run a
failing streak began in, the pass rate, flips (flaky when the components did not change), each
stage's latency against its recent spread, and where the components changed.

Input is what runs write (docs/results-schema.md): ``results.json``, ``matrix.json`` (with its
cells' ``results.json`` when they sit beside it, for the timings) and ``endurance.json``, whose
cycles each count as a run. Runs are ordered by when they started.

A row is a case on a *slot*: the cell without its versions (machine, firmware kind, accel,
backend), so that a nightly run on a newer QEMU continues the row and the change of version is
marked where it happened. A run holding two cells of one slot (a matrix of kernels) keeps their
full ids as rows instead.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import SetupError
from harness.results.device_times import cycle_device_times
from harness.results.merge import BAD, case_name, record_verdict

# The stages whose latency is followed (seconds, from each cycle's evidence.timings).
STAGES = (
    "request_to_entry",
    "wake_to_ready",
    "resume_agent",
    "resume_ssh",
    "relaunch_to_kernel",
    "checks_before",
    "checks_after",
    "cycle_total",
)
# A stage is slower when it exceeds the median of its last WINDOW values by more than
# SPREAD_K robust standard deviations (1.4826 MAD); a spread measured on a few close values
# can be near zero, so the margin is at least FLOOR_S and FLOOR_FRACTION of the median.
WINDOW = 10
MIN_BASELINE = 3
SPREAD_K = 3.0
MAD_TO_SIGMA = 1.4826
FLOOR_S = 0.5
FLOOR_FRACTION = 0.10
# Exit statuses of `./run history` for CI gating.
EXIT_OK, EXIT_NEW_FAILURE, EXIT_BAD_INPUT, EXIT_NEW_SLOWDOWN = 0, 1, 2, 3
VERSION_FIELDS = ("kernel", "qemu", "firmware", "libvirt", "guest")
NAMED_PACKAGES = ("qemu-system-x86", "seabios", "ovmf", "libvirt-daemon", "linux-image")
RUN_FILES = ("matrix.json", "results.json", "endurance.json")  # the first found is the run
RUN_ID_TIME = re.compile(r"(\d{8})-(\d{6})")


@dataclass(frozen=True)
class Point:
    """One case on one cell in one run."""

    verdict: str
    reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    run_id: str
    started: str  # ISO 8601, what runs are ordered by
    source: str
    points: dict[tuple[str, str], Point] = field(default_factory=dict)  # (case, slot) -> point
    components: dict[str, dict[str, str]] = field(default_factory=dict)  # slot -> versions


@dataclass(frozen=True)
class Slowdown:
    stage: str
    seconds: float
    median: float
    threshold: float
    baseline: int  # how many earlier values the median is of


@dataclass
class Row:
    """One case on one slot across the runs (``None`` where a run did not have it)."""

    case: str
    cell: str
    points: list[Point | None]
    components: list[dict[str, str] | None]


def slow_threshold(values: list[float]) -> float | None:
    """The time above which a stage counts as slower than ``values`` (its recent history);
    None when there are too few values to know its spread."""
    if len(values) < MIN_BASELINE:
        return None
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    return median + max(SPREAD_K * MAD_TO_SIGMA * mad, FLOOR_S, FLOOR_FRACTION * median)


def slowdowns_at(row: Row, index: int) -> list[Slowdown]:
    """The stages of run ``index`` slower than in the up to WINDOW runs before it."""
    point = row.points[index]
    if point is None:
        return []
    found = []
    for stage, seconds in point.timings.items():
        earlier = [p.timings[stage] for p in row.points[:index] if p and stage in p.timings]
        threshold = slow_threshold(earlier[-WINDOW:])
        if threshold is not None and seconds > threshold:
            median = statistics.median(earlier[-WINDOW:])
            found.append(Slowdown(stage, seconds, median, threshold, len(earlier[-WINDOW:])))
    return found


# -- loading ---------------------------------------------------------------------------------


def load_runs(paths: Iterable[Path]) -> list[Run]:
    """Every run found at ``paths`` (files, run directories, or a folder of runs), by date."""
    runs: list[Run] = []
    for path in paths:
        runs += _runs_at(path)
    if not runs:
        raise SetupError(
            "no runs found: give results.json, matrix.json or endurance.json files, "
            "their directories, or a folder of run directories (e.g. reports/)"
        )
    # One run named twice (its directory and reports/latest, say) counts once.
    unique = {(str(Path(run.source).resolve()), run.run_id): run for run in runs}
    return sorted(unique.values(), key=lambda run: (run.started, run.run_id))


def _runs_at(path: Path) -> list[Run]:
    if not path.exists():
        raise SetupError(f"{path}: no such file or directory")
    if path.is_file():
        return _from_file(path)
    for name in RUN_FILES:
        if (path / name).is_file():
            return _from_file(path / name)
    found: list[Run] = []
    for child in sorted(path.iterdir()):
        if (
            child.is_dir()
            and not child.is_symlink()
            and any((child / n).is_file() for n in RUN_FILES)
        ):
            found += _runs_at(child)
    if not found:
        raise SetupError(f"{path}: holds no results.json, matrix.json or endurance.json")
    return found


def _from_file(file: Path) -> list[Run]:
    try:
        data: dict[str, Any] = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise SetupError(f"{file} is not valid JSON: {exc}") from exc
    if "summary" in data and "cycles" in data:
        return _from_endurance(data, file)
    if "cases" in data and "tests" not in data:
        return [_from_matrix(data, file)]
    if "tests" in data and "cells" in data:
        return [_from_results(data, file)]
    raise SetupError(f"{file} is not a results.json, matrix.json or endurance.json")


def _from_results(data: dict[str, Any], file: Path) -> Run:
    run_id = str(data.get("run_id") or file.parent.name)
    run = Run(run_id, str(data.get("started") or _started_from_id(run_id)), str(file))
    slots = _slots(data.get("cells", []))
    for cell in data.get("cells", []):
        run.components[slots[cell["id"]]] = versions(cell)
    for record in data["tests"]:
        cell_id = record.get("cell")
        if not cell_id:
            continue  # the harness's own tests
        slot = slots.get(cell_id, cell_id)
        cycles = [c for s in record.get("series") or [] for c in s.get("cycles") or []]
        run.points[(case_name(record["test"], cell_id), slot)] = Point(
            record_verdict(record), _reason(record, cycles), stage_medians(cycles)
        )
    return run


def _from_matrix(data: dict[str, Any], file: Path) -> Run:
    """A matrix's verdicts; its cells' own results.json (``cells/*/``), where kept, add the
    timings."""
    run_ids = [str(r) for r in data.get("runs", []) if r]
    started = min((_started_from_id(r) for r in run_ids), default="")
    run = Run(file.parent.name, started, str(file))
    cells = list(data.get("cells", {}).values())
    slots = _slots(cells)
    for cell in cells:
        run.components[slots[cell["id"]]] = versions(cell)
    timings: dict[tuple[str, str], dict[str, float]] = {}  # (case, cell id)
    for results in sorted(file.parent.glob("cells/*/results.json")):
        inner: dict[str, Any] = json.loads(results.read_text())
        for record in inner.get("tests", []):
            if record.get("cell"):
                cycles = [c for s in record.get("series") or [] for c in s.get("cycles") or []]
                key = (case_name(record["test"], record["cell"]), record["cell"])
                timings[key] = stage_medians(cycles)
        started = min([t for t in (started, str(inner.get("started") or "")) if t], default="")
    run.started = started or file.parent.name
    for case, by_cell in data.get("cases", {}).items():
        for cell_id, entry in by_cell.items():
            run.points[(case, slots.get(cell_id, cell_id))] = Point(
                str(entry.get("verdict")),
                str(entry.get("reason") or ""),
                timings.get((case, cell_id), {}),
            )
    return run


def _from_endurance(data: dict[str, Any], file: Path) -> list[Run]:
    """Each cycle of an endurance run as a run of its own: the case is the transition."""
    cells = data.get("cells") or [{"id": data.get("cell") or "unknown"}]
    slots = _slots(cells)
    slot = slots[cells[0]["id"]]
    case = f"endurance::{data['summary']['transition']}"
    runs = []
    for cycle in data["cycles"]:
        run_id = f"{file.parent.name}#{cycle['cycle']}"
        started = str(cycle.get("started") or _started_from_id(file.parent.name))
        run = Run(run_id, started, str(file), components={slot: versions(cells[0])})
        timings = {k: float(v) for k, v in (cycle.get("timings") or {}).items() if k in STAGES}
        timings.update({k: float(v) for k, v in (cycle.get("devices") or {}).items()})
        run.points[(case, slot)] = Point(cycle["verdict"], cycle.get("reason", ""), timings)
        runs.append(run)
    return runs


def _started_from_id(run_id: str) -> str:
    match = RUN_ID_TIME.search(run_id)
    if not match:
        return ""
    day, time_of_day = match.groups()
    return f"{day[:4]}-{day[4:6]}-{day[6:]}T{time_of_day[:2]}:{time_of_day[2:4]}:{time_of_day[4:]}"


def slot_of(cell: dict[str, Any]) -> str:
    """The cell without its versions: ``pc-seabios-tcg``, ``q35-ovmf-tcg-libvirt``."""
    if "machine" not in cell:
        return str(cell["id"])
    firmware = re.match(r"[a-z]+", str(cell.get("firmware", ""))) or None
    parts = [cell["machine"], firmware.group(0) if firmware else "", cell.get("accel", "")]
    if cell.get("backend", "qemu") != "qemu" or cell.get("libvirt"):
        parts.append("libvirt")
    return "-".join(p for p in parts if p)


def _slots(cells: list[dict[str, Any]]) -> dict[str, str]:
    """Cell id -> row name: its slot, or its id where the run has several cells of one slot."""
    by_slot: dict[str, list[str]] = {}
    for cell in cells:
        by_slot.setdefault(slot_of(cell), []).append(cell["id"])
    return {
        cell_id: slot if len(ids) == 1 else cell_id
        for slot, ids in by_slot.items()
        for cell_id in ids
    }


def versions(cell: dict[str, Any]) -> dict[str, str]:
    """What a cell ran: its components' versions and the Debian packages they came from."""
    found = {name: str(cell[name]) for name in VERSION_FIELDS if cell.get(name)}
    for package in cell.get("packages") or []:
        found[f"package {package['name']}"] = str(package["version"])
    return found


def stage_medians(cycles: list[dict[str, Any]]) -> dict[str, float]:
    """Each followed stage's median over a record's cycles, and each device callback's among
    the slowest of a cycle (``device PHASE DRIVER DEVICE``)."""
    values: dict[str, list[float]] = {}
    for cycle in cycles:
        for stage, seconds in (cycle.get("evidence", {}).get("timings") or {}).items():
            if stage in STAGES and isinstance(seconds, int | float):
                values.setdefault(stage, []).append(float(seconds))
        for device, seconds in cycle_device_times(cycle).items():
            values.setdefault(device, []).append(seconds)
    return {stage: round(statistics.median(v), 6) for stage, v in values.items()}


def _reason(record: dict[str, Any], cycles: list[dict[str, Any]]) -> str:
    for cycle in cycles:
        if cycle.get("verdict") not in (None, "PASS") and cycle.get("reason"):
            return str(cycle["reason"])[:300]
    error = str(record.get("error") or "").strip()
    return error.splitlines()[-1][:300] if error else ""


# -- analysis --------------------------------------------------------------------------------


def rows(runs: list[Run]) -> list[Row]:
    keys = sorted({key for run in runs for key in run.points})
    return [
        Row(
            case,
            slot,
            [run.points.get((case, slot)) for run in runs],
            [run.components.get(slot) if (case, slot) in run.points else None for run in runs],
        )
        for case, slot in keys
    ]


def component_changes(row: Row) -> dict[int, list[str]]:
    """Run index -> what changed there since the row's previous run (``qemu 7.2.22 -> 8.2.1``)."""
    changes: dict[int, list[str]] = {}
    previous: dict[str, str] | None = None
    for index, components in enumerate(row.components):
        if components is None:
            continue
        if previous is not None and components != previous:
            changes[index] = _differences(previous, components)
        previous = components
    return changes


def _differences(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The components that changed by name; of the packages, those that name a component
    (a QEMU closure holds a hundred libraries), the others counted."""
    named, others = [], 0
    for name in sorted(set(old) | set(new)):
        if old.get(name) == new.get(name):
            continue
        if name.startswith("package ") and not name.removeprefix("package ").startswith(
            NAMED_PACKAGES
        ):
            others += 1
            continue
        named.append(f"{name} {old.get(name, '-')} -> {new.get(name, '-')}")
    return named + ([f"{others} other package(s)"] if others else [])


def summarise(row: Row, runs: list[Run]) -> dict[str, Any]:
    """The row as CI reads it: status, streaks, flips, slowdowns, component changes."""
    present = [i for i, p in enumerate(row.points) if p is not None]
    verdicts = [row.points[i].verdict for i in present]  # type: ignore[union-attr]
    bad = [v in BAD for v in verdicts]
    changes = component_changes(row)
    flips = [present[n] for n in range(1, len(present)) if bad[n] != bad[n - 1]]
    flaky_flips = [i for i in flips if i not in changes]
    last_pass = next(
        (present[n] for n in reversed(range(len(present))) if verdicts[n] == "PASS"), None
    )
    since = None
    if bad and bad[-1]:
        start = len(bad) - 1
        while start > 0 and bad[start - 1]:
            start -= 1
        since = present[start]
    latest = len(runs) - 1
    slow_now = slowdowns_at(row, latest) if row.points[latest] is not None else []
    before = present[-2] if len(present) > 1 else None
    slow_before = {s.stage for s in slowdowns_at(row, before)} if before is not None else set()
    in_latest = row.points[latest] is not None
    return {
        "case": row.case,
        "cell": row.cell,
        "status": _status(bad, in_latest),
        "verdicts": [p.verdict if p else None for p in row.points],
        "reasons": [p.reason if p else None for p in row.points],
        "pass_rate": round(verdicts.count("PASS") / len(verdicts), 3) if verdicts else 0.0,
        "last_pass": runs[last_pass].run_id if last_pass is not None else None,
        "failing_since": runs[since].run_id if since is not None else None,
        "flips": len(flips),
        "flaky": bool(flaky_flips),
        "flips_without_component_change": len(flaky_flips),
        "component_changes": {runs[i].run_id: lines for i, lines in changes.items()},
        "timings": {
            stage: [p.timings.get(stage) if p else None for p in row.points]
            for stage in [
                *STAGES,
                *sorted({k for p in row.points if p for k in p.timings} - set(STAGES)),
            ]
            if any(p and stage in p.timings for p in row.points)
        },
        "slow": {
            runs[i].run_id: [s.stage for s in slowdowns_at(row, i)]
            for i in present
            if slowdowns_at(row, i)
        },
        "slowdowns": [
            {
                "stage": s.stage,
                "seconds": s.seconds,
                "median": round(s.median, 3),
                "threshold": round(s.threshold, 3),
                "baseline_runs": s.baseline,
                "new": s.stage not in slow_before,
            }
            for s in slow_now
        ],
    }


def _status(bad: list[bool], in_latest: bool) -> str:
    if not in_latest:
        return "missing"
    if bad[-1]:
        return "new-failure" if len(bad) == 1 or not bad[-2] else "failing"
    return "fixed" if len(bad) > 1 and bad[-2] else "passing"


def history(runs: list[Run]) -> dict[str, Any]:
    """The whole history as JSON (what ``--out`` writes as history.json)."""
    summaries = [summarise(row, runs) for row in rows(runs)]
    return {
        "runs": [{"run_id": r.run_id, "started": r.started, "source": r.source} for r in runs],
        "stages": list(STAGES),
        "rule": {
            "window": WINDOW,
            "min_baseline": MIN_BASELINE,
            "spread_k": SPREAD_K,
            "floor_s": FLOOR_S,
            "floor_fraction": FLOOR_FRACTION,
        },
        "rows": summaries,
        "new_failures": [
            f"{r['case']} on {r['cell']}" for r in summaries if r["status"] == "new-failure"
        ],
        "new_slowdowns": [
            f"{r['case']} on {r['cell']}: {s['stage']} {s['seconds']:.2f}s > {s['threshold']:.2f}s"
            for r in summaries
            for s in r["slowdowns"]
            if s["new"]
        ],
    }


def exit_status(result: dict[str, Any]) -> int:
    """1 on a new failure in the latest run, else 3 on a new slowdown in it, else 0."""
    if result["new_failures"]:
        return EXIT_NEW_FAILURE
    if result["new_slowdowns"]:
        return EXIT_NEW_SLOWDOWN
    return EXIT_OK


TEXT_RUNS = 40  # the text's verdict strip shows the latest runs only
LETTER = {"PASS": "P", "FAIL": "F", "ERROR": "E", "XFAIL": "x", "UNSUPPORTED": "u", None: "-"}


def text(result: dict[str, Any]) -> list[str]:
    """The summary for a terminal or a CI log."""
    runs = result["runs"]
    lines = [f"{len(runs)} runs, {runs[0]['started']} .. {runs[-1]['started']}"]
    for row in sorted(result["rows"], key=_worst_first):
        strip = "".join(LETTER.get(v, "?") for v in row["verdicts"][-TEXT_RUNS:])
        line = (
            f"{row['status']:12} {strip}  {row['case']} on {row['cell']}: "
            f"pass rate {row['pass_rate']:.0%}, {row['flips']} flip(s)"
        )
        if row["flaky"]:
            line += " (flaky: flips without a component change)"
        if row["failing_since"]:
            line += f", failing since {row['failing_since']}"
        if row["last_pass"]:
            line += f", last pass {row['last_pass']}"
        lines.append(line)
        for run_id, changes in row["component_changes"].items():
            lines.append(f"{'':13}components changed at {run_id}: {'; '.join(changes)}")
        for slow in row["slowdowns"]:
            lines.append(
                f"{'':13}slower: {slow['stage']} {slow['seconds']:.2f}s, median "
                f"{slow['median']:.2f}s of {slow['baseline_runs']} runs, "
                f"bound {slow['threshold']:.2f}s" + (" (new)" if slow["new"] else "")
            )
    lines.append(
        f"new failures: {len(result['new_failures'])}, "
        f"new slowdowns: {len(result['new_slowdowns'])}"
    )
    return lines


ORDER = ("new-failure", "failing", "fixed", "passing", "missing")


def _worst_first(row: dict[str, Any]) -> tuple[int, bool, str, str]:
    return (ORDER.index(row["status"]), not row["slowdowns"], row["case"], row["cell"])
