"""End-to-end proofs that the harness's verdicts can come out other than PASS.

Each test injects a real fault into a real guest and asserts the verdict and the check named.
"""

from collections.abc import Callable

import pytest

from harness.cycle import FRESH_SWAP_WHILE_HIBERNATED
from harness.platform_args import disable_sleep_state
from harness.plugin import PowerCycle
from harness.qemu.machine import QemuMachine
from harness.session import HarnessSession
from harness.transitions import S3_AGENT, S3_SYSTEMCTL, S4_SYSTEMCTL
from harness.verdict import Verdict

pytestmark = pytest.mark.selftest


def test_s3_disabled_in_qemu_is_unsupported(
    power_cycle: PowerCycle,
    guest_factory: Callable[..., QemuMachine],
    harness_session: HarnessSession,
) -> None:
    args = disable_sleep_state(harness_session.settings.machine_type, "s3")
    machine = guest_factory("s3-disabled", args)
    for transition in (S3_SYSTEMCTL, S3_AGENT):
        outcome = power_cycle(transition, machine=machine)
        assert outcome.verdict is Verdict.UNSUPPORTED, outcome.reason
        assert "no S3" in outcome.reason
        assert "deep" not in outcome.evidence.before["guest.mem_sleep"]


def test_cold_boot_instead_of_resume_is_fail(power_cycle: PowerCycle) -> None:
    outcome = power_cycle(S4_SYSTEMCTL, faults=[FRESH_SWAP_WHILE_HIBERNATED])
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    failed = {check.name for check in outcome.failed_checks}
    assert {"resumed_not_rebooted", "sentinel_carried_on"} <= failed, failed
    assert outcome.evidence.before["guest.boot_id"] != outcome.evidence.after["guest.boot_id"]
