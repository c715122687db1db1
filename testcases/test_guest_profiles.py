"""Guest profiles (``--guest-profile``): the guest hibernates to its profile's swap layout and
resumes from it, proven resumed (same boot_id, the image loaded); and each misconfiguration
of that layout ends in a verdict that names its cause, never in a silent PASS. The cases of
a profile run only when the run's guest has that profile (its own image); without the
option they are skipped."""

import re
from collections.abc import Callable

import pytest

from harness.checks.judges import DEFAULT_CHECKS
from harness.checks.resume_source import resumed_from_image
from harness.checks.verdict import CycleOutcome, Verdict
from harness.cycle.swap_misconfig import (
    kernel_told_resume_location,
    only_zram,
    swapfile_recreated,
)
from harness.machines.protocol import Machine
from harness.plugin import GroupCycle, PowerCycle, expect_pass
from harness.session import HarnessSession
from harness.setup.guest_profiles import cmdline_args
from harness.transitions.catalogue import (
    HYBRID_AGENT_WAKE,
    HYBRID_SYSTEMCTL_WAKE,
    S4_AGENT,
    S4_SYSTEMCTL,
)
from harness.transitions.parts import Transition
from harness.transitions.refusals import S4_SYSFS_REPORTED, S4_SYSTEMCTL_REPORTED

# The default checks, and the one that names why a guest booted instead of resuming.
NAMING_CHECKS = (*DEFAULT_CHECKS, resumed_from_image)


@pytest.fixture
def swapfile_ext4(harness_session: HarnessSession) -> str:
    """The guest's kernel command line, where the run's guest is the swapfile-ext4 profile."""
    if harness_session.image.profile != "swapfile-ext4":
        pytest.skip("needs --guest-profile swapfile-ext4")
    return harness_session.image.cmdline


@pytest.mark.s4
@pytest.mark.parametrize(
    "transition",
    [S4_SYSTEMCTL, S4_AGENT, HYBRID_SYSTEMCTL_WAKE, HYBRID_AGENT_WAKE],
    ids=lambda t: f"swapfile-{t.id}",
)
def test_swapfile_ext4_resumes(
    swapfile_ext4: str, power_cycle: PowerCycle, transition: Transition
) -> None:
    """S4 and hybrid sleep to the swapfile on the ext4 root, resumed from it."""
    expect_pass(power_cycle(transition))


def test_swapfile_ext4_layout(swapfile_ext4: str, guest: Machine) -> None:
    """Swap is the swapfile alone, and resume_offset is its first block as filefrag says."""
    swaps = guest.run("swapon --show=NAME,TYPE --noheadings").stdout.split()
    assert swaps == ["/swapfile", "file"], swaps
    frag = guest.run("filefrag -v /swapfile").stdout
    first = re.search(r"^\s*0:\s+0\.\.\s*\d+:\s+(\d+)\.\.", frag, re.MULTILINE)
    assert first is not None, frag
    cmdline = guest.run("cat /proc/cmdline").stdout
    assert f"resume=/dev/vda resume_offset={first.group(1)} " in cmdline, (cmdline, frag)


def _named(group_cycle: GroupCycle, transition: Transition, machine: Machine) -> CycleOutcome:
    (series,) = group_cycle(transition, [machine], checks=NAMING_CHECKS)
    return series.last


@pytest.mark.selftest
def test_stale_resume_offset_is_refused_by_systemd(
    swapfile_ext4: str, guest: Machine, group_cycle: GroupCycle
) -> None:
    """The swapfile recreated elsewhere: systemd will not hibernate to a swap that resume=
    and resume_offset do not name, and says so."""
    swapfile_recreated().apply(guest)
    outcome = _named(group_cycle, S4_SYSTEMCTL_REPORTED, guest)
    assert outcome.verdict is Verdict.UNSUPPORTED, outcome.reason
    assert "Call to Hibernate failed" in outcome.reason, outcome.reason


@pytest.mark.selftest
def test_stale_resume_offset_boots_instead_of_resuming_named(
    swapfile_ext4: str, guest: Machine, group_cycle: GroupCycle
) -> None:
    """The swapfile recreated elsewhere and the kernel told its new place at run time: the
    image is written there, and the next boot, looking where the command line says, does
    not find it."""
    swapfile_recreated().apply(guest)
    kernel_told_resume_location().apply(guest)
    outcome = _named(group_cycle, S4_SYSFS_REPORTED, guest)
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    stale = re.search(r"resume_offset=(\d+)", swapfile_ext4)
    assert stale is not None
    assert (
        "resumed_from_image: rebooted, not resumed: the kernel said 'PM: Image not found"
        in outcome.reason
    ), outcome.reason
    assert f"looking at resume=/dev/vda resume_offset={stale.group(1)}" in outcome.reason


@pytest.mark.selftest
def test_missing_resume_offset_boots_instead_of_resuming_named(
    swapfile_ext4: str, guest_factory: Callable[..., Machine], group_cycle: GroupCycle
) -> None:
    """resume_offset left off the command line: the image is written to the swapfile (the
    kernel told its place at run time), the next boot reads the root disk's start."""
    machine = guest_factory("no-resume-offset", cmdline_args(swapfile_ext4, resume_offset=None))
    machine.boot()
    kernel_told_resume_location().apply(machine)
    outcome = _named(group_cycle, S4_SYSFS_REPORTED, machine)
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert "looking at resume=/dev/vda (no resume_offset)" in outcome.reason, outcome.reason


@pytest.mark.selftest
def test_empty_resume_boots_instead_of_resuming_named(
    swapfile_ext4: str, guest_factory: Callable[..., Machine], group_cycle: GroupCycle
) -> None:
    """resume= empty: systemd finds the swapfile and hibernates to it, and nothing looks for
    the image at the next boot (the silent cold boot of systemd#14249)."""
    args = cmdline_args(swapfile_ext4, resume="", resume_offset=None)
    machine = guest_factory("empty-resume", args)
    machine.boot()
    outcome = _named(group_cycle, S4_SYSTEMCTL, machine)
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert "rebooted, not resumed: resume= is empty on the kernel command line" in outcome.reason, (
        outcome.reason
    )


@pytest.mark.selftest
def test_only_zram_is_unsupported_in_systemds_words(
    swapfile_ext4: str, guest: Machine, group_cycle: GroupCycle
) -> None:
    """Every disk swap off and zram on: systemd never hibernates to zram, and says so."""
    only_zram().apply(guest)
    outcome = _named(group_cycle, S4_SYSTEMCTL_REPORTED, guest)
    assert outcome.verdict is Verdict.UNSUPPORTED, outcome.reason
    assert "Not enough swap space for hibernation" in outcome.reason, outcome.reason
