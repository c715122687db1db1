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
from harness.cycle.faults import BEFORE_REQUEST, Fault
from harness.cycle.swap_misconfig import (
    kernel_told_resume_location,
    only_zram,
    swapfile_recreated,
)
from harness.errors import SetupError
from harness.machines.protocol import Machine
from harness.plugin import GroupCycle, PowerCycle, expect_pass
from harness.session import HarnessSession
from harness.setup.guest_profiles import cmdline_args
from harness.transitions.catalogue import (
    HYBRID_AGENT_WAKE,
    HYBRID_SYSTEMCTL_POWERLOSS,
    HYBRID_SYSTEMCTL_WAKE,
    S4_AGENT,
    S4_SYSTEMCTL,
)
from harness.transitions.logind import SUSPEND_THEN_HIBERNATE
from harness.transitions.parts import Transition
from harness.transitions.refusals import S4_SYSFS_REPORTED, S4_SYSTEMCTL_REPORTED

# The default checks, and the one that names why a guest booted instead of resuming.
NAMING_CHECKS = (*DEFAULT_CHECKS, resumed_from_image)
# Every way into hibernation each profile must resume from: S4 by systemctl and by the agent,
# hybrid sleep woken from RAM and, its image read back from the profile's swap, after a power
# loss in RAM.
RESUMING = [
    S4_SYSTEMCTL,
    S4_AGENT,
    HYBRID_SYSTEMCTL_WAKE,
    HYBRID_AGENT_WAKE,
    HYBRID_SYSTEMCTL_POWERLOSS,
]


@pytest.fixture
def swapfile_ext4(harness_session: HarnessSession) -> str:
    """The guest's kernel command line, where the run's guest is the swapfile-ext4 profile."""
    if harness_session.image.profile != "swapfile-ext4":
        pytest.skip("needs --guest-profile swapfile-ext4")
    return harness_session.image.cmdline


@pytest.mark.s4
@pytest.mark.parametrize(
    "transition",
    RESUMING,
    ids=lambda t: f"swapfile-{t.id}",
)
def test_swapfile_ext4_resumes(
    swapfile_ext4: str, power_cycle: PowerCycle, transition: Transition
) -> None:
    """S4 and hybrid sleep (woken from RAM, or after a power loss) to the swapfile on the ext4
    root, resumed from it."""
    expect_pass(power_cycle(transition))


@pytest.mark.s4
def test_swapfile_ext4_suspend_then_hibernate(swapfile_ext4: str, power_cycle: PowerCycle) -> None:
    """systemctl suspend-then-hibernate: in RAM, the RTC wakes it, then to the swapfile."""
    expect_pass(power_cycle(SUSPEND_THEN_HIBERNATE))


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


# fedora-like: a btrfs root, the swapfile in the subvolume /swap, zram swap beside it, booted
# by OVMF through systemd-boot, a dracut initrd whose systemd resumes the image.

# As btrfs's Swapfile page makes one: btrfs filesystem mkswapfile (NOCOW, preallocated).
RECREATE_BTRFS_SWAPFILE = """set -e
path=$(awk '$2 == "file" {print $1; exit}' /proc/swaps)
[ -n "$path" ] || { echo "no swapfile in /proc/swaps" >&2; exit 1; }
btrfs filesystem mkswapfile --size "$(stat -c %s "$path")" "$path.new" >/dev/null
swapoff "$path"
mv "$path.new" "$path"
swapon "$path"
"""

# What systemd-sleep writes before it hibernates: the swapfile's device and its first page,
# as btrfs reports them (filefrag shows btrfs's logical addresses, not the device's, and a
# btrfs mount's MAJ:MIN is the subvolume's anonymous device, not the partition's).
TELL_KERNEL_BTRFS = """set -e
path=$(awk '$2 == "file" {print $1; exit}' /proc/swaps)
btrfs inspect-internal map-swapfile -r "$path" > /sys/power/resume_offset
device=$(findmnt -no SOURCE -T "$path" | sed 's/\\[.*//')
lsblk -dno MAJ:MIN "$device" | tr -d ' ' > /sys/power/resume
"""


# systemd-boot's LoaderInfo (the loader's name and version), in systemd's vendor namespace.
LOADER_INFO = "/sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"


def _guest_script(what: str, script: str) -> Fault:
    def apply(machine: Machine) -> None:
        result = machine.run(script)
        if not result.ok:
            raise SetupError(f"fault injection ({what}) failed: {result.stderr.strip()[-300:]}")

    return Fault(what, apply, BEFORE_REQUEST)


UEFI_BTRFS = ("fedora-like", "efi-hibernate-location")


@pytest.fixture
def uefi_btrfs(harness_session: HarnessSession) -> str:
    """The guest's kernel command line, where the run's guest is fedora-like or
    efi-hibernate-location (the same layout, the latter with no resume= at all)."""
    if harness_session.image.profile not in UEFI_BTRFS:
        pytest.skip(f"needs --guest-profile {' or '.join(UEFI_BTRFS)}")
    return harness_session.image.cmdline


@pytest.fixture
def fedora_like(uefi_btrfs: str, harness_session: HarnessSession) -> str:
    if harness_session.image.profile != "fedora-like":
        pytest.skip("needs --guest-profile fedora-like")
    return uefi_btrfs


@pytest.fixture
def efi_hibernate_location(uefi_btrfs: str, harness_session: HarnessSession) -> str:
    if harness_session.image.profile != "efi-hibernate-location":
        pytest.skip("needs --guest-profile efi-hibernate-location")
    return uefi_btrfs


@pytest.mark.s4
@pytest.mark.parametrize(
    "transition",
    RESUMING,
    ids=lambda t: f"btrfs-{t.id}",
)
def test_uefi_btrfs_resumes(
    uefi_btrfs: str, power_cycle: PowerCycle, transition: Transition
) -> None:
    """S4 and hybrid sleep to the swapfile on btrfs with zram beside it, resumed by the
    initrd's systemd-hibernate-resume (from resume= and resume_offset=, or from the EFI
    variable HibernateLocation where the command line names neither)."""
    expect_pass(power_cycle(transition))


@pytest.mark.s4
def test_uefi_btrfs_suspend_then_hibernate(uefi_btrfs: str, power_cycle: PowerCycle) -> None:
    """systemctl suspend-then-hibernate: in RAM, the RTC wakes it, then to the swapfile and
    resumed from it."""
    expect_pass(power_cycle(SUSPEND_THEN_HIBERNATE))


def test_uefi_btrfs_layout(uefi_btrfs: str, guest: Machine) -> None:
    """zram swap before the swapfile; resume_offset, where the command line has one, is what
    map-swapfile -r says; the root is the btrfs subvolume root; systemd-boot booted it."""
    swaps = guest.run("swapon --show=NAME,TYPE,PRIO --noheadings").stdout.split("\n")
    table = {line.split()[0]: line.split()[1:] for line in swaps if line.strip()}
    assert table["/dev/zram0"] == ["partition", "100"], table
    assert table["/swap/swapfile"][0] == "file" and int(table["/swap/swapfile"][1]) < 0, table
    offset = guest.run("btrfs inspect-internal map-swapfile -r /swap/swapfile").stdout.strip()
    cmdline = guest.run("cat /proc/cmdline").stdout
    if "resume=" in uefi_btrfs:
        assert f" resume_offset={offset} " in cmdline, (offset, cmdline)
    else:
        assert "resume" not in cmdline, cmdline
    root = guest.run("findmnt -no FSTYPE,OPTIONS /").stdout
    assert root.startswith("btrfs ") and "subvol=/root" in root, root
    loader = guest.run(f"tr -d '\\0' < {LOADER_INFO}").stdout
    assert "systemd-boot" in loader, loader


@pytest.mark.selftest
def test_fedora_like_stale_resume_offset_boots_instead_of_resuming_named(
    fedora_like: str, guest: Machine, group_cycle: GroupCycle
) -> None:
    """The swapfile made again with btrfs's mkswapfile (other blocks) and the kernel told its
    new place: the image is written there, and the next boot, whose initrd hands the kernel
    the command line's stale resume_offset, does not find it."""
    _guest_script("swapfile recreated (btrfs mkswapfile)", RECREATE_BTRFS_SWAPFILE).apply(guest)
    _guest_script("the swapfile's place told to the kernel", TELL_KERNEL_BTRFS).apply(guest)
    outcome = _named(group_cycle, S4_SYSFS_REPORTED, guest)
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    stale = re.search(r"resume_offset=(\d+)", fedora_like)
    assert stale is not None
    assert "resumed_from_image: rebooted, not resumed: the kernel said" in outcome.reason, (
        outcome.reason
    )
    assert f"resume_offset={stale.group(1)}" in outcome.reason, outcome.reason


@pytest.mark.selftest
def test_efi_hibernate_location_unwritten_boots_instead_of_resuming_named(
    efi_hibernate_location: str, guest: Machine, group_cycle: GroupCycle
) -> None:
    """Hibernation without systemd-sleep (the kernel told the swapfile's place, then
    ``echo disk``): no HibernateLocation is written, and with no resume= either, nothing
    looks for the image at the next boot."""
    _guest_script("the swapfile's place told to the kernel", TELL_KERNEL_BTRFS).apply(guest)
    outcome = _named(group_cycle, S4_SYSFS_REPORTED, guest)
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert "rebooted, not resumed: resume= is absent on the kernel command line" in (
        outcome.reason
    ), outcome.reason


# luks-swap: swap in a LUKS2 partition of the root disk, unlocked in the initramfs by a key
# file it carries; the image is written to and read back from /dev/mapper/cryptswap.


@pytest.fixture
def luks_swap(harness_session: HarnessSession) -> str:
    """The guest's kernel command line, where the run's guest is the luks-swap profile."""
    if harness_session.image.profile != "luks-swap":
        pytest.skip("needs --guest-profile luks-swap")
    return harness_session.image.cmdline


@pytest.mark.s4
@pytest.mark.parametrize(
    "transition",
    RESUMING,
    ids=lambda t: f"luks-{t.id}",
)
def test_luks_swap_resumes(luks_swap: str, power_cycle: PowerCycle, transition: Transition) -> None:
    """S4 and hybrid sleep to the encrypted swap, resumed once the initramfs unlocked it."""
    expect_pass(power_cycle(transition))


@pytest.mark.s4
def test_luks_swap_suspend_then_hibernate(luks_swap: str, power_cycle: PowerCycle) -> None:
    """systemctl suspend-then-hibernate: in RAM, the RTC wakes it, then to the encrypted swap
    and resumed once the initramfs unlocked it."""
    expect_pass(power_cycle(SUSPEND_THEN_HIBERNATE))


def test_luks_swap_layout(luks_swap: str, guest: Machine) -> None:
    """The only swap is the mapping of the LUKS2 partition, unlocked with the key file."""
    swaps = guest.run("swapon --show=NAME,TYPE --noheadings").stdout.split()
    assert swaps in (["/dev/dm-0", "partition"], ["/dev/mapper/cryptswap", "partition"]), swaps
    status = guest.run("cryptsetup status cryptswap").stdout
    assert re.search(r"type:\s+LUKS2", status) and "/dev/vda2" in status, status
    assert "resume=/dev/mapper/cryptswap " in guest.run("cat /proc/cmdline").stdout


@pytest.mark.selftest
def test_luks_swap_empty_resume_boots_instead_of_resuming_named(
    luks_swap: str, guest_factory: Callable[..., Machine], group_cycle: GroupCycle
) -> None:
    """resume= empty: the image is written to the encrypted swap and nothing looks for it."""
    machine = guest_factory("empty-resume", cmdline_args(luks_swap, resume=""))
    machine.boot()
    outcome = _named(group_cycle, S4_SYSTEMCTL, machine)
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert "rebooted, not resumed: resume= is empty on the kernel command line" in outcome.reason
