"""S3: the guest suspends to RAM, is woken, and carries on where it was."""

import pytest

from harness.plugin import PowerCycle, expect_pass
from harness.transitions.catalogue import S3_AGENT, S3_RTC, S3_SYSFS, S3_SYSTEMCTL
from harness.transitions.parts import Transition


@pytest.mark.s3
@pytest.mark.parametrize("transition", [S3_SYSTEMCTL, S3_AGENT, S3_SYSFS], ids=lambda t: t.id)
def test_suspend_to_ram(power_cycle: PowerCycle, transition: Transition) -> None:
    """Requested by systemctl, by the agent or through /sys/power/state; woken by QMP
    system_wakeup."""
    expect_pass(power_cycle(transition))


@pytest.mark.s3
@pytest.mark.cycles(3)
def test_suspend_to_ram_repeated(power_cycle: PowerCycle) -> None:
    """Several cycles on one boot, each proven by its own events and checks."""
    expect_pass(power_cycle(S3_AGENT))


@pytest.mark.s3
@pytest.mark.rtc
def test_rtc_wake(power_cycle: PowerCycle) -> None:
    """rtcwake -m mem in the guest: the RTC alarm wakes it, the host sends no wake-up."""
    expect_pass(power_cycle(S3_RTC))
