"""The logind paths' pure parts: the order check on the kernel log, logind's settings read
back, and the guest-side shell (its syntax, and the drop-in it writes, run by a real shell)."""

import subprocess
from pathlib import Path

import pytest

from harness.checks.sleep_order import logged_around_sleep
from harness.checks.verdict import CycleEvidence
from harness.errors import GuestFault
from harness.machines.events import EventLog
from harness.machines.libvirt.events import libvirt_signals
from harness.timeouts import Timeouts
from harness.transitions import logind
from harness.transitions.catalogue import S3_RECORDS, S4_RECORDS
from harness.transitions.marks import Marks

HOOKS = logged_around_sleep(
    "sleep_hooks_ran", [logind.HOOK_PRE], [logind.HOOK_POST], what="the hook"
)
HOLDER = logged_around_sleep(
    "delay_holder_finished_first",
    [logind.HOLDER_PREPARING, logind.HOLDER_FINISHED],
    what="the holder",
)
S3_LOG = [
    "[ 10.0] s3s4-harness: kernel log mark",
    "[ 10.5] s3s4-sleep-hook: pre suspend",
    "[ 10.6] s3s4-delay-holder: PrepareForSleep seen",
    "[ 11.6] s3s4-delay-holder: finished",
    "[ 11.9] PM: suspend entry (deep)",
    "[ 12.5] ACPI: PM: Waking up from system sleep state S3",
    "[ 12.9] PM: suspend exit",
    "[ 13.0] s3s4-sleep-hook: post suspend",
]


def _evidence(log: list[str], records: tuple[str, ...] = S3_RECORDS) -> CycleEvidence:
    return CycleEvidence(
        "t",
        expected_kernel_records=list(records),
        after={"guest.boot_id": "b"},
        kernel_log=log,
    )


def test_hook_lines_around_the_sleep_pass() -> None:
    result = HOOKS(_evidence(S3_LOG))
    assert result.passed, result.detail
    assert result.detail == "the hook: s3s4-sleep-hook: pre -> [sleep] -> s3s4-sleep-hook: post"


def test_a_hook_that_never_ran_is_named() -> None:
    log = [line for line in S3_LOG if "sleep-hook" not in line]
    result = HOOKS(_evidence(log))
    assert not result.passed
    assert result.detail == "the hook never logged 's3s4-sleep-hook: pre'"


def test_a_missing_post_line_is_named_after_the_kernels_exit() -> None:
    result = HOOKS(_evidence(S3_LOG[:-1]))
    assert not result.passed
    assert result.detail == (
        "the hook never logged 's3s4-sleep-hook: post' after the kernel's "
        "'[ 12.9] PM: suspend exit'"
    )


def test_a_holder_that_finished_after_the_entry_is_named() -> None:
    log = [*S3_LOG[:3], *S3_LOG[4:7], S3_LOG[3], S3_LOG[7]]
    result = HOLDER(_evidence(log))
    assert not result.passed
    assert result.detail == (
        "the holder logged '[ 11.6] s3s4-delay-holder: finished' only after the kernel's "
        "'[ 11.9] PM: suspend entry (deep)': the guest slept first"
    )
    assert HOLDER(_evidence(S3_LOG)).passed


def test_hibernation_is_bounded_by_its_first_and_last_record() -> None:
    log = [
        "[ 5.0] s3s4-sleep-hook: pre hibernate",
        "[ 5.1] PM: hibernation: hibernation entry",
        "[ 9.0] PM: hibernation: hibernation exit",
        "[ 9.2] s3s4-sleep-hook: post hibernate",
    ]
    assert HOOKS(_evidence(log, S4_RECORDS)).passed


def test_no_facts_after_the_wake_is_not_judged() -> None:
    ev = _evidence(S3_LOG)
    ev.after, ev.after_error = {}, "ssh timed out"
    result = HOOKS(ev)
    assert not result.passed
    assert result.detail == "not measured after resume: ssh timed out"


def test_a_setting_logind_does_not_run_with_is_named() -> None:
    request = logind.POWER_KEY_SUSPEND.request
    assert isinstance(request, logind.LogindConfigured)
    request._check_applied('HandlePowerKey=s "suspend"\nwhere.HandlePowerKey=a.conf\n')
    files = f"{logind.LOGIND_DROPIN} {logind.LOGIND_OVERRIDE}"
    with pytest.raises(GuestFault) as raised:
        request._check_applied(f'HandlePowerKey=s "poweroff"\nwhere.HandlePowerKey={files} \n')
    assert str(raised.value) == (
        'request: logind runs with HandlePowerKey s "poweroff", not s "suspend" as '
        f"{logind.LOGIND_DROPIN} sets it: HandlePowerKey is set in {files}, and a later "
        "file wins"
    )


def test_times_are_read_back_in_microseconds() -> None:
    request = logind.IDLE_SUSPEND.request
    assert isinstance(request, logind.LogindConfigured)
    request._check_applied(
        f'IdleAction=s "suspend"\nIdleActionSec=t {logind.IDLE_ACTION_S * 1_000_000}\n'
    )
    assert request.description == (
        f"the guest left idle (logind's IdleAction) with IdleAction=suspend, "
        f"IdleActionSec={logind.IDLE_ACTION_S}"
    )


def test_the_dropin_written_by_a_real_shell(tmp_path: Path) -> None:
    path = tmp_path / "logind.conf.d" / "50-x.conf"
    script = logind._dropin(str(path), "Login", (("HandlePowerKey", "suspend"), ("A", "1")))
    subprocess.run(["sh", "-c", script], check=True)
    assert path.read_text() == "[Login]\nHandlePowerKey=suspend\nA=1\n"


@pytest.mark.parametrize("script", [logind.delay_inhibitor(), logind.block_inhibitor()])
def test_the_holders_shell_parses(script: str) -> None:
    subprocess.run(["sh", "-n", "-c", script], check=True)


class _Host:
    def state(self) -> str:
        return "pmsuspended/unknown"


class _Domain:
    """What ShutdownReported reads of a machine: its timeouts, events, host and console."""

    def __init__(self) -> None:
        self.timeouts = Timeouts()
        self.events = EventLog(classify=libvirt_signals)
        self.host_lifecycle = _Host()

    def serial_tail(self, lines: int = 3) -> str:
        return "(console)"


def test_a_shutdown_that_suspended_the_guest_is_a_fail_saying_so() -> None:
    domain = _Domain()
    domain.events.append("PMSUSPENDED/MEMORY", {})
    domain.events.append("PMSUSPEND", {})
    with pytest.raises(GuestFault) as raised:
        logind.ShutdownReported().wait(domain, Marks(0, 0), None, "virsh shutdown --mode acpi")  # type: ignore[arg-type]
    assert str(raised.value) == (
        "shutdown: virsh shutdown --mode acpi: the guest pmsuspended (to RAM), not shut off "
        "(PMSUSPEND; libvirt's state pmsuspended/unknown): its power key is handled as sleep"
    )


def test_a_shutdown_that_powered_off_is_entered() -> None:
    domain = _Domain()
    domain.events.append("SHUTDOWN/GUEST", {})
    domain.events.append("STOPPED/SHUTDOWN", {})
    logind.ShutdownReported().wait(domain, Marks(0, 0), None, "virsh shutdown")  # type: ignore[arg-type]
