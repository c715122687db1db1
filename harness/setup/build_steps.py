"""One step of building an image or a disk: a program run to its end within a bound, its
failure one line naming it; and a program of a guest's own root, run through that root's own
loader and libraries (a newer suite's tool needs the libraries it was built against, which the
host may not have)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.errors import ImageBuildError, SetupError

STEP_TIMEOUT_S = 600.0
LOADER = "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
LIBRARIES = "usr/lib/x86_64-linux-gnu"


def run_step(argv: list[str], name: str = "", stdin: str | None = None) -> str:
    """``argv``'s output; ImageBuildError naming ``name`` (default: the program) and its last
    line of stderr when it fails or outlasts STEP_TIMEOUT_S."""
    name = name or argv[0]
    try:
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise SetupError(f"{argv[0]} not found: run ./run setup (installs it)") from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"{name} still running after {STEP_TIMEOUT_S:.0f}s") from exc
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:]
        raise ImageBuildError(f"{name} failed ({result.returncode}): {tail}")
    return result.stdout


def guest_program(guest_root: Path, program: str, *args: str, package: str) -> str:
    """``program`` (a path inside ``guest_root``) run with ``args`` through the root's loader;
    a root without it names ``package``."""
    loader = guest_root / LOADER
    if not loader.is_file() or not (guest_root / program).is_file():
        raise ImageBuildError(f"the guest has no {program} ({package} in its packages?)")
    argv = [str(loader), "--library-path", str(guest_root / LIBRARIES),
            str(guest_root / program), *args]  # fmt: skip
    return run_step(argv, Path(program).name)
