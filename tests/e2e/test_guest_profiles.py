"""Guest profiles and swap misconfigurations, end to end on real guests.

The fedora-like profile is its own image (built by the recipe on first use, then cached), so
its cases run in a pytest of their own with ``--guest-profile``: S4 resumes from the swapfile
on btrfs, and on the same guest, after it, a stale resume_offset ends in a FAIL that names the
kernel's words and the offset it looked at. The refusals need no profile and run on the
session's default guest: swap smaller than the image (the kernel's errno) and only zram swap
(systemd's words, UNSUPPORTED).

The swapfile-ext4 profile has no run of its own here (one image build and one cold boot
fewer): S4 from a swapfile on an ext4 root, resumed from it, is proven by
tests/e2e/test_cloud_image.py (the Debian cloud image's seed makes that swapfile, and its S4
cycle's resumed_not_rebooted passes with the swapfile the only swap), and the stale offset's
FAIL by the fedora-like run below, through the same judge (resumed_from_image). The
swapfile-ext4 cases run with ``--guest-profile swapfile-ext4`` (docs/guest-profiles.md)."""

import re
from pathlib import Path

import pytest

from harness.checks.verdict import Verdict
from harness.cycle.swap_misconfig import only_zram, swap_smaller_than_image
from harness.plugin import PowerCycle
from harness.transitions.refusals import S4_SYSFS_REPORTED, S4_SYSTEMCTL_REPORTED
from tests.e2e.pytest_run import run_pytest

pytestmark = pytest.mark.selftest

RUN_TIMEOUT_S = 1800  # the image build is about a minute and a half from a near mirror


def test_fedora_like_s4_resumes_from_the_btrfs_swapfile_and_a_stale_offset_is_named(
    tmp_path: Path,
) -> None:
    """The fedora-like guest (built here if not cached: about 75 s) hibernates with
    systemctl to its swapfile on btrfs, zram beside it, and its dracut initrd's systemd
    resumes it: same boot_id, the image loaded. OVMF boots it through systemd-boot. Then,
    from the same checkpoint, the swapfile made again elsewhere and the kernel told its new
    place: the next boot looks at the command line's stale resume_offset and boots instead,
    a FAIL naming the kernel's words and that offset."""
    run = run_pytest(
        ["testcases/test_guest_profiles.py", "--guest-profile", "fedora-like",
         "--firmware", "ovmf", "--machine-type", "q35",
         "-k", "btrfs-s4-systemctl or fedora_like_stale_resume_offset"],
        tmp_path / "reports", RUN_TIMEOUT_S,
    )  # fmt: skip
    assert run.returncode == 0 and "2 passed" in run.output, run.output[-4000:]
    data = run.results()
    (cell,) = data["cells"]
    assert "-sid-fedora-like-q" in cell["id"], cell
    verdicts = {t["test"].split("::")[-1]: t["verdicts"] for t in data["tests"]}
    s4 = [v for name, v in verdicts.items() if "btrfs-s4-systemctl" in name]
    stale = [t for t in data["tests"] if "stale_resume_offset" in t["test"]]
    assert s4 == [["PASS"]] and [t["verdicts"] for t in stale] == [["FAIL"]], verdicts
    # The reason names the kernel's words and the offset the command line still says.
    cycle = stale[0]["series"][0]["cycles"][0]
    reason, cmdline = cycle["reason"], cycle["evidence"]["before"]["guest.cmdline"]
    assert "resumed_from_image: rebooted, not resumed: the kernel said" in reason, reason
    offset = re.search(r" resume_offset=(\d+)", cmdline)
    assert offset is not None and f"resume_offset={offset.group(1)}" in reason, (reason, cmdline)


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
