"""Command line: ``python -m harness image`` builds (or finds) the guest image;
``python -m harness bench`` measures the harness against the guest's own times."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness.bench import run_benchmark, table
from harness.errors import HarnessError
from harness.image import ImageCache, Recipe
from harness.session import Settings


def _image(args: argparse.Namespace) -> int:
    image = ImageCache().ensure(Recipe.load(args.recipe), args.kernel_package)
    print(f"image {image.name} ({image.kernel_release}): {image.disk}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    out = Path(args.report_dir) / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    settings = Settings(accel=args.accel, timeout_scale=args.timeout_scale)
    path = run_benchmark(args.runs, settings, out, lambda line: print(f"[bench] {line}"))
    table(json.loads(path.read_text()))
    print(f"figures: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s3s4", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    image = commands.add_parser("image", help="build the guest image unless it is cached")
    image.add_argument("--recipe", default="debian", help="recipe under images/")
    image.add_argument("--kernel-package", default=None, help="guest kernel's Debian package")
    image.set_defaults(handler=_image)
    bench = commands.add_parser("bench", help="time boots, checkpoint starts and cycles")
    bench.add_argument("--runs", type=int, default=3, help="runs of each measure (default: 3)")
    bench.add_argument("--accel", default="auto", help="kvm, tcg or auto (default: auto)")
    bench.add_argument("--timeout-scale", type=float, default=1.0, help="scale every timeout")
    bench.add_argument("--report-dir", default="reports", help="where bench-<time>/ goes")
    bench.set_defaults(handler=_bench)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
