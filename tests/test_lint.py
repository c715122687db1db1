"""Linters as tests, so `./run tests` keeps the code ruff and mypy clean, the layers of
harness/ as pyproject.toml's import-linter contracts draw them, and every shell script
shellcheck clean."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
        ["lint-imports"],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-layers"],
)
def test_linter_is_clean(argv: list[str]) -> None:
    tool = Path(sys.executable).parent / argv[0]
    result = subprocess.run(
        [str(tool), *argv[1:]], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# The guest-side scripts and helpers under harness/, and the image recipes' hooks.
SHELL_SCRIPTS = sorted(
    path.relative_to(ROOT)
    for path in [*(ROOT / "harness").rglob("*.sh"), *(ROOT / "images").glob("*/*.sh")]
)


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=[str(p) for p in SHELL_SCRIPTS])
def test_shell_script_is_shellcheck_clean(script: Path) -> None:
    """Each script names its shell in its first line (#!/bin/sh or #!/bin/bash), which
    shellcheck checks it against; a warning it may keep is disabled where it arises, with
    the reason."""
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (./run installs it with the Debian packages)"
    result = subprocess.run(
        [shellcheck, str(script)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
