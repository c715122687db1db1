"""Faults on the libvirt backend: a frozen guest agent gives a bounded, named failure."""

import time

import pytest

from harness.faults import freeze_agent
from harness.host_paths import DOMPM_MEM
from harness.libvirt.machine import AGENT_RESPONSE_TIMEOUT_S
from harness.machine import Machine
from harness.plugin import PowerCycle
from harness.verdict import Verdict

pytestmark = [pytest.mark.selftest, pytest.mark.libvirt]

# Without agentSetResponseTimeout libvirt waited 142 s here before answering at all.
UNBOUNDED_WAIT_S = 142.0


def test_frozen_agent_is_a_bounded_named_failure(
    power_cycle: PowerCycle, libvirt_guest: Machine
) -> None:
    started = time.monotonic()
    outcome = power_cycle(DOMPM_MEM, machine=libvirt_guest, faults=[freeze_agent()]).last
    elapsed = time.monotonic() - started
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason.startswith("request: libvirt dompmsuspend --target mem: guest agent")
    assert "not responding" in outcome.reason or "timed out" in outcome.reason, outcome.reason
    assert "suspended" not in [s for e in outcome.evidence.events for s in e["signals"]]
    # The request ended on the harness's bound of the agent, not on libvirt's own wait.
    assert elapsed < AGENT_RESPONSE_TIMEOUT_S + 60 < UNBOUNDED_WAIT_S, elapsed
