"""Components from Debian's archive: the newest QEMU the archive serves runs on this host from
its own library closure and passes an S3 case; the cell records every package it ran from;
offline, what the cache lacks is one line; the harness's private lists are package indices
only."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.errors import SetupError
from harness.setup.components import DebianArchive, provision_qemu, upstream

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
CASE = ["testcases/test_suspend_to_ram.py", "-k", "test_suspend_to_ram and s3-agent"]
CASE_TIMEOUT_S = 1200  # the case takes minutes; a first run also downloads the closure


def _host_version(package: str) -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
    ).stdout


def test_the_newest_qemu_runs_from_its_closure_and_the_cell_names_what_ran(
    tmp_path: Path,
) -> None:
    newest = DebianArchive().versions("qemu-system-x86")[0]
    host_qemu = _host_version("qemu-system-x86")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *CASE, "--qemu", newest, "--report-dir",
         str(tmp_path), "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=CASE_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert _host_version("qemu-system-x86") == host_qemu, "the host's QEMU package was touched"
    (run,) = [
        p for p in tmp_path.iterdir() if (p / "results.json").is_file() and not p.is_symlink()
    ]
    results: dict[str, Any] = json.loads((run / "results.json").read_text())
    (cell,) = results["cells"]
    packages = {package["name"]: package for package in cell["packages"]}
    # The QEMU that ran is the one asked for, from its own closure (its C library included).
    assert packages["qemu-system-x86"]["version"] == newest, packages.keys()
    assert {"qemu-utils", "libc6", "seabios"} <= packages.keys(), packages.keys()
    assert all(re.fullmatch(r"[0-9a-f]{64}", p["sha256"]) for p in packages.values()), packages
    assert cell["qemu"] == upstream(newest), cell
    (record,) = [r for r in results["tests"] if r["verdicts"]]
    combination = record["series"][0]["cycles"][0]["combination"]
    assert combination["qemu_version"] == upstream(newest), combination
    # Its SeaBIOS is the closure's: the id, the file and the guest's DMI agree.
    assert "/components/trees/" in cell["firmware_file"], cell
    assert combination["bios_version"].startswith(cell["firmware"].removeprefix("seabios"))
    assert not cell["firmware_note"], cell


def test_offline_names_what_the_cache_lacks_in_one_line_and_lists_hold_indices_only(
    tmp_path: Path,
) -> None:
    """Offline, what the cache lacks is one line. The lists the online step fetches (into an
    empty cache, so the whole set) are, whatever the host's apt is configured to fetch
    (apt-file's Contents, translations), the Packages indices of the harness's suites and
    nothing more: one fetch serves both."""
    cache = tmp_path / "components"
    with pytest.raises(SetupError, match="--offline: Debian's package lists are not in the cache"):
        provision_qemu("10.0", DebianArchive(cache, offline=True))
    online = DebianArchive(cache)
    newest = online.versions("qemu-system-x86")[0]  # fetches the lists, no package
    lists = sorted(p.name for p in (cache / "apt" / "lists").iterdir() if p.is_file())
    assert lists, "no lists fetched"
    assert not [name for name in lists if "Contents" in name or "Translation" in name], lists
    for suite in ("bookworm", "trixie-backports", "sid", "experimental"):
        assert any(f"_{suite}_main_binary-amd64_Packages" in name for name in lists), lists
    with pytest.raises(SetupError) as caught:
        provision_qemu(newest, DebianArchive(cache, offline=True))
    message = str(caught.value)
    assert message.startswith("--offline: ") and "not in the cache" in message, message
    assert f"qemu-system-x86={newest}" in message and "libc6=" in message, message
    assert "\n" not in message
    assert not list(cache.glob("debs/*.deb")), "offline fetched a package"
    shutil.rmtree(cache)  # tens of MB of lists
