"""The tmt plans run for real on this host (tmt's local provisioner): each prepares with
./run setup, its test runs one case of the default suite, and tmt reads one result per case
with the case's evidence attached: /plans/cell through ./run matrix, /plans/testday through
./run testday, which also writes testday.txt.

tmt runs from a copy of the repository's files as a clone has them (tracked and new files,
nothing git ignores): it copies the whole tree it is started in, twice per plan, and this
tree's image cache and venv are gigabytes. The run is handed what a runner that keeps caches
hands it: the image cache (S3S4_IMAGE_CACHE) and a virtualenv with the harness's dependencies
(S3S4_VENV, this test's own), so prepare's ./run setup checks the host's packages, finds the
guest image and uses that venv, running the copy's harness, rather than building the image and
a venv again in each of tmt's copies (tens of seconds each). ./run setup making a venv in a
fresh clone is what every CI run starts with (./run tests on a clean clone)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.setup.image import DEFAULT_CACHE

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
TMT = Path(sys.executable).parent / "tmt"
VENV = Path(sys.executable).parent.parent


def repository_files(destination: Path) -> Path:
    """A git repository of the files a clone of this tree has (with their uncommitted
    contents)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listing.split(b"\0")):
        source = ROOT / os.fsdecode(name)
        if source.is_symlink() or source.is_file():  # a file deleted but not staged is skipped
            target = destination / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "-m", "tree"]):
        subprocess.run(["git", *command], cwd=destination, capture_output=True, check=True)
    return destination


def one_result(workdir: Path, plan: str) -> tuple[dict[str, Any], Path]:
    execute = workdir / "plans" / plan / "execute"
    results = YAML(typ="safe").load((execute / "results.yaml").read_text())
    assert [r["result"] for r in results] == ["pass"], results
    (case,) = results
    assert case["name"].endswith("/test_suspend_to_ram.py/test_suspend_to_ram[s3-agent]")
    logs = [execute / log for log in case["log"]]
    assert any(log.name == "serial.log" for log in logs)
    assert all(log.is_file() for log in logs), logs
    return case, execute


def test_tmt_runs_both_plans_and_reads_one_result_per_case(tmp_path: Path) -> None:
    tree = repository_files(tmp_path / "tree")
    workdir = tmp_path / "tmt-run"
    result = subprocess.run(
        [
            str(TMT),
            "--feeling-safe",
            "run",
            "--id",
            str(workdir),
            "-e",
            "S3S4_PYTEST_ARGS='-k s3-agent'",
            "-e",
            f"S3S4_IMAGE_CACHE={DEFAULT_CACHE}",
            "-e",
            f"S3S4_VENV={VENV}",
            "--all",
            "provision",
            "--how",
            "local",
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={**os.environ, "TMT_WORKDIR_ROOT": str(tmp_path)},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    case, _ = one_result(workdir, "cell")
    assert case["ids"]["cell"].startswith("k6.1")
    _, execute = one_result(workdir, "testday")
    (testday,) = execute.rglob("testday.txt")
    assert "bot=true" in testday.read_text()
