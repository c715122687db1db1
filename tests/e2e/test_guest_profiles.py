"""Guest profiles and swap misconfigurations, end to end on real guests.

The swapfile-ext4 profile is its own image (built by the recipe, about a minute and a half,
then cached), so its cases run in a pytest of their own with ``--guest-profile``: S4 resumes
from the swapfile on the ext4 root, and a stale resume_offset ends in a FAIL that names the
kernel's words and the command line it looked at. The refusals need no profile and run on
the session's default guest: swap smaller than the image (the kernel's errno) and only zram
swap (systemd's words, UNSUPPORTED)."""

import json
from pathlib import Path

import pytest

from harness.checks.verdict import Verdict
from harness.cycle.swap_misconfig import only_zram, swap_smaller_than_image
from harness.plugin import PowerCycle
from harness.setup.image import ImageCache, Recipe
from harness.transitions.refusals import S4_SYSFS_REPORTED, S4_SYSTEMCTL_REPORTED
from tests.e2e.pytest_run import run_pytest

pytestmark = pytest.mark.selftest

RUN_TIMEOUT_S = 1800  # the image build is about a minute and a half from a near mirror


def test_swapfile_ext4_resumes_and_a_stale_offset_is_named(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = run_pytest(
        ["testcases/test_guest_profiles.py", "--guest-profile", "swapfile-ext4",
         "-k", "swapfile-s4-systemctl or test_stale_resume_offset_boots"],
        reports, RUN_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.output[-6000:]
    assert "2 passed" in result.output, result.output[-2000:]
    image = ImageCache().ensure(Recipe.load("debian"), profile="swapfile-ext4")
    assert image.profile == "swapfile-ext4" and "resume_offset=" in image.cmdline
    (run,) = reports.glob("2*/results.json")
    data = json.loads(run.read_text())
    (cell,) = data["cells"]
    assert f"k{image.kernel_release.removesuffix('-amd64')}-swapfile-ext4-q" in cell["id"], cell
    verdicts = {t["test"].split("::")[-1]: t["verdicts"] for t in data["tests"]}
    s4 = [v for name, v in verdicts.items() if "swapfile-s4-systemctl" in name]
    stale = [v for name, v in verdicts.items() if "stale_resume_offset_boots" in name]
    assert s4 == [["PASS"]] and stale == [["FAIL"]], verdicts


def test_fedora_like_s4_resumes_from_the_btrfs_swapfile(tmp_path: Path) -> None:
    """The fedora-like guest (built here if not cached: about 75 s) hibernates with
    systemctl to its swapfile on btrfs, zram beside it, and its dracut initrd's systemd
    resumes it: same boot_id, the image loaded. OVMF boots it through systemd-boot."""
    run = run_pytest(
        ["testcases/test_guest_profiles.py", "--guest-profile", "fedora-like",
         "--firmware", "ovmf", "--machine-type", "q35", "-k", "btrfs-s4-systemctl"],
        tmp_path / "reports", RUN_TIMEOUT_S,
    )  # fmt: skip
    assert run.returncode == 0 and "1 passed" in run.output, run.output[-4000:]
    data = run.results()
    (cell,) = data["cells"]
    assert "-sid-fedora-like-q" in cell["id"], cell
    verdicts = {t["test"].split("::")[-1]: t["verdicts"] for t in data["tests"]}
    assert list(verdicts.values()) == [["PASS"]], verdicts


def test_an_image_larger_than_swap_is_refused_by_the_kernel_named(
    power_cycle: PowerCycle,
) -> None:
    outcome = power_cycle(S4_SYSFS_REPORTED, faults=[swap_smaller_than_image()]).last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason.startswith("request: echo disk > /sys/power/state (in guest) refused")
    assert "No space left on device" in outcome.reason, outcome.reason
    assert "(free swap 4" in outcome.reason, outcome.reason  # the 4 MiB swap, nearly all free
    assert "the kernel: " in outcome.reason, outcome.reason


def test_only_zram_swap_is_unsupported_in_systemds_words(power_cycle: PowerCycle) -> None:
    outcome = power_cycle(S4_SYSTEMCTL_REPORTED, faults=[only_zram()]).last
    assert outcome.verdict is Verdict.UNSUPPORTED, outcome.reason
    assert "Call to Hibernate failed: Not enough swap space for hibernation" in outcome.reason
