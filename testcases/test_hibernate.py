"""S4: the guest hibernates to its swap disk and is resumed, proven resumed and not rebooted."""

import pytest

from harness.plugin import PowerCycle, expect_pass
from harness.transitions.catalogue import (
    DISK_PLATFORM,
    DISK_REBOOT,
    DISK_SHUTDOWN,
    DISK_SUSPEND,
    DISK_TEST_RESUME,
    S4_AGENT,
    S4_SYSTEMCTL,
)
from harness.transitions.parts import Transition


@pytest.mark.s4
@pytest.mark.parametrize("transition", [S4_SYSTEMCTL, S4_AGENT], ids=lambda t: t.id)
def test_hibernate(power_cycle: PowerCycle, transition: Transition) -> None:
    """Requested by systemctl or by the agent; resumed by relaunching QEMU."""
    expect_pass(power_cycle(transition))


@pytest.mark.s4
@pytest.mark.disk_mode
@pytest.mark.parametrize(
    "transition",
    [DISK_PLATFORM, DISK_SHUTDOWN, DISK_REBOOT, DISK_SUSPEND, DISK_TEST_RESUME],
    ids=lambda t: t.id,
)
def test_hibernation_mode(power_cycle: PowerCycle, transition: Transition) -> None:
    """Each mode of /sys/power/disk: platform and shutdown power off (relaunch), reboot resets
    and resumes in the same QEMU, suspend sleeps in RAM (system_wakeup), test_resume restores
    without powering off."""
    expect_pass(power_cycle(transition))
