"""Faults on the libvirt backend: a frozen guest agent gives a bounded, named failure."""

import time
from pathlib import Path

import pytest

from harness.checks.verdict import Verdict
from harness.cycle.faults import freeze_agent
from harness.errors import SetupError
from harness.machines.libvirt.machine import AGENT_RESPONSE_TIMEOUT_S
from harness.machines.protocol import Machine
from harness.plugin import PowerCycle
from harness.session import HarnessSession
from harness.transitions.host import DOMPM_MEM

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


def test_an_emulator_libvirt_cannot_probe_is_named_with_libvirts_own_reason(
    harness_session: HarnessSession, tmp_path: Path
) -> None:
    """libvirt answers only "cause unknown" for a QEMU it cannot probe; the harness names
    the probe failure from libvirtd's log. The fault: a "QEMU" that exits at once."""
    host = harness_session.libvirt_host()
    host.check_emulator("qemu-system-x86_64", "pc")  # the host's QEMU probes fine
    broken = tmp_path / "qemu-system-x86_64"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(SetupError) as caught:
        host.check_emulator(str(broken), "pc")
    message = str(caught.value)
    assert f"cannot use the QEMU at {broken}: " in message, message
    assert "run the libvirt cases with a QEMU this libvirt can probe" in message
    if host.daemon is not None:  # libvirtd's log is the harness's to read
        assert "its capabilities probe failed: " in message, message
