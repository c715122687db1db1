"""End-to-end proofs that the harness's verdicts can come out other than PASS.

Each test injects a real fault into a real guest and asserts the verdict and the check named.
"""

from collections.abc import Callable

import pytest

from harness.checks.verdict import Verdict
from harness.cycle.faults import (
    FRESH_SWAP_WHILE_HIBERNATED,
    cpu_stall_on_wake,
    guest_only_pretends_to_suspend,
    vcpu_lockup_while_entering,
)
from harness.cycle.localise import LEVELS, localise
from harness.machines.platform_args import disable_sleep_state
from harness.machines.qemu.machine import QemuMachine
from harness.plugin import PowerCycle
from harness.session import HarnessSession
from harness.transitions.catalogue import S3_AGENT, S3_SYSTEMCTL, S4_AGENT, S4_SYSTEMCTL

pytestmark = pytest.mark.selftest


def test_s3_disabled_in_qemu_is_unsupported(
    power_cycle: PowerCycle,
    guest_factory: Callable[..., QemuMachine],
    harness_session: HarnessSession,
) -> None:
    args = disable_sleep_state(harness_session.settings.machine_type, "s3")
    machine = guest_factory("s3-disabled", args)
    for transition in (S3_SYSTEMCTL, S3_AGENT):
        outcome = power_cycle(transition, machine=machine).last
        assert outcome.verdict is Verdict.UNSUPPORTED, outcome.reason
        assert "no S3" in outcome.reason
        assert "deep" not in outcome.evidence.before["guest.mem_sleep"]


def test_cold_boot_instead_of_resume_is_fail(power_cycle: PowerCycle) -> None:
    outcome = power_cycle(S4_SYSTEMCTL, faults=[FRESH_SWAP_WHILE_HIBERNATED]).last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    failed = {check.name for check in outcome.failed_checks}
    assert {"resumed_not_rebooted", "sentinel_carried_on"} <= failed, failed
    assert outcome.evidence.before["guest.boot_id"] != outcome.evidence.after["guest.boot_id"]


def test_a_cpu_stall_while_waking_ends_the_wait_with_the_stall_named(
    power_cycle: PowerCycle,
) -> None:
    """The guest wakes with a silent agent and a CPU that stalls: the wait for the woken guest
    ends on the kernel's stall report, not at its 120 s limit, and names it. The fault lowers
    RCU's stall timeout to 5 s (the kernel's default is 21 s), so the report comes sooner; the
    harness reads the same report either way."""
    outcome = power_cycle(S3_SYSTEMCTL, faults=[cpu_stall_on_wake()]).last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason.startswith("resume: a guest CPU stalled"), outcome.reason
    assert "rcu: INFO: rcu_preempt detected stalls" in outcome.reason, outcome.reason
    assert "cpu_dump" in outcome.artifacts, outcome.artifacts


def test_a_vcpu_locked_up_on_the_way_to_sleep_ends_the_wait_with_the_lockup_named(
    power_cycle: PowerCycle,
) -> None:
    """vCPU 1 runs on with interrupts disabled once the guest is asked to hibernate: the guest
    never gets there, and says nothing of it (no timer interrupt, no lockup report). The wait
    ends once QEMU has shown that vCPU locked for 20 s, not at the entry limit (300 s), and
    names the vCPU and where it is."""
    outcome = power_cycle(S4_AGENT, faults=list(vcpu_lockup_while_entering())).last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason.startswith("suspend-entry: guest agent guest-suspend-disk was sent, then")
    assert "then the guest locked up: 1 of 2 vCPUs" in outcome.reason, outcome.reason
    assert "(vCPU 1 at RIP 0000" in outcome.reason, outcome.reason  # in user space: the loop
    assert "cpu_dump" in outcome.artifacts, outcome.artifacts


def test_missing_suspend_event_fails_the_cycle_even_after_passing_cycles(
    power_cycle: PowerCycle, guest: QemuMachine
) -> None:
    """The guest kernel goes through its suspend sequence (pm_test=core) and says it slept,
    but QEMU never sees SUSPEND: cycle 2 fails at suspend-entry though cycle 1 passed."""
    series = power_cycle(S3_AGENT, cycles=2, faults=[guest_only_pretends_to_suspend((2,))])
    verdicts = [o.verdict for o in series.outcomes]
    assert verdicts == [Verdict.PASS, Verdict.FAIL], series.reason
    assert series.verdict is Verdict.FAIL and series.pass_rate == pytest.approx(1 / 2)
    assert series.reason.startswith("cycle 2/2: suspend-entry:"), series.reason
    assert "never saw suspended" in series.reason
    # The guest that never slept is pictured for the diagnosis, the picture attached.
    assert "screendump" in series.outcomes[1].artifacts, series.outcomes[1].artifacts
    assert (guest.evidence_dir / "screen-cycle2.png").read_bytes().startswith(b"\x89PNG")
    # And each vCPU's local APIC (is its timer armed?) and registers, for QEMU's developers.
    dump = (guest.evidence_dir / "cpus-cycle2.txt").read_text()
    assert series.outcomes[1].artifacts["cpu_dump"].endswith("cpus-cycle2.txt")
    assert dump.count("dumping local APIC state for CPU") == 2, dump[:400]
    assert "LVTT" in dump and "CPU#1" in dump, dump[:400]
    power_events = [e["event"] for e in series.outcomes[0].evidence.events if e["signals"]]
    assert power_events == ["SUSPEND", "WAKEUP"], series.outcomes[0].evidence.events
    # Stage localisation on the same (now rebooted) guest: every pm_test level passes, so the
    # fault is placed beyond the kernel's core suspend, where it was injected.
    result = localise(guest, "mem")
    assert result["levels"] == dict.fromkeys(LEVELS, "ok"), result
    assert result["summary"].startswith("all levels pass")
