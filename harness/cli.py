"""Command line: ``python -m harness image`` builds (or finds) the guest image."""

from __future__ import annotations

import argparse
import sys

from harness.errors import HarnessError
from harness.image import ImageCache, Recipe


def _image(args: argparse.Namespace) -> int:
    image = ImageCache().ensure(Recipe.load(args.recipe), args.kernel_package)
    print(f"image {image.name} ({image.kernel_release}): {image.disk}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="s3s4", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    image = commands.add_parser("image", help="build the guest image unless it is cached")
    image.add_argument("--recipe", default="debian", help="recipe under images/")
    image.add_argument("--kernel-package", default=None, help="guest kernel's Debian package")
    image.set_defaults(handler=_image)
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
