"""Hybrid sleep: the image is written to disk, then the guest sleeps in RAM. Both endings:
woken from RAM, or power lost while asleep so that the disk image must serve."""

import pytest

from harness.plugin import PowerCycle, expect_pass
from harness.transitions.catalogue import (
    HYBRID_AGENT_POWERLOSS,
    HYBRID_AGENT_WAKE,
    HYBRID_SYSTEMCTL_POWERLOSS,
    HYBRID_SYSTEMCTL_WAKE,
)
from harness.transitions.parts import Transition


@pytest.mark.hybrid
@pytest.mark.parametrize(
    "transition",
    [HYBRID_SYSTEMCTL_WAKE, HYBRID_SYSTEMCTL_POWERLOSS, HYBRID_AGENT_WAKE, HYBRID_AGENT_POWERLOSS],
    ids=lambda t: t.id,
)
def test_hybrid_sleep(power_cycle: PowerCycle, transition: Transition) -> None:
    expect_pass(power_cycle(transition))
