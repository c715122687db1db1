"""The systemd/logind ways into sleep: suspend-then-hibernate (its RTC wake and then the
hibernation, both legs proven), the ACPI power button with HandlePowerKey=suspend and
=hibernate, the sleep key with HandleSuspendKey, logind's IdleAction; a delay inhibitor whose
holder finishes before the guest sleeps, a block inhibitor whose refusal names its holder; and
the guest's system-sleep hook run before and after every one of them. Each case's guest is
restored from the ready checkpoint and discarded after it, with the drop-ins it was given."""

import os
import time

import pytest

from harness.checks.judges import DEFAULT_CHECKS
from harness.checks.sleep_order import logged_around_sleep
from harness.checks.verdict import Verdict
from harness.cycle.faults import ASLEEP, Fault
from harness.machines.protocol import Machine
from harness.plugin import GroupCycle, PowerCycle, expect_pass
from harness.transitions import logind
from harness.transitions.parts import Transition

SLEEP_HOOKS_RAN = logged_around_sleep(
    "sleep_hooks_ran", [logind.HOOK_PRE], [logind.HOOK_POST], what="the system-sleep hook"
)
DELAY_HOLDER_FINISHED_FIRST = logged_around_sleep(
    "delay_holder_finished_first",
    [logind.HOLDER_PREPARING, logind.HOLDER_FINISHED],
    what=f"the delay inhibitor's holder ({logind.DELAY_HOLDER})",
)
HOOKED_CHECKS = (*DEFAULT_CHECKS, SLEEP_HOOKS_RAN)
DELAY_CHECKS = (*HOOKED_CHECKS, DELAY_HOLDER_FINISHED_FIRST)
# CI runs a key handled by logind, suspend-then-hibernate, the inhibitors and the faults; the
# other keys and the idle action, made of the same parts, run with S3S4_LOGIND=all.
BY_HAND = pytest.mark.skipif(
    os.environ.get("S3S4_LOGIND") != "all",
    reason="the same parts as the paths CI runs: S3S4_LOGIND=all runs it",
)


@pytest.fixture
def hooked_guest(guest: Machine) -> Machine:
    """The case's guest with the system-sleep hook in place."""
    logind.install_sleep_hook(guest)
    return guest


@pytest.mark.parametrize(
    "transition",
    [
        pytest.param(logind.SUSPEND_THEN_HIBERNATE, marks=pytest.mark.s4),
        pytest.param(logind.POWER_KEY_SUSPEND, marks=pytest.mark.s3),
        pytest.param(logind.POWER_KEY_HIBERNATE, marks=[pytest.mark.s4, BY_HAND]),
        pytest.param(logind.SLEEP_KEY_SUSPEND, marks=[pytest.mark.s3, BY_HAND]),
        pytest.param(logind.IDLE_SUSPEND, marks=[pytest.mark.s3, BY_HAND]),
    ],
    ids=lambda t: t.id,
)
def test_logind_path(
    hooked_guest: Machine, group_cycle: GroupCycle, transition: Transition
) -> None:
    """Each path sleeps and comes back, and the system-sleep hook ran before and after."""
    (series,) = group_cycle(transition, [hooked_guest], checks=HOOKED_CHECKS)
    expect_pass(series)


@pytest.mark.s3
def test_delay_inhibitor_holder_finishes_first(
    hooked_guest: Machine, group_cycle: GroupCycle
) -> None:
    """logind waits for the delay inhibitor's holder: it saw the sleep announced, did its
    work and said so, all before the kernel's suspend entry; then the guest slept."""
    (series,) = group_cycle(logind.DELAY_INHIBITED_SUSPEND, [hooked_guest], checks=DELAY_CHECKS)
    expect_pass(series)


@pytest.mark.s3
def test_block_inhibitor_refusal_names_its_holder(guest: Machine, group_cycle: GroupCycle) -> None:
    """A block inhibitor: the request is refused, in systemctl's words naming the holder."""
    (series,) = group_cycle(logind.BLOCK_INHIBITED_SUSPEND, [guest])
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert f'Operation inhibited by "{logind.BLOCKER}"' in outcome.reason, outcome.reason
    assert outcome.reason.startswith("request: "), outcome.reason


@pytest.mark.selftest
def test_hook_not_run_is_named(hooked_guest: Machine, group_cycle: GroupCycle) -> None:
    """The hook without its execute bit: systemd-sleep passes it over, and the check says so."""
    logind.hook_not_executable(hooked_guest)
    (series,) = group_cycle(logind.SLEEP_KEY_SUSPEND, [hooked_guest], checks=HOOKED_CHECKS)
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason == "sleep_hooks_ran: the system-sleep hook never logged " + (
        f"'{logind.HOOK_TAG}: pre'"
    ), outcome.reason


@pytest.mark.selftest
def test_delay_not_honoured_is_named(hooked_guest: Machine, group_cycle: GroupCycle) -> None:
    """logind told not to wait for delay inhibitors (InhibitDelayMaxSec=0): the guest sleeps
    while the holder is still at work, and the check names the order."""
    logind.override_logind(hooked_guest, (("InhibitDelayMaxSec", "0"),))
    (series,) = group_cycle(logind.DELAY_INHIBITED_SUSPEND, [hooked_guest], checks=DELAY_CHECKS)
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason.startswith("delay_holder_finished_first: "), outcome.reason
    assert "the guest slept first" in outcome.reason, outcome.reason


@pytest.mark.selftest
def test_overridden_logind_setting_is_named(guest: Machine, group_cycle: GroupCycle) -> None:
    """A later logind drop-in keeps HandlePowerKey=poweroff: the request stops before the key
    is pressed, naming what logind runs with and the files that set it."""
    logind.override_logind(guest, (("HandlePowerKey", "poweroff"),))
    (series,) = group_cycle(logind.POWER_KEY_SUSPEND, [guest])
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert 'logind runs with HandlePowerKey s "poweroff", not s "suspend"' in outcome.reason
    assert logind.LOGIND_OVERRIDE in outcome.reason, outcome.reason


@pytest.mark.libvirt
def test_virsh_shutdown_of_a_guest_that_sleeps_on_its_power_key(
    libvirt_guest: Machine, group_cycle: GroupCycle
) -> None:
    """virsh shutdown --mode acpi presses the power button; logind with HandlePowerKey=suspend
    suspends the guest instead: a FAIL that says it pmsuspended, never a pass."""
    (series,) = group_cycle(logind.VIRSH_SHUTDOWN_POWERKEY_SUSPEND, [libvirt_guest])
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason.startswith(
        "shutdown: virsh shutdown --mode acpi with HandlePowerKey=suspend: the guest "
        "pmsuspended (to RAM), not shut off (PMSUSPEND; libvirt's state pmsuspended"
    ), outcome.reason


@pytest.mark.selftest
def test_s2h_without_its_hibernation_is_named_at_once(
    hooked_guest: Machine, power_cycle: PowerCycle
) -> None:
    """suspend-then-hibernate woken by the host long before its timer: systemd-sleep takes
    the wake for the user's and stops without hibernating. The case says so as soon as
    systemd-sleep's unit ends, with what was left of its timer, instead of waiting out its
    bound for SUSPEND_DISK."""
    early = Fault("woken by the host (system_wakeup) before the timer", _wake, ASLEEP)
    started = time.monotonic()
    outcome = power_cycle(logind.SUSPEND_THEN_HIBERNATE, faults=[early]).last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    assert outcome.reason.startswith(
        f"then-hibernate: {logind.S2H_FINISHED_TAG} (success) after the wake, without "
        f"hibernating; systemd-sleep's timer: {logind.S2H_TIMER_TAG}: "
    ), outcome.reason
    assert "ns left at the wake: not the RTC alarm's" in outcome.reason, outcome.reason
    assert time.monotonic() - started < hooked_guest.timeouts.hibernate / 2


def _wake(machine: Machine) -> None:
    machine.wake_from_ram()
