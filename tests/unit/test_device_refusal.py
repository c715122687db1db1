"""A device whose driver refuses a sleep is named in the verdict, S3 or S4 and whatever the
driver: its bus id and driver as the guest kernel names it, what it is by QEMU's list of PCI
devices, the error with its meaning, the callback that returned it and the driver's own words.
A refused freeze (S4) is the verdict as soon as the console says so.

The consoles and QEMU's ``info pci`` are real: sid (7.2.13+deb14) and bookworm (6.1.0-57)
guests with --share virtiofs under QEMU 7.2.22 (tests/unit/data)."""

import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks.verdict import Verdict
from harness.cycle.run import run_cycle
from harness.errors import SuspendNotEntered
from harness.guest.console.diagnosis import (
    DeviceRefusal,
    device_refused_sleep,
    errno_meaning,
    find_device_refusal,
)
from harness.machines.pci_identity import pci_identity
from harness.results import known_issues
from harness.transitions.catalogue import S3_AGENT, S4_AGENT, S4_ENTRY
from harness.transitions.marks import Marks
from tests.unit.fake_machine import FakeMachine

DATA = Path(__file__).parent / "data"
S4_CONSOLE = (DATA / "console-virtiofs-s4-freeze-refused.log").read_text()
S4_CONSOLE_6_1 = (DATA / "console-virtiofs-s4-freeze-refused-6.1.log").read_text()
S3_CONSOLE = (DATA / "console-virtiofs-s3-suspend-refused.log").read_text()
INFO_PCI = (DATA / "info-pci-virtiofs.txt").read_text()

VIRTIOFS = "a virtio fs device, guest driver virtiofs, QEMU id 'share'"
S4_NAMED = (
    f"virtio-pci 0000:00:09.0 ({VIRTIOFS}) failed to freeze: error -95 "
    "(virtio-fs: suspend/resume not yet supported); -95 is EOPNOTSUPP, operation not "
    "supported, returned by virtio_pci_freeze"
)


@pytest.mark.parametrize("console", [S4_CONSOLE, S4_CONSOLE_6_1], ids=["7.2.13", "6.1.0-57"])
def test_a_refused_freeze_is_parsed_from_a_real_s4_console(console: str) -> None:
    assert find_device_refusal(console.splitlines()) == DeviceRefusal(
        device="0000:00:09.0",
        driver="virtio-pci",
        action="freeze",
        error=-95,
        callback="virtio_pci_freeze",
        said="virtio-fs: suspend/resume not yet supported",
    )


def test_a_refused_suspend_is_parsed_from_a_real_s3_console() -> None:
    refusal = find_device_refusal(S3_CONSOLE.splitlines())
    assert refusal is not None
    assert (refusal.name, refusal.action, refusal.callback) == (
        "virtio-pci 0000:00:09.0",
        "suspend",
        "virtio_pci_suspend",
    )
    # The words the virtiofs known issue matches stay as they were.
    assert device_refused_sleep(S3_CONSOLE.splitlines()).startswith(
        "virtio-pci 0000:00:09.0 failed to suspend: error -95 "
        "(virtio-fs: suspend/resume not yet supported); -95 is EOPNOTSUPP"
    )


def test_older_kernels_callback_with_its_offset_and_module() -> None:
    lines = [
        "[   13.543279] virtio-fs: suspend/resume not yet supported",
        "[   13.543553] virtio-pci 0000:00:09.0: PM: pci_pm_suspend(): virtio_pci_freeze+0x0/0x50"
        " [virtio_pci] returns -95",
        "[   13.544277] virtio-pci 0000:00:09.0: PM: failed to suspend async: error -95",
    ]
    refusal = find_device_refusal(lines)
    assert refusal is not None and refusal.callback == "virtio_pci_freeze"


def test_any_driver_refusing_any_phase_is_named_the_same_way() -> None:
    lines = [
        "[   30.100000] Freezing remaining freezable tasks completed (elapsed 0.001 seconds)",
        "[   30.200000] e1000e 0000:00:02.0: PM: pci_pm_freeze(): e1000e_pm_freeze+0x0/0xe0"
        " [e1000e] returns -16",
        "[   30.200100] e1000e 0000:00:02.0: PM: dpm_run_callback(): pci_pm_freeze returns -16",
        "[   30.200200] e1000e 0000:00:02.0: PM: failed to freeze async: error -16",
    ]
    # The driver said nothing of its own: the freezer's line is not taken for its words.
    assert device_refused_sleep(lines) == (
        "e1000e 0000:00:02.0 failed to freeze: error -16; -16 is EBUSY, device or resource "
        "busy, returned by e1000e_pm_freeze"
    )
    noirq = ["nvme 0000:00:04.0: PM: failed to suspend noirq: error -5"]
    assert device_refused_sleep(noirq) == (
        "nvme 0000:00:04.0 failed to suspend: error -5; -5 is EIO, input/output error"
    )
    # A device on the virtio bus itself, named by its virtio driver: no PCI address to look up.
    virtio_bus = ["virtiofs virtio6: PM: failed to freeze: error -95"]
    refusal = find_device_refusal(virtio_bus)
    assert refusal is not None and refusal.name == "virtiofs virtio6"
    assert pci_identity(INFO_PCI, refusal.device) == ""
    old_kernel = ["PM: Device 0000:00:02.0 failed to freeze async: error -16"]
    refusal = find_device_refusal(old_kernel)
    assert refusal is not None and (refusal.name, refusal.action) == ("0000:00:02.0", "freeze")
    assert find_device_refusal(["PM: hibernation: hibernation entry"]) is None


def test_errno_meaning_by_the_kernels_names() -> None:
    assert errno_meaning(-95) == "EOPNOTSUPP, operation not supported"
    assert errno_meaning(-524) == "ENOTSUPP, operation is not supported"  # kernel-internal
    assert errno_meaning(-4242) == "errno 4242"


def test_what_a_pci_device_is_by_qemus_info_pci() -> None:
    assert pci_identity(INFO_PCI, "0000:00:09.0") == VIRTIOFS
    assert pci_identity(INFO_PCI, "00:03.0") == (
        "a virtio block device, guest driver virtio_blk, QEMU id 'root-disk'"
    )  # transitional: its type is in the subsystem id
    assert (
        pci_identity(INFO_PCI, "0000:00:08.0") == "a virtio entropy device, guest driver virtio_rng"
    )
    assert pci_identity(INFO_PCI, "0000:00:02.0") == "VGA controller 1234:1111"
    assert pci_identity(INFO_PCI, "0000:01:00.0") == ""
    assert pci_identity(INFO_PCI, "virtio6") == ""


def refusing_guest(tmp_path: Path, console: str) -> FakeMachine:
    """A guest whose kernel prints ``console`` when asked to sleep; QEMU lists its PCI devices."""
    machine = FakeMachine(tmp_path, sleeps=False)
    machine.stuck_at = console.encode()
    machine.hmp = lambda command: INFO_PCI if command == "info pci" else ""  # type: ignore[method-assign]
    machine.timeouts = replace(machine.timeouts, hibernate=60.0, suspend_entry=60.0)
    return machine


def test_an_s4_entry_ends_at_the_refused_freeze(tmp_path: Path) -> None:
    machine = refusing_guest(tmp_path, "")
    marks = Marks.now(machine)
    lines = S4_CONSOLE.splitlines(keepends=True)
    # Up to the PM core's line: before the kernel thaws and says it is back.
    machine.console.feed(
        "".join(lines[: lines.index(next(ln for ln in lines if "async" in ln)) + 1]).encode()
    )
    started = time.monotonic()
    with pytest.raises(SuspendNotEntered) as raised:
        S4_ENTRY.wait(machine, marks, None, "guest agent guest-suspend-disk")
    assert time.monotonic() - started < 5  # the console line, not the hibernate limit
    assert str(raised.value) == (
        f"suspend-entry: guest agent guest-suspend-disk was sent, but {S4_NAMED}"
    )
    assert raised.value.evidence == {
        "refused_device": "virtio-pci 0000:00:09.0",
        "refused_action": "freeze",
    }


def test_a_virtiofs_s4_fails_naming_the_device_and_is_the_known_issue(tmp_path: Path) -> None:
    outcome = run_cycle(refusing_guest(tmp_path, S4_CONSOLE), S4_AGENT)
    assert outcome.verdict is Verdict.FAIL
    assert outcome.reason.startswith(
        f"suspend-entry: guest agent guest-suspend-disk was sent, but {S4_NAMED}"
    ), outcome.reason
    assert outcome.cause == "virtio-pci 0000:00:09.0 refused to freeze"
    issue = known_issues.find(
        known_issues.load(), S4_AGENT.id, "7.2.13+deb14-amd64", outcome.reason, cause=outcome.cause
    )
    assert issue is not None and issue.summary.startswith("virtio-fs guests cannot sleep")
    other = outcome.reason.replace("virtio-fs: suspend/resume not yet supported", "busy")
    assert (
        known_issues.find(known_issues.load(), S4_AGENT.id, "7.2", other, cause=outcome.cause)
        is None
    )


def test_a_virtiofs_s3_keeps_its_s2idle_cause_and_names_the_device(tmp_path: Path) -> None:
    outcome = run_cycle(refusing_guest(tmp_path, S3_CONSOLE), S3_AGENT)
    assert outcome.verdict is Verdict.FAIL
    assert outcome.cause == "entered s2idle, not deep"
    assert (
        "entered s2idle instead of S3 (deep) ('PM: suspend entry (s2idle)') after virtio-pci "
        f"0000:00:09.0 ({VIRTIOFS}) failed to suspend: error -95 (virtio-fs: suspend/resume not "
        "yet supported); -95 is EOPNOTSUPP, operation not supported, returned by "
        "virtio_pci_suspend"
    ) in outcome.reason, outcome.reason
    issue = known_issues.find(
        known_issues.load(), S3_AGENT.id, "7.2.13+deb14-amd64", outcome.reason, cause=outcome.cause
    )
    assert issue is not None and issue.summary.startswith("virtio-fs guests cannot sleep")


def test_a_refused_suspend_without_fallback_is_named_when_the_guest_is_back(tmp_path: Path) -> None:
    console = S3_CONSOLE.split("PM: suspend entry (s2idle)")[0]  # no other state tried
    outcome = run_cycle(refusing_guest(tmp_path, console), S3_AGENT)
    assert outcome.verdict is Verdict.FAIL
    assert "but the platform never saw suspended after virtio-pci 0000:00:09.0 (" in outcome.reason
    assert outcome.cause == "virtio-pci 0000:00:09.0 refused to suspend"
