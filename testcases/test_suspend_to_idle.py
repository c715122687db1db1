"""States the platform does not see: suspend-to-idle (s2idle, freeze), and standby (S1).

QEMU emits no event for s2idle; entry and exit are proven from the guest kernel's own records,
and the guest is woken by a key press with the keyboard enabled as a wake source.
"""

import pytest

from harness.plugin import PowerCycle, expect_pass
from harness.transitions.catalogue import FREEZE, S2IDLE, STANDBY
from harness.transitions.parts import Transition


@pytest.mark.s2idle
@pytest.mark.parametrize("transition", [S2IDLE, FREEZE], ids=lambda t: t.id)
def test_suspend_to_idle(power_cycle: PowerCycle, transition: Transition) -> None:
    expect_pass(power_cycle(transition))


@pytest.mark.s1
def test_standby(power_cycle: PowerCycle) -> None:
    """QEMU offers no S1: UNSUPPORTED (a skip) unless the guest lists standby."""
    expect_pass(power_cycle(STANDBY))
