"""The device axis: S3 and S4 on the guest's NIC and data disk of the session's device profile
(``--nic``, ``--disk``), and its USB devices, display and balloon where it has them
(``--usb``, ``--display``, ``--balloon``), and their checks shown failing on a fault of that
device, naming it.

With the defaults (virtio-net, virtio-blk) these run on the session's usual guest; with
``--nic e1000e --disk nvme`` (or ahci, virtio-scsi) on a guest with those devices, whose cell
id names them. The checks find the NIC and the data disk in the guest whatever their model.
"""

import pytest

from harness.checks.peripherals import display_name
from harness.checks.verdict import CycleSeries, Verdict
from harness.cycle.faults import disk_io_errors, link_down
from harness.cycle.peripheral_faults import (
    balloon_driver_unbound,
    display_driver_unbound,
    usb_keyboard_removed,
)
from harness.plugin import PowerCycle, expect_judged, expect_pass
from harness.session import HarnessSession
from harness.transitions.catalogue import S3_AGENT, S4_AGENT
from harness.transitions.parts import Transition

# The guest's name for each device's driver, as the checks report it.
NIC_DRIVERS = {"virtio-net": "virtio_net", "e1000e": "e1000e"}
DISK_DRIVERS = {
    "virtio-blk": "virtio_blk",
    "nvme": "nvme",
    "ahci": "ahci",
    "virtio-scsi": "virtio_scsi",
}


def _drivers(harness_session: HarnessSession) -> tuple[str, str]:
    s = harness_session.settings
    return NIC_DRIVERS[s.nic], DISK_DRIVERS[s.disk]


@pytest.mark.parametrize(
    "transition",
    [pytest.param(S3_AGENT, marks=pytest.mark.s3), pytest.param(S4_AGENT, marks=pytest.mark.s4)],
    # Not the transition's id: `-k s3-agent` selects the suite's own agent S3 case alone.
    ids=lambda t: "devices-" + t.id.split("-")[0],
)
def test_devices_sleep(
    power_cycle: PowerCycle, harness_session: HarnessSession, transition: Transition
) -> None:
    """S3, or S4 (resumed from its image), with the profile's NIC and data disk: every check
    passes, on those devices."""
    series = power_cycle(transition)
    expect_pass(series)
    outcome = series.last
    nic, disk = _drivers(harness_session)
    details = {c.name: c.detail for c in outcome.checks}
    assert details["virtio_net_healthy"].startswith(f"{nic} "), details
    assert details["virtio_blk_healthy"].startswith(f"{disk} data disk "), details
    # The USB devices, display and balloon, where the profile has them, checked on them.
    s = harness_session.settings
    expected = {
        "usb_healthy": s.usb,
        "display_updates": bool(s.display),
        "balloon_stats": s.balloon,
    }
    assert {name for name, wanted in expected.items() if wanted} <= set(details), details
    if s.display:
        assert details["display_updates"].startswith(display_name(s.display)), details


@pytest.mark.s3
def test_devices_link_down_names_the_nic(
    power_cycle: PowerCycle, harness_session: HarnessSession
) -> None:
    """QMP set_link off right after the wake: the network check fails naming the NIC. A
    virtio NIC's guest sees the link down at once; while an e1000e's driver resumes, QEMU's
    e1000e tells the guest the link is up although the host's is down, so there the check
    fails once the echo over ssh gets nothing back and the NIC received nothing meanwhile
    (its rx_packets, read through the agent), not after the ssh commands' bound."""
    series = power_cycle(S3_AGENT, faults=[link_down()])
    expect_judged(series)
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    failed = {c.name: c.detail for c in outcome.failed_checks}
    nic, _ = _drivers(harness_session)
    detail = failed["virtio_net_healthy"]
    assert detail.startswith(f"{nic} "), failed
    assert "link down" in detail or "received nothing" in detail, failed


@pytest.mark.s3
def test_devices_disk_eio_names_the_disk(
    power_cycle: PowerCycle, harness_session: HarnessSession
) -> None:
    """blkdebug EIO under the data disk while the guest sleeps: the disk check fails naming
    the disk's controller."""
    series = power_cycle(S3_AGENT, faults=[disk_io_errors()])
    expect_judged(series)
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    failed = {c.name: c.detail for c in outcome.failed_checks}
    _, disk = _drivers(harness_session)
    assert failed["virtio_blk_healthy"].startswith(f"{disk} data disk "), failed


def _peripheral_failure(series: CycleSeries, check: str) -> str:
    expect_judged(series)
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    failed = {c.name: c.detail for c in outcome.failed_checks}
    assert check in failed, failed
    return failed[check]


@pytest.mark.s3
def test_usb_keyboard_removed_while_asleep_is_named(
    power_cycle: PowerCycle, harness_session: HarnessSession
) -> None:
    """The USB keyboard unplugged (QMP device_del) while the guest sleeps: the USB check fails
    naming the keyboard (gone from the bus, or no key event reaching the guest)."""
    if not harness_session.settings.usb:
        pytest.skip("needs --usb")
    detail = _peripheral_failure(
        power_cycle(S3_AGENT, faults=[usb_keyboard_removed()]), "usb_healthy"
    )
    assert "QEMU USB Keyboard (usb-kbd usb-kbd0" in detail, detail


@pytest.mark.s3
def test_display_driver_unbound_is_named(
    power_cycle: PowerCycle, harness_session: HarnessSession
) -> None:
    """The guest's DRM driver unbound from the display after the wake: nothing the guest
    draws reaches the screen (its framebuffer is gone), and the display check fails naming
    the display device."""
    display = harness_session.settings.display
    if not display:
        pytest.skip("needs --display")
    detail = _peripheral_failure(
        power_cycle(S3_AGENT, faults=[display_driver_unbound(display)]), "display_updates"
    )
    assert detail.startswith(display_name(display)), detail
    assert "after the wake" in detail, detail


@pytest.mark.s3
def test_balloon_driver_unbound_is_named(
    power_cycle: PowerCycle, harness_session: HarnessSession
) -> None:
    """The guest's virtio_balloon driver unbound before the sleep: its statistics stop, and
    the balloon check fails naming the balloon."""
    if not harness_session.settings.balloon:
        pytest.skip("needs --balloon")
    detail = _peripheral_failure(
        power_cycle(S3_AGENT, faults=[balloon_driver_unbound()]), "balloon_stats"
    )
    assert detail.startswith("virtio-balloon-pci balloon0"), detail
    assert "statistics stopped" in detail, detail
