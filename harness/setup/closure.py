"""A program run from an unpacked root of Debian packages through that root's own loader.

A build for a newer Debian release needs a newer C library than the host's, so it is run as
``<root>/…/ld-linux-x86-64.so.2 --inhibit-cache --library-path <root's library dirs>
<root>/usr/bin/<program>``: its libraries come from the root (the host's ``ld.so.cache`` is
not read; the system directories are searched only for one the root lacks, and a closure lacks
none), nothing is installed and no mount namespace is needed. The loader prefix lives in a
small ``/bin/sh`` wrapper in the root (``harness-bin/<program>``) that replaces itself with it
(``exec``), so that whoever runs the program by path (the direct backend, libvirt's
``<emulator>``, a version probe) runs it the same way, with the same environment, under the
same process id.

QEMU learns its data directories from the executable it believes it is; run through a loader
it falls back to its compiled-in ``/usr/share/qemu`` and ``/usr/share/seabios``, which are the
host's. Its wrapper therefore passes the root's own (``-L``, searched first), and its module
directory (``QEMU_MODULE_DIR``). QEMU runs with ``-sandbox spawn=deny``, so it starts no helper
that could pick up the host's loader.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.errors import SetupError

LOADER = "ld-linux-x86-64.so.2"
LIBRARY_DIRS = ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu")  # merged-/usr or not
QEMU_DATA_DIRS = ("usr/share/qemu", "usr/share/seabios", "usr/lib/ipxe/qemu")
QEMU_MODULE_DIR = "usr/lib/x86_64-linux-gnu/qemu"
WRAPPERS = "harness-bin"
GCONV_DIRS = ("usr/lib/x86_64-linux-gnu/gconv", "lib/x86_64-linux-gnu/gconv")
# Variables that would load the host's libraries into the root's program.
HOST_LOADER_VARIABLES = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT")


def loader_argv(root: Path) -> list[str]:
    """The root's own loader, finding libraries in the root's library directories only."""
    loader = next((root / d / LOADER for d in LIBRARY_DIRS if (root / d / LOADER).is_file()), None)
    if loader is None:
        raise SetupError(f"{root} holds no {LOADER}: libc6 is missing from its packages")
    dirs = [str(root / d) for d in LIBRARY_DIRS if (root / d).is_dir()]
    if any(":" in d for d in dirs):
        raise SetupError(f"{root}: a ':' in the cache's path would split the library path")
    return [str(loader), "--inhibit-cache", "--library-path", ":".join(dirs)]


def qemu_argv(root: Path) -> list[str]:
    """qemu-system-x86_64 of ``root``, through its loader, with its data directories."""
    argv = [*loader_argv(root), str(root / "usr/bin/qemu-system-x86_64")]
    for data in QEMU_DATA_DIRS:
        if (root / data).is_dir():
            argv += ["-L", str(root / data)]
    return argv


def qemu_env(root: Path) -> dict[str, str]:
    """QEMU's module directory and the C library's character set modules, both the root's."""
    env = {}
    if (root / QEMU_MODULE_DIR).is_dir():
        env["QEMU_MODULE_DIR"] = str(root / QEMU_MODULE_DIR)
    gconv = next((root / d for d in GCONV_DIRS if (root / d).is_dir()), None)
    if gconv is not None:
        env["GCONV_PATH"] = str(gconv)
    return env


def write_qemu_wrappers(root: Path) -> tuple[Path, Path]:
    """``harness-bin/qemu-system-x86_64`` and ``harness-bin/qemu-img`` of ``root``."""
    env = qemu_env(root)
    system = write_wrapper(root / WRAPPERS / "qemu-system-x86_64", qemu_argv(root), env)
    img = write_wrapper(
        root / WRAPPERS / "qemu-img", [*loader_argv(root), str(root / "usr/bin/qemu-img")], env
    )
    return system, img


def wrapper_text(argv: Sequence[str], env: Mapping[str, str]) -> str:
    lines = [
        "#!/bin/sh",
        "# Runs a program of this root through the root's own loader and libraries",
        "# (written by harness.setup.closure).",
        f"unset {' '.join(HOST_LOADER_VARIABLES)}",
        *(f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())),
        f'exec {shlex.join(argv)} "$@"',
    ]
    return "\n".join(lines) + "\n"


def write_wrapper(path: Path, argv: Sequence[str], env: Mapping[str, str]) -> Path:
    """The wrapper at ``path``, replaced atomically when its text changes (the cache moved)."""
    text = wrapper_text(argv, env)
    if path.is_file() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(0o755)
    os.replace(tmp, path)
    return path


def confine_symlinks(root: Path) -> int:
    """Absolute symlinks in ``root`` made relative, so that none resolves to the host's file of
    that name (``/lib64/ld-linux-x86-64.so.2`` -> ``/lib/…``); how many were rewritten."""
    rewritten = 0
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            link = Path(directory) / name
            if not link.is_symlink():
                continue
            target = os.readlink(link)
            if not target.startswith("/"):
                continue
            link.unlink()
            link.symlink_to(os.path.relpath(root / target.lstrip("/"), link.parent))
            rewritten += 1
    return rewritten
