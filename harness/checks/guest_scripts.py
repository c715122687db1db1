"""The guest-side shell scripts (a package's ``scripts/*.sh``, shipped as package data) as the
text sent to a guest: a line per setting, then the scripts' code.

Settings are the values the harness chooses (paths, sizes, paces, other scripts' code), set as
shell variables named in capitals ahead of the code; a script's own variables are lower case.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from importlib import resources

_COMMENT_OR_BLANK = re.compile(r"\s*(#.*)?")


@cache
def code(name: str, package: str = "harness.checks") -> str:
    """``scripts/<name>`` of ``package`` without its comment lines and blank lines, ending
    with a newline. The comments stay in the files, out of what the guest's shell parses:
    the facts scripts are sent at every capture, and a TCG guest parses slowly. A first line
    ``#!...`` is kept (a script written to a file in the guest needs it). No script may hold a
    line starting with ``#`` inside a here-document or a quoted string (a unit test holds
    each to that)."""
    text = resources.files(package).joinpath("scripts", name).read_text()
    lines = text.splitlines()
    kept = [
        line
        for index, line in enumerate(lines)
        if not _COMMENT_OR_BLANK.fullmatch(line) or (index == 0 and line.startswith("#!"))
    ]
    return "".join(f"{line}\n" for line in kept)


def program(*names: str, package: str = "harness.checks", **settings: str | int | float) -> str:
    """The scripts ``names`` of ``package`` one after the other, after a ``NAME=value`` line
    per setting (each value quoted for the shell)."""
    lines = [f"{key}={shlex.quote(str(value))}\n" for key, value in settings.items()]
    return "".join(lines) + "".join(code(name, package) for name in names)
