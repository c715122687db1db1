"""Run the matrix: one pytest run per cell (each with its own components, image, checkpoint
and report), then one merged matrix of cases by cells.

A cell per process keeps cells apart (a QEMU build, a firmware and a guest kernel per run) and
makes a cell the unit that moves between CI runners (``--shard``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.errors import SetupError
from harness.interrupts import received
from harness.matrix.devices import settings_fields
from harness.matrix.spec import OPTIONAL_AXES, STACK_QEMU, CellSpec
from harness.paths import REPO_ROOT
from harness.results import html as html_report
from harness.results.merge import load_run, merge
from harness.session import HarnessSession, Settings
from harness.setup.image import Progress

ROOT = REPO_ROOT
LOCK_NAME = ".matrix.lock"  # held by the matrix run writing into the folder
# An interrupted cell stops its guests (libvirt domains too) and writes its report in seconds;
# past this it is killed.
CELL_STOP_GRACE_S = 120.0


def settings_for(cell: CellSpec) -> Settings:
    firmware_version = cell.firmware_version
    return Settings(
        accel=cell.accel,
        qemu=Settings.qemu if cell.qemu == STACK_QEMU else cell.qemu,
        machine_type=cell.machine,
        firmware=cell.firmware_kind,
        seabios=firmware_version if cell.firmware_kind == "seabios" else None,
        ovmf=firmware_version if cell.firmware_kind.startswith("ovmf") else None,
        kernel_package=cell.kernel,
        guest_suite=None if cell.guest == OPTIONAL_AXES["guest"] else cell.guest,
        libvirt_stack=cell.libvirt,
        **settings_fields(cell.devices),
    )


def detect_ids(cells: Sequence[CellSpec], progress: Progress) -> dict[CellSpec, str]:
    """Each cell's id as its components report themselves: provisions the components and
    builds the guest image where not cached (the same work its test run would start with)."""
    ids = {}
    for cell in cells:
        progress(f"resolving {cell.label}")
        session = HarnessSession(settings_for(cell), Path(os.devnull), progress)
        try:
            ids[cell] = session.cell.id
        finally:
            session.close()
    return ids


def run_matrix(
    cells: Sequence[CellSpec],
    out: Path,
    pytest_args: Sequence[str],
    progress: Callable[[str], None],
) -> tuple[int, dict[str, Any]]:
    """Every cell's pytest run into ``out/cells/``, then ``out/matrix.json``; the exit status
    is 0 only if every cell's run passed. ``out`` is this run's alone while it runs (see
    ``owned``): the runs of its cells are found as the folders that appear in it."""
    with owned(out):
        return _run_cells(cells, out, pytest_args, progress)


@contextlib.contextmanager
def owned(out: Path) -> Iterator[None]:
    """Hold ``out`` for one matrix run: a second run given the same folder (two shards or two
    nights sharing ``--out``) is refused instead of mixing its cells' results into this one."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise SetupError(
                f"another matrix run (pid {holder}) is writing to {out}: give this one "
                "another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _run_cells(
    cells: Sequence[CellSpec],
    out: Path,
    pytest_args: Sequence[str],
    progress: Callable[[str], None],
) -> tuple[int, dict[str, Any]]:
    runs_dir = out / "cells"
    runs_dir.mkdir(parents=True, exist_ok=True)
    status = 0
    run_dirs: list[Path] = []
    try:
        for n, cell in enumerate(cells, 1):
            progress(f"cell {n}/{len(cells)}: {cell.label}")
            before = set(runs_dir.iterdir())
            argv = [
                str(Path(sys.executable).with_name("pytest")),
                *cell.pytest_args(),
                # pytest takes its rootdir from any existing path among its arguments, option
                # values included: an --out outside the tree would move it there.
                "--rootdir",
                str(ROOT),
                "--report-dir",
                str(runs_dir),
                *pytest_args,
            ]
            started = time.monotonic()
            try:
                code = run_cell(argv)
            finally:
                made = set(runs_dir.iterdir()) - before
                run_dirs += [p for p in made if p.name != "latest" and _has_results(p)]
            progress(f"cell {cell.label}: pytest exit {code} in {time.monotonic() - started:.0f}s")
            status = status or code
    finally:
        # An interrupted matrix still merges the cells that ran, the interrupted one included
        # (its results.json says it was interrupted and during which test).
        merged = merge([load_run(p) for p in sorted(run_dirs)])
        (out / "matrix.json").write_text(json.dumps(merged, indent=2) + "\n")
        html_report.write(merged, sorted(run_dirs), out / "matrix.html")
    return status, merged


def _has_results(path: Path) -> bool:
    return path.is_dir() and (path / "results.json").is_file()


def run_cell(argv: Sequence[str], grace: float = CELL_STOP_GRACE_S) -> int:
    """One cell's pytest, to its end. Interrupted, the matrix lets the cell stop the way a
    run stops on Ctrl-C (its guests stopped, its report written and marked interrupted)
    within ``grace`` before killing it, instead of subprocess.run's kill after a quarter of
    a second. Ctrl-C reached the cell's pytest too (one process group); a termination signal
    sent to the matrix alone is passed on, once: a second would cut the cell's cleanup."""
    child = subprocess.Popen(argv, cwd=ROOT)
    try:
        return child.wait()
    except KeyboardInterrupt:
        if received() is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


def default_out(report_dir: Path) -> Path:
    return report_dir / f"matrix-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def table(merged: dict[str, Any], write: Callable[[str], None] = print) -> None:
    """Per cell: verdict counts, then every case that did not pass."""
    by_cell: dict[str, dict[str, int]] = {cell: {} for cell in merged["cells"]}
    bad: list[str] = []
    for case, cells in merged["cases"].items():
        for cell, entry in cells.items():
            counts = by_cell.setdefault(cell, {})
            counts[entry["verdict"]] = counts.get(entry["verdict"], 0) + 1
            if entry["verdict"] not in ("PASS", "UNSUPPORTED", "XFAIL"):
                bad.append(f"  {entry['verdict']:5} {cell}  {case}: {entry['reason'][:120]}")
    for cell, counts in by_cell.items():
        write(f"{cell}: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    for line in bad:
        write(line)
