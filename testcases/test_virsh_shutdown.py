"""A host's ``virsh shutdown`` of a guest that sleeps on its power key, reported as what the
guest did: libvirt's default order (the agent first) powers it off through qemu-ga although its
power key would suspend it; ``--mode acpi`` with HandlePowerKey=hibernate hibernates it, which
the relaunch proves by its resume. Neither is a plain pass of "shutdown". (``--mode acpi`` with
HandlePowerKey=suspend is in test_logind.py.) The libvirt-guests service's shutdown of a guest
whose power key suspends it waits out SHUTDOWN_TIMEOUT and leaves it asleep: reported so."""

from pathlib import Path
from typing import Any

import pytest

from harness.checks import facts as fact
from harness.checks.judges import AFTER_REBOOT_CHECKS, DEFAULT_CHECKS, Check
from harness.checks.probes import AFTER_REBOOT_PROBES
from harness.checks.verdict import CheckResult, CycleEvidence, Verdict
from harness.machines.protocol import Machine
from harness.plugin import GroupCycle, expect_pass
from harness.session import HarnessSession
from harness.transitions import host_shutdown as hs
from harness.transitions.guests_service import (
    GuestsService,
    GuestsServiceConfig,
    sleeping_guest_shutdown,
)

pytestmark = pytest.mark.libvirt


def _path_named(said: list[str]) -> str:
    """The path the guest's own logs name, with their words."""
    agent = next((line for line in said if hs.AGENT_SHUTDOWN in line), "")
    key = next((line for line in said if hs.POWER_KEY_PRESSED in line), "")
    if agent and not key:
        return f"through the guest agent's guest-shutdown (qemu-ga: '{agent}')"
    if key and not agent:
        return f"through the ACPI power button (logind: '{key}')"
    if agent and key:
        return f"with both the agent's guest-shutdown ('{agent}') and the power key ('{key}')"
    return "by a path neither qemu-ga nor logind logged"


def shutdown_reported(ev: CycleEvidence) -> CheckResult:
    """What the host's shutdown did: shut off (and by which path), or hibernated (proven by the
    resume after the relaunch). Shut off passes, naming its path; hibernated fails."""
    witnessed: dict[str, Any] = next(
        (e["data"] for e in ev.events if e["event"] == hs.SHUTDOWN_WITNESSED), {}
    )
    if not witnessed:
        return CheckResult("shutdown_reported", False, "the shutdown was never witnessed")
    asked, state = witnessed["asked"], witnessed["state"]
    path = _path_named(witnessed["guest_said"])
    hibernated = any("hibernated" in e.get("signals", ()) for e in ev.events)
    if not hibernated:
        return CheckResult(
            "shutdown_reported",
            True,
            f"{asked}: shut off ({witnessed['did']}; libvirt's state {state}) {path}",
            witnessed,
        )
    before, after = ev.before.get(fact.GUEST_BOOT_ID), ev.after.get(fact.GUEST_BOOT_ID)
    resumed = (
        "resumed from its image after the relaunch (same boot_id)"
        if before and before == after
        else "and did not resume from its image (booted afresh)"
    )
    return CheckResult(
        "shutdown_reported",
        False,
        f"{asked}: the guest hibernated (pmsuspended to disk; libvirt's state {state}), "
        f"not shut off, {path}; {resumed}",
        witnessed,
    )


SHUTDOWN_CHECKS: tuple[Check, ...] = (*AFTER_REBOOT_CHECKS, shutdown_reported)
HIBERNATE_CHECKS: tuple[Check, ...] = (*DEFAULT_CHECKS, shutdown_reported)


def test_virsh_shutdown_default_goes_through_the_agent(
    libvirt_guest: Machine, group_cycle: GroupCycle
) -> None:
    """Plain virsh shutdown of a guest whose power key suspends it: libvirt asks the agent
    first, and the guest shuts off through qemu-ga's guest-shutdown; the report names it."""
    (series,) = group_cycle(
        hs.VIRSH_SHUTDOWN_DEFAULT_POWERKEY_SUSPEND,
        [libvirt_guest],
        checks=SHUTDOWN_CHECKS,
        probes=AFTER_REBOOT_PROBES,
    )
    expect_pass(series)
    (reported,) = [c for c in series.last.checks if c.name == "shutdown_reported"]
    assert reported.detail.startswith(
        "virsh shutdown (no --mode: libvirt's default order) with HandlePowerKey=suspend: "
        "shut off ("
    ), reported.detail
    assert "through the guest agent's guest-shutdown (qemu-ga: '" in reported.detail, (
        reported.detail
    )


@pytest.mark.selftest
def test_virsh_shutdown_default_without_the_agent_is_named(
    libvirt_guest: Machine, group_cycle: GroupCycle
) -> None:
    """The fault: the agent stopped, so libvirt's default order presses the power button and
    the guest suspends; the entry names it, not a shutdown."""
    (series,) = group_cycle(hs.VIRSH_SHUTDOWN_DEFAULT_NO_AGENT, [libvirt_guest])
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason.startswith(
        "shutdown: virsh shutdown (no --mode: libvirt's default order), the guest agent stopped "
        "with HandlePowerKey=suspend: the guest pmsuspended (to RAM), not shut off (PMSUSPEND; "
        "libvirt's state pmsuspended"
    ), outcome.reason


@pytest.mark.s4
def test_virsh_shutdown_acpi_of_a_guest_that_hibernates_on_its_power_key(
    libvirt_guest: Machine, group_cycle: GroupCycle
) -> None:
    """virsh shutdown --mode acpi with HandlePowerKey=hibernate: the guest hibernates; the
    relaunch resumes it (the resume checks pass) and the verdict says it hibernated."""
    (series,) = group_cycle(
        hs.VIRSH_SHUTDOWN_ACPI_POWERKEY_HIBERNATE, [libvirt_guest], checks=HIBERNATE_CHECKS
    )
    outcome = series.last
    if outcome.verdict is Verdict.UNSUPPORTED:  # a guest that cannot hibernate (lockdown)
        pytest.skip(f"UNSUPPORTED: {outcome.reason}")
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert [c.name for c in outcome.failed_checks] == ["shutdown_reported"], outcome.reason
    assert outcome.reason.startswith(
        "shutdown_reported: virsh shutdown --mode acpi with HandlePowerKey=hibernate: the guest "
        "hibernated (pmsuspended to disk; libvirt's state shutoff"
    ), outcome.reason
    assert "through the ACPI power button (logind: '" in outcome.reason, outcome.reason
    assert outcome.reason.endswith("resumed from its image after the relaunch (same boot_id)")


# Short: the service waits it out in full, a second at a time, on a guest that never powers off.
SHORT_SHUTDOWN_TIMEOUT_S = 10
SERVICE_TIMEOUT_S = 300.0


@pytest.mark.libvirt_guests
def test_libvirt_guests_shutdown_of_a_guest_that_sleeps_on_its_power_key(
    libvirt_guest: Machine,
    group_cycle: GroupCycle,
    harness_session: HarnessSession,
    tmp_path: Path,
) -> None:
    """libvirt-guests with ON_SHUTDOWN=shutdown on a guest whose power key suspends it (and
    that runs no agent, so libvirt presses the power button): the guest pmsuspends, the service
    waits SHUTDOWN_TIMEOUT and gives up; a FAIL in the script's own words, not a pass."""
    host = harness_session.libvirt_host()
    foreign = host.foreign_active_domains()
    if foreign:
        pytest.skip(f"libvirt-guests would act on guests that are not the harness's: {foreign}")
    config = GuestsServiceConfig(
        uris=host.uri, on_shutdown="shutdown", shutdown_timeout=SHORT_SHUTDOWN_TIMEOUT_S
    )
    service = GuestsService(config, tmp_path / "service", SERVICE_TIMEOUT_S)
    (series,) = group_cycle(sleeping_guest_shutdown(service), [libvirt_guest])
    outcome = series.last
    assert [run.action for run in service.runs] == ["stop"]
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason.startswith("libvirt-guests: libvirt-guests stop (ON_SHUTDOWN=shutdown)")
    assert (
        f"SHUTDOWN_TIMEOUT ({SHORT_SHUTDOWN_TIMEOUT_S}s) reached, guest pmsuspended, not shut "
        "off (libvirt's state pmsuspended" in outcome.reason
    ), outcome.reason
    assert "failed to complete in time." in outcome.reason, outcome.reason
