"""Every health check, shown failing on a real fault injected into a real guest, with the check
named; and the same checks passing on a clean cycle."""

from typing import Any

import pytest

from harness.checks.judges import AFTER_REBOOT_CHECKS
from harness.checks.probes import AFTER_REBOOT_PROBES
from harness.checks.verdict import Verdict
from harness.cycle.faults import (
    clock_step,
    cpu_stall,
    disk_io_errors,
    kernel_call_trace,
    kill_sentinel,
    link_down,
    root_disk_data_overwritten,
    root_filesystem_read_only,
)
from harness.cycle.run import run_cycle
from harness.machines.protocol import Machine
from harness.plugin import PowerCycle
from harness.transitions.catalogue import S3_AGENT

pytestmark = pytest.mark.selftest


def failed_checks(power_cycle: PowerCycle, **kwargs: Any) -> dict[str, str]:
    outcome = power_cycle(S3_AGENT, **kwargs).last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    return {c.name: c.detail for c in outcome.failed_checks}


def test_clean_cycle_passes_every_check(power_cycle: PowerCycle) -> None:
    outcome = power_cycle(S3_AGENT).last
    assert outcome.verdict is Verdict.PASS, outcome.reason
    applicable = [c.name for c in outcome.checks if c.applicable]
    assert {
        "virtio_net_healthy",
        "clock_in_step",
        "kernel_log_clean",
        "suspend_counted",
        "tcp_connection_survived",
        "disk_roundtrip",
    } <= set(applicable)


def test_clock_step_fails_and_agent_resync_repairs_it(power_cycle: PowerCycle) -> None:
    failed = failed_checks(power_cycle, faults=[clock_step(3600)])
    assert set(failed) == {"clock_in_step"}, failed
    assert "+3600" in failed["clock_in_step"] or "+359" in failed["clock_in_step"]
    outcome = power_cycle(S3_AGENT, faults=[clock_step(3600)], resync_clock=True).last
    assert outcome.verdict is Verdict.PASS, outcome.reason


def test_link_down_after_wake_fails_virtio_net(power_cycle: PowerCycle) -> None:
    failed = failed_checks(power_cycle, faults=[link_down()])
    assert "link down" in failed["virtio_net_healthy"], failed
    assert "link is down" in failed["ssh_after_resume"]


def test_killed_sentinel_fails_processes(power_cycle: PowerCycle) -> None:
    failed = failed_checks(power_cycle, faults=[kill_sentinel()])
    assert set(failed) == {"sentinel_carried_on"}, failed
    assert "process gone" in failed["sentinel_carried_on"]


def test_kernel_call_trace_fails_kernel_log(power_cycle: PowerCycle) -> None:
    failed = failed_checks(power_cycle, faults=[kernel_call_trace()])
    assert set(failed) == {"kernel_log_clean"}, failed
    assert "call_trace" in failed["kernel_log_clean"]


def test_cpu_stall_fails_kernel_log_named_as_a_stall(power_cycle: PowerCycle) -> None:
    failed = failed_checks(power_cycle, faults=[cpu_stall()])
    assert "kernel_log_clean" in failed, failed
    assert failed["kernel_log_clean"].startswith("cpu_stall: "), failed


def test_disk_io_errors_after_wake_fail_virtio_blk(power_cycle: PowerCycle) -> None:
    failed = failed_checks(power_cycle, faults=[disk_io_errors()])
    assert "virtio_blk_healthy" in failed, failed
    assert "io_error" in failed.get("kernel_log_clean", ""), failed


def test_root_disk_data_changed_under_the_guest_fails_disk_roundtrip(
    power_cycle: PowerCycle,
) -> None:
    failed = failed_checks(power_cycle, faults=[root_disk_data_overwritten()])
    assert set(failed) == {"disk_roundtrip"}, failed
    assert failed["disk_roundtrip"] == "file written before reads back as differs from the pattern"


def test_a_read_only_root_after_wake_fails_disk_roundtrip(power_cycle: PowerCycle) -> None:
    failed = failed_checks(power_cycle, faults=[root_filesystem_read_only()])
    assert set(failed) == {"disk_roundtrip"}, failed
    assert failed["disk_roundtrip"] == "write after resume failed (dd status 1)"


def test_a_guest_that_only_slept_fails_booted_afresh(guest: Machine) -> None:
    """libvirt-guests' shutdown case judged on a guest that slept instead (as if the service
    had restored it rather than booted it), its file from before changed on the disk too."""
    outcome = run_cycle(
        guest,
        S3_AGENT,
        faults=[root_disk_data_overwritten()],
        probes=AFTER_REBOOT_PROBES,
        checks=AFTER_REBOOT_CHECKS,
    )
    failed = {c.name: c.detail for c in outcome.failed_checks}
    assert set(failed) == {"booted_afresh"}, (outcome.reason, failed)
    assert failed["booted_afresh"] == (
        "same boot_id: the guest was not shut down; RAM marker survived; "
        "file written before the shutdown reads back as differs from the pattern"
    )
