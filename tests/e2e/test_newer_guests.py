"""A guest of a newer Debian suite, built by the built-in recipe with the suite as its
parameter (``--guest-suite sid``: sid's userspace, systemd and kernel, the same hooks and
packages), put through one S3 and one S4 cycle under the host's QEMU; the cell id names the
suite beside the kernel the guest reported."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.setup.image import ImageCache, Recipe

pytestmark = pytest.mark.selftest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 1800  # the image build is about a minute from a near mirror, boots tens of s


def test_a_sid_guest_passes_s3_and_s4(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "testcases", "-p", "no:cacheprovider",
         "-m", "not selftest", "--guest-suite", "sid", "-k", "s3-agent or s4-agent",
         "--report-dir", str(reports)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    image = ImageCache().ensure(Recipe.load("debian"), suite="sid")  # built by the run
    assert image.guest_suite == "sid"
    (run,) = reports.glob("2*/results.json")
    data = json.loads(run.read_text())
    (cell,) = data["cells"]
    assert cell["guest"] == "sid" and cell["kernel"] == image.kernel_release
    assert cell["id"].startswith(f"k{image.kernel_release.removesuffix('-amd64')}-sid-q"), cell
    verdicts = {t["test"].split("[")[-1].rstrip("]"): t["verdicts"] for t in data["tests"]}
    assert sorted(verdicts) == [f"{cell['id']}-s3-agent", f"{cell['id']}-s4-agent"], verdicts
    assert list(verdicts.values()) == [["PASS"], ["PASS"]], verdicts
    for test in data["tests"]:
        said = test["series"][0]["cycles"][0]["combination"]["kernel"]
        assert said == image.kernel_release  # the guest's own uname -r, before and after
    # The userspace is sid's: the systemd that booted is the one the image installed.
    (console,) = reports.glob(f"2*/guests/{cell['id']}/checkpoint/serial.log")
    booted = re.search(r"systemd (\S+) running in system mode", console.read_text())
    assert booted is not None, "the checkpoint's console shows no systemd start"
    assert booted.group(1) == image.packages["systemd"].split(":", 1)[-1], booted.group(0)
