"""Command line (``python -m harness``): ``image`` builds or finds the guest image; ``bench``
measures the harness against the guest's own times; ``matrix`` runs the suite on every cell of
a matrix file; ``merge`` and ``compare`` combine and diff results; ``bisect`` judges one build
for ``git bisect run``; ``endurance`` runs N cycles on one guest; ``history`` follows cases
over many runs; ``tmt-results`` converts results for tmt; ``doctor`` says what this host can
do and what is missing; ``testday`` writes a test day's wiki results."""

from __future__ import annotations

import argparse
import fnmatch
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.interrupts import Terminated, take_termination_as_interrupt
from harness.matrix import spec as matrix
from harness.results import history as run_history
from harness.results import history_html
from harness.results import html as html_report
from harness.results import tmt as tmt_results
from harness.results.merge import compare, load_run, merge
from harness.session import Settings
from harness.setup.image import ImageCache, Recipe
from harness.tools import bench_sizes, bench_sleep_cost, bisect, doctor, endurance, testday
from harness.tools.bench import run_benchmark, table
from harness.tools.matrix_run import default_out, detect_ids, run_matrix
from harness.tools.matrix_run import table as matrix_table


def _image(args: argparse.Namespace) -> int:
    image = ImageCache().ensure(
        Recipe.load(args.recipe),
        args.kernel_package,
        suite=args.guest_suite,
        profile=args.guest_profile,
    )
    print(f"image {image.name} ({image.kernel_release}): {image.disk}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    out = Path(args.report_dir) / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    settings = Settings(accel=args.accel, timeout_scale=args.timeout_scale)
    if args.memory or args.cpus or args.sleep_cost is not None:
        return _bench_sizes(args, settings, out)
    path = run_benchmark(args.runs or 3, settings, out, lambda line: print(f"[bench] {line}"))
    table(json.loads(path.read_text()))
    print(f"figures: {path}")
    return 0


def _bench_sizes(args: argparse.Namespace, settings: Settings, out: Path) -> int:
    plan = bench_sizes.SizesPlan(
        memory_gib=bench_sizes.parse_sizes(args.memory, "memory", range(1, 65))
        if args.memory
        else (),
        cpus=bench_sizes.parse_sizes(args.cpus, "cpus", range(1, 65)) if args.cpus else (),
        sleep_window_s=args.sleep_cost,
        fill_share=args.fill_share,
        runs=args.runs or 1,
    )
    path = bench_sizes.run_sizes(plan, settings, out, lambda line: print(f"[bench] {line}"))
    bench_sizes.print_report(json.loads(path.read_text()))
    print(f"figures: {path}")
    return 0


def _endurance(args: argparse.Namespace) -> int:
    out = Path(args.report_dir) / f"endurance-{time.strftime('%Y%m%d-%H%M%S')}"
    settings = Settings(accel=args.accel, timeout_scale=args.timeout_scale)
    limits = endurance.Limits(
        args.cycles,
        endurance.parse_duration(args.duration) if args.duration else None,
        args.maxfail,
        endurance.parse_delay(args.delay) if args.delay else (0.0, 0.0),
    )
    path = endurance.run_endurance(
        args.transition,
        args.cycles,
        settings,
        out,
        lambda line: print(f"[endurance] {line}", flush=True),
        limits=limits,
    )
    payload = json.loads(path.read_text())
    endurance.table(payload)
    print(f"figures: {path}")
    return 0 if payload["summary"]["passed"] == payload["summary"]["cycles"] else 1


def _matrix(args: argparse.Namespace) -> int:
    cells = matrix.load(matrix.path_of(args.matrix) if args.matrix else Path(args.file))
    ids: dict[matrix.CellSpec, str] = {}
    labels = {cell.label for cell in cells}
    if args.list or any(
        could_be_id(w) and not any(fnmatch.fnmatchcase(label, w) for label in labels)
        for w in args.cell
    ):
        ids = detect_ids(cells, lambda line: print(f"[matrix] {line}", file=sys.stderr))
    cells = matrix.shard(matrix.select(cells, args.cell, ids), args.shard)
    if args.list:
        for cell in cells:
            print(f"{ids.get(cell, '?'):48} {cell.label}")
        return 0
    pytest_args = args.pytest_args or ["testcases", "-m", "not selftest"]
    out = Path(args.out) if args.out else default_out(Path(args.report_dir))
    status, merged = run_matrix(cells, out, pytest_args, lambda line: print(f"[matrix] {line}"))
    matrix_table(merged)
    print(f"matrix: {out / 'matrix.json'}")
    return status


def _bisect(args: argparse.Namespace) -> int:
    build = bisect.Build(args.qemu, args.kernel, args.initrd, args.bios, args.ovmf)
    if args.repeat < 1:
        print(f"error: --repeat must be at least 1, not {args.repeat}", file=sys.stderr)
        return bisect.ABORT
    try:
        bounds = bisect.time_bounds(args.slower_than, args.slower_than_good, args.stage)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return bisect.ABORT
    try:
        judgement = bisect.run_bisect(
            build,
            args.pytest_args,
            args.repeat,
            args.flaky,
            Path(args.report_dir).resolve(),
            lambda line: print(f"[bisect] {line}", flush=True),
            bounds,
        )
    except HarnessError as exc:
        judgement = bisect.RunJudgement(bisect.SKIP, f"the harness could not run: {exc}")
    print(bisect.describe(judgement), flush=True)
    return judgement.status


def _tmt_results(args: argparse.Namespace) -> int:
    run_dirs: list[Path] = []
    for given in map(Path, args.runs):
        cells = given / "cells"
        run_dirs += (
            sorted(p for p in cells.iterdir() if (p / "results.json").is_file())
            if cells.is_dir()
            else [given]
        )
    path = tmt_results.write(run_dirs, Path(args.data_dir))
    print(f"tmt results: {path} ({len(json.loads(path.read_text()))} results)")
    return 0


def could_be_id(pattern: str) -> bool:
    """Ids start ``k<kernel release>``: only such a pattern is worth detecting every cell's
    id for (which provisions components and builds images)."""
    return pattern[:1] in ("k", "*", "?", "[")


def _merge(args: argparse.Namespace) -> int:
    run_dirs = [Path(p) if Path(p).is_dir() else Path(p).parent for p in args.runs]
    merged = merge([load_run(p) for p in run_dirs])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.json").write_text(json.dumps(merged, indent=2) + "\n")
    html_report.write(merged, run_dirs, out / "matrix.html")
    matrix_table(merged)
    print(f"matrix: {out / 'matrix.json'}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    old, new = (_as_matrix(Path(p)) for p in (args.old, args.new))
    comparison = compare(old, new)
    for change in comparison.changes:
        print(f"{change.kind:12} {change.cell}  {change.case}: {change.was} -> {change.now}")
    counts = {k: len(comparison.of(k)) for k in ("regression", "fix", "new-failure", "missing")}
    print(", ".join(f"{n} {k}" for k, n in counts.items()))
    return 1 if counts["regression"] or counts["new-failure"] else 0


def _history(args: argparse.Namespace) -> int:
    result = run_history.history(run_history.load_runs(map(Path, args.runs)))
    for line in run_history.text(result):
        print(line)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path(args.report_dir) / f"history-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "history.html").write_text(history_html.render(result))
    print(f"history: {out / 'history.json'} and history.html")
    return run_history.exit_status(result)


def _as_matrix(path: Path) -> dict[str, Any]:
    """A matrix.json as it is; a run (its directory or results.json) merged on its own."""
    file = path / "matrix.json" if path.is_dir() and (path / "matrix.json").exists() else path
    if file.is_file() and file.name == "matrix.json":
        data: dict[str, Any] = json.loads(file.read_text())
        return data
    return merge([load_run(path)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s3s4", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    image = commands.add_parser("image", help="build the guest image unless it is cached")
    image.add_argument("--recipe", default="debian", help="recipe under images/")
    image.add_argument("--kernel-package", default=None, help="guest kernel's Debian package")
    image.add_argument("--guest-suite", default=None, help="the guest's Debian suite (sid ...)")
    image.add_argument(
        "--guest-profile", default=None, help="the guest's swap layout (swapfile-ext4 ...)"
    )
    image.set_defaults(handler=_image)
    bench = commands.add_parser("bench", help="time boots, checkpoint starts and cycles")
    bench.add_argument(
        "--runs", type=int, default=None, help="runs of each measure (default: 3; sizes: 1)"
    )
    bench.add_argument("--memory", default=None, help="S4 against guest GiB instead, e.g. 1,4,8")
    bench.add_argument("--cpus", default=None, help="S3 and S4 against vCPUs instead, e.g. 1,2,4")
    bench.add_argument(
        "--sleep-cost",
        type=float,
        nargs="?",
        const=bench_sleep_cost.WINDOW_S,
        default=None,
        metavar="SECONDS",
        help="QEMU's CPU and wakeups in S3, s2idle, freeze and awake (window default: 20 s)",
    )
    bench.add_argument(
        "--fill-share",
        type=float,
        default=bench_sizes.FILL_SHARE,
        help="with --memory: share of the guest's memory filled before S4 (default: 0.125)",
    )
    bench.add_argument("--accel", default="auto", help="kvm, tcg or auto (default: auto)")
    bench.add_argument("--timeout-scale", type=float, default=1.0, help="scale every timeout")
    bench.add_argument("--report-dir", default="reports", help="where bench-<time>/ goes")
    bench.set_defaults(handler=_bench)
    soak = commands.add_parser(
        "endurance", help="N cycles or a while on one guest: pass rate, failures"
    )
    soak.add_argument(
        "--cycles", type=int, default=None, help="cycles (default: 100 unless --for is given)"
    )
    soak.add_argument("--for", dest="duration", help="run for a while: 90s, 10m, 8h")
    soak.add_argument("--delay", help="MIN,MAX: idle a random time between cycles (90s, 2m)")
    soak.add_argument("--maxfail", type=int, default=None, help="stop after N failed cycles")
    soak.add_argument("--transition", default="s3-agent", help="transition id (default: s3-agent)")
    soak.add_argument("--accel", default="auto", help="kvm, tcg or auto (default: auto)")
    soak.add_argument("--timeout-scale", type=float, default=1.0, help="scale every timeout")
    soak.add_argument("--report-dir", default="reports", help="where endurance-<time>/ goes")
    soak.set_defaults(handler=_endurance)
    run = commands.add_parser("matrix", help="run the default suite on every cell of a matrix")
    run.add_argument("--file", default=str(matrix.DEFAULT_MATRIX), help="matrix TOML file")
    run.add_argument(
        "--matrix", default=None, metavar="NAME", help="matrix/NAME.toml (default, nightly ...)"
    )
    run.add_argument("--cell", action="append", default=[], help="cell label or id (pattern)")
    run.add_argument("--shard", default=None, help="i/n: this runner's share of the cells")
    run.add_argument("--list", action="store_true", help="list the cells with their ids")
    run.add_argument("--report-dir", default="reports", help="where matrix-<time>/ goes")
    run.add_argument("--out", default=None, help="the run's directory (default: a new one)")
    run.add_argument("pytest_args", nargs="*", help="after --: pytest arguments")
    run.set_defaults(handler=_matrix)
    judging = commands.add_parser(
        "bisect",
        help="for git bisect run: exit 0 good, 1 bad, 125 skip, 128 stop",
        description=bisect.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    judging.add_argument("--qemu", help="the QEMU build under test (qemu-system-x86_64)")
    judging.add_argument("--kernel", help="the guest kernel under test (bzImage)")
    judging.add_argument("--initrd", help="with --kernel: its initrd (default: none)")
    judging.add_argument("--bios", help="the SeaBIOS build under test (bios.bin)")
    judging.add_argument("--ovmf", help="folder with the OVMF build under test (q35)")
    judging.add_argument(
        "--repeat", type=int, default=1, help="runs of a failing build before calling it bad"
    )
    judging.add_argument(
        "--flaky",
        choices=sorted(bisect.FLAKY_POLICIES),
        default="skip",
        help="what a failure that does not repeat counts as (default: skip)",
    )
    judging.add_argument(
        "--slower-than",
        action="append",
        default=[],
        metavar="STAGE=SECONDS",
        help="a passing case whose STAGE took longer is bad (e.g. request_to_entry=5)",
    )
    judging.add_argument(
        "--slower-than-good",
        action="append",
        default=[],
        metavar="DIR",
        help="runs of the good build: a stage slower than their median and spread is bad",
    )
    judging.add_argument(
        "--stage",
        action="append",
        default=[],
        help="with --slower-than-good: the stages judged (default: request_to_entry, "
        "wake_to_ready)",
    )
    judging.add_argument(
        "--report-dir",
        default=str(bisect.ROOT / "reports" / "bisect"),
        help="where each step's report goes",
    )
    judging.add_argument(
        "pytest_args", nargs="*", help="after --: case selection (default: -k s3-agent)"
    )
    judging.set_defaults(handler=_bisect)
    tmt = commands.add_parser("tmt-results", help="results as tmt custom results")
    tmt.add_argument("runs", nargs="+", help="run directories or matrix directories")
    tmt.add_argument("--data-dir", required=True, help="$TMT_TEST_DATA: results.json goes here")
    tmt.set_defaults(handler=_tmt_results)
    checkup = commands.add_parser("doctor", help="what this host can do and what is missing")
    checkup.add_argument("--root", default="/", help="read /sys, /dev, /proc, /etc below this")
    checkup.set_defaults(handler=doctor.command)
    day = commands.add_parser("testday", help="the suite as a test day's wiki results")
    day.add_argument("--fas-user", default=getpass.getuser(), help="your FAS (wiki) user name")
    day.add_argument(
        "--bot",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mark the results bot=true (default: when stdin is not a terminal)",
    )
    day.add_argument("--cases", default=str(testday.DEFAULT_CASES), help="the case map (TOML)")
    day.add_argument("--run", default=None, help="a finished run's directory: no new run")
    day.add_argument("--report-dir", default="reports", help="where the run's directory goes")
    day.add_argument(
        "pytest_args", nargs="*", help="after --: pytest arguments that narrow the suite"
    )
    day.set_defaults(handler=testday.command)
    merging = commands.add_parser("merge", help="merge runs or shards into one matrix")
    merging.add_argument("runs", nargs="+", help="run directories or results.json files")
    merging.add_argument("--out", required=True, help="directory for matrix.json")
    merging.set_defaults(handler=_merge)
    comparing = commands.add_parser("compare", help="regressions and fixes between two runs")
    comparing.add_argument("old", help="matrix.json, results.json or a run directory")
    comparing.add_argument("new", help="matrix.json, results.json or a run directory")
    comparing.set_defaults(handler=_compare)
    past = commands.add_parser(
        "history",
        help="verdicts, flips and latency trends over many runs (exit 1 new failure, 3 slowdown)",
    )
    past.add_argument("runs", nargs="+", help="run or matrix directories, their JSON, or reports/")
    past.add_argument("--out", default=None, help="where history.json and history.html go")
    past.add_argument("--report-dir", default="reports", help="where history-<time>/ goes")
    past.set_defaults(handler=_history)
    args = parser.parse_args(argv)
    take_termination_as_interrupt()
    try:
        return int(args.handler(args))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"interrupted{f' ({exc})' if isinstance(exc, Terminated) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
