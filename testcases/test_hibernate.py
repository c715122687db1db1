"""S4: the guest hibernates to its swap disk, powers off, and resumes when relaunched."""

import pytest

from harness.plugin import PowerCycle, expect_pass
from harness.transitions import S4_AGENT, S4_SYSTEMCTL, Transition


@pytest.mark.s4
@pytest.mark.parametrize("transition", [S4_SYSTEMCTL, S4_AGENT], ids=lambda t: t.id)
def test_hibernate(power_cycle: PowerCycle, transition: Transition) -> None:
    """Requested in the guest or through the agent; resumed by relaunching QEMU."""
    expect_pass(power_cycle(transition))
