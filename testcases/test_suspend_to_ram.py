"""S3: the guest suspends to RAM, the host wakes it, and it carries on where it was."""

import pytest

from harness.plugin import PowerCycle, expect_pass
from harness.transitions import S3_AGENT, S3_SYSTEMCTL, Transition


@pytest.mark.s3
@pytest.mark.parametrize("transition", [S3_SYSTEMCTL, S3_AGENT], ids=lambda t: t.id)
def test_suspend_to_ram(power_cycle: PowerCycle, transition: Transition) -> None:
    """Requested in the guest or through the agent; woken by QMP system_wakeup."""
    expect_pass(power_cycle(transition))
