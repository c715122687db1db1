"""Refusals in the refuser's words, the cause of a boot instead of a resume, and the kernel
command line variants: pure logic, and the guest-side scripts run by a real shell."""

import subprocess
from pathlib import Path

import pytest

from harness.checks.resume_source import resume_args, resumed_from_image
from harness.checks.verdict import CycleEvidence
from harness.cycle import swap_misconfig
from harness.setup.guest_profiles import cmdline_args
from harness.transitions.catalogue import S4_AGENT
from harness.transitions.refusals import (
    REPORTING,
    S4_SYSFS_REPORTED,
    S4_SYSTEMCTL_REPORTED,
    TAG,
    RefusalNamed,
    ReportedCommand,
    refusal,
    reported,
)

CMDLINE = "root=/dev/vda rw console=ttyS0,115200 resume=/dev/vda resume_offset=103050 quiet"


def test_systemds_refusal_is_unavailable_in_its_words() -> None:
    line = f"[ 30.1] {TAG}: exited 1 (free swap 262140 kB): Call to Hibernate failed: Not "
    line += "enough swap space for hibernation"
    unavailable, said = refusal(line, [line], "systemctl hibernate (in guest)")
    assert unavailable
    assert said == (
        "systemctl hibernate (in guest) refused: exited 1 (free swap 262140 kB): "
        "Call to Hibernate failed: Not enough swap space for hibernation"
    )


def test_the_kernels_refusal_is_a_failure_with_its_lines() -> None:
    console = [
        "[ 29.9] PM: hibernation: hibernation entry",
        "[ 30.1] PM: hibernation: Wrote 173156 kbytes in 0.11 seconds (1574.14 MB/s)",
        "[ 30.2] PM: hibernation: hibernation exit",
        f"[ 30.3] {TAG}: exited 1 (free swap 4092 kB): /bin/echo: write error: No space left "
        "on device",
    ]
    unavailable, said = refusal(console[-1], console, "echo disk > /sys/power/state (in guest)")
    assert not unavailable
    assert said.endswith(
        "write error: No space left on device; the kernel: "
        "[ 30.1] PM: hibernation: Wrote 173156 kbytes in 0.11 seconds (1574.14 MB/s)"
    ), said


def test_reported_transitions_keep_their_parts() -> None:
    assert S4_SYSTEMCTL_REPORTED.id == "s4-systemctl-reported"
    assert isinstance(S4_SYSTEMCTL_REPORTED.request, ReportedCommand)
    assert isinstance(S4_SYSTEMCTL_REPORTED.entry, RefusalNamed)
    assert S4_SYSFS_REPORTED.id == "s4-sysfs-reported"
    request = S4_SYSFS_REPORTED.request
    assert isinstance(request, ReportedCommand)
    assert "/bin/echo disk > /sys/power/state" in request.script
    with pytest.raises(TypeError, match="only an in-guest command"):
        reported(S4_AGENT)


@pytest.mark.parametrize("fails", [False, True])
def test_the_reporting_wrapper_reports_only_a_failure(tmp_path: Path, fails: bool) -> None:
    """Run by sh with /dev/kmsg, busctl and journalctl absent: the line goes nowhere, but
    the script must get there (and not report a success)."""
    kmsg = tmp_path / "kmsg"
    script = (
        REPORTING.replace("@SCRIPT@", "echo out; false" if fails else "true")
        .replace("@TAG@", TAG)
        .replace("/dev/kmsg", str(kmsg))
        .replace("/proc/meminfo", "/dev/null")
    )
    subprocess.run(["sh", "-c", script], check=False, timeout=30)
    said = kmsg.read_text() if kmsg.exists() else ""
    assert said == (f"<3>{TAG}: exited 1 (free swap  kB): out\n" if fails else "")


@pytest.mark.parametrize(
    "script",
    [
        swap_misconfig.RECREATE_SWAPFILE,
        swap_misconfig.TELL_KERNEL,
        swap_misconfig.ONLY_ZRAM,
        swap_misconfig.SMALL_SWAP,
    ],
)
def test_guest_scripts_parse(script: str) -> None:
    subprocess.run(["sh", "-n", "-c", script], check=True, timeout=30)


def test_cmdline_variants() -> None:
    assert cmdline_args(CMDLINE, resume_offset=None) == (
        "-append",
        "root=/dev/vda rw console=ttyS0,115200 resume=/dev/vda quiet",
    )
    assert cmdline_args(CMDLINE, resume="", resume_offset=None)[1].endswith("quiet resume=")
    assert resume_args(CMDLINE) == {"resume": "/dev/vda", "resume_offset": "103050"}
    assert resume_args("root=/dev/vda resume= noresume") == {"resume": "", "noresume": ""}


def _evidence(after_boot: str, cmdline: str, log: list[str]) -> CycleEvidence:
    ev = CycleEvidence("s4-sysfs-reported")
    ev.before = {"guest.boot_id": "a"}
    ev.after = {"guest.boot_id": after_boot, "guest.cmdline": cmdline}
    ev.kernel_log = log
    return ev


def test_a_resume_passes_and_a_boot_is_named_with_its_cause() -> None:
    assert resumed_from_image(_evidence("a", CMDLINE, [])).passed
    stale = resumed_from_image(
        _evidence("b", CMDLINE, ["kern  :debug : [ 7.1] PM: Image not found (code -22)"])
    )
    assert not stale.passed
    assert stale.detail == (
        "rebooted, not resumed: the kernel said 'PM: Image not found (code -22)', "
        "looking at resume=/dev/vda resume_offset=103050"
    )
    empty = resumed_from_image(_evidence("b", "root=/dev/vda resume=", []))
    assert empty.detail == (
        "rebooted, not resumed: resume= is empty on the kernel command line: "
        "nothing looked for the image"
    )
    silent = resumed_from_image(_evidence("b", "root=/dev/vda resume=/dev/vda", []))
    assert silent.detail.endswith(
        "looking at resume=/dev/vda (no resume_offset), said nothing of an image"
    )
