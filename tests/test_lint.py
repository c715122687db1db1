"""Linters as tests, so `./run tests` keeps the code ruff and mypy clean and the layers of
harness/ as pyproject.toml's import-linter contracts draw them."""

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
