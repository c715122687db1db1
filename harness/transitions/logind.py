"""The ways into sleep that systemd and logind own: ``systemctl suspend-then-hibernate``, the
ACPI power button and the sleep key as logind handles them, logind's idle action, and
inhibitors that block or delay a sleep; the guest's ``system-sleep`` hook beside them.

logind is configured by a drop-in of the harness's own (logind restarted, each setting read
back over D-Bus, so that a setting that does not take effect is named before the key is
pressed), systemd-sleep by a ``sleep.conf`` drop-in. The guest of a case is discarded after
it, drop-ins with it. Where a guest does something the checks must see in order with the
kernel's own sleep lines (a hook, an inhibitor's holder), it writes a tagged line to the
kernel log (``/dev/kmsg``, at notice level).
"""

from __future__ import annotations

import concurrent.futures
import re
import shlex
import time
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import GuestFault, SetupError
from harness.machines.protocol import Machine, Signal
from harness.transitions.catalogue import (
    RTC_SECONDS,
    S3_ENTRY,
    S3_EVENTS,
    S3_NEEDS,
    S3_RECORDS,
    S4_ENTRY,
    S4_EVENTS,
    S4_NEEDS,
    S4_RECORDS,
)
from harness.transitions.host import host_of
from harness.transitions.marks import Marks
from harness.transitions.parts import (
    K_HIB_ENTRY,
    K_HIB_EXIT,
    K_IMAGE_LOADED,
    K_IMAGE_WRITTEN,
    K_S3_ACPI_WAKE,
    K_S3_ENTRY,
    K_SUSPEND_EXIT,
    Needs,
    Transition,
)
from harness.transitions.refusals import RefusalNamed, ReportedCommand
from harness.transitions.requests import InGuestCommand, Request
from harness.transitions.wakes import Relaunch, SystemWakeup, relaunch_and_wait, require_signal

LOGIND_DROPIN_DIR = "/etc/systemd/logind.conf.d"
LOGIND_DROPIN = f"{LOGIND_DROPIN_DIR}/50-s3s4-harness.conf"
# A later drop-in wins over the harness's own: how a fault overrides what a case set.
LOGIND_OVERRIDE = f"{LOGIND_DROPIN_DIR}/90-s3s4-override.conf"
SLEEP_DROPIN = "/etc/systemd/sleep.conf.d/50-s3s4-harness.conf"
MANAGER = "org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager"

# suspend-then-hibernate's stay in RAM before the RTC wakes the guest to hibernate: long enough
# for the guest to be asleep before the alarm fires under TCG (its entry takes seconds).
HIBERNATE_DELAY_S = 8

# systemd-sleep (252 and later) arms a CLOCK_BOOTTIME_ALARM timerfd for HibernateDelaySec,
# suspends, and on waking polls that timer once with no timeout: only a timer already expired
# makes it hibernate, any other wake is taken for the user's and it stops there. The kernel
# hands the timer to the RTC in whole seconds (the RTC read and the alarm both truncated), so
# the RTC may wake the guest up to two seconds before the timer's expiry; then systemd-sleep
# takes its own alarm for a manual wake (systemd#38193). The case's hook, run by systemd-sleep
# after the suspend leg and before that poll, reads the timer from systemd-sleep's fdinfo,
# logs what is left of it and waits that out where it is within the RTC's resolution, so that
# the alarm and the check agree; more left than that is a wake that was not the alarm's.
S2H_TIMER_HOOK = "/usr/lib/systemd/system-sleep/s3s4-s2h-timer"
S2H_TIMER_TAG = "s3s4-s2h-timer"
RTC_EARLY_NS = 2_000_000_000
# systemd-sleep's unit says when it ends: with no hibernation after the RTC wake, the case
# stops at that line instead of waiting out its bound for SUSPEND_DISK.
S2H_UNIT_DROPIN = "/etc/systemd/system/systemd-suspend-then-hibernate.service.d/50-s3s4.conf"
S2H_FINISHED_TAG = "s3s4-s2h: systemd-sleep finished"
S2H_WAIT_SLICE_S = 0.5
# How long logind waits on a guest without sessions before its idle action.
IDLE_ACTION_S = RTC_SECONDS

# The system-sleep hook: systemd-sleep runs it with "pre" before and "post" after each sleep.
SLEEP_HOOK = "/usr/lib/systemd/system-sleep/s3s4-harness-hook"
HOOK_TAG = "s3s4-sleep-hook"
HOOK_PRE = rf"{HOOK_TAG}: pre"
HOOK_POST = rf"{HOOK_TAG}: post"

# The inhibitors' holders, named as logind lists them (``who``).
BLOCKER = "s3s4-blocker"
DELAY_HOLDER = "s3s4-delay-holder"
HOLDER_PREPARING = rf"{DELAY_HOLDER}: PrepareForSleep seen"
HOLDER_FINISHED = rf"{DELAY_HOLDER}: finished"
# The holder's own work once logind announced the sleep, well within logind's
# InhibitDelayMaxSec (5 s by default), so that an honoured delay lets it finish.
HOLDER_WORK_S = 1
# A holder that never sees the sleep announced gives up (and lets go of its lock).
HOLDER_LIMIT_S = 120
INHIBITOR_LISTED_S = 30  # systemd-inhibit registers its lock within a second, even under TCG


def _kmsg(text: str) -> str:
    """Shell that writes ``text`` to the kernel log at notice level (not an error to the
    kernel-log check)."""
    return f"echo {shlex.quote('<5>' + text)} > /dev/kmsg"


def _dropin(path: str, section: str, settings: tuple[tuple[str, str], ...]) -> str:
    body = "".join(f"{key}={value}\\n" for key, value in settings)
    directory = path.rsplit("/", 1)[0]
    return f"mkdir -p {directory} && printf '[{section}]\\n{body}' > {path}"


def _property(key: str) -> str:
    """logind's D-Bus property for a logind.conf key (``IdleActionSec`` -> ``IdleActionUSec``)."""
    return key.removesuffix("Sec") + "USec" if key.endswith("Sec") else key


def _expected(key: str, value: str) -> str:
    """What busctl prints for ``key`` set to ``value`` (times in whole seconds)."""
    return f"t {int(value) * 1_000_000}" if key.endswith("Sec") else f's "{value}"'


def _wait_listed(who: str) -> str:
    """Shell that waits, bounded, until logind lists the inhibitor of ``who``."""
    return (
        f"timeout {INHIBITOR_LISTED_S} sh -c 'until systemd-inhibit --list --no-legend "
        f'| grep -q "^ *{who} "; do sleep 0.1; done\' || '
        f"{{ echo 'logind never listed the inhibitor of {who}' >&2; exit 1; }}"
    )


def block_inhibitor() -> str:
    """Shell that starts a holder of a ``block`` sleep inhibitor and waits until it is held."""
    return (
        f"setsid -f systemd-inhibit --what=sleep --mode=block --who={BLOCKER} "
        f"--why='holds sleep off' sleep {HOLDER_LIMIT_S} </dev/null >/dev/null 2>&1; "
        + _wait_listed(BLOCKER)
    )


def delay_inhibitor() -> str:
    """Shell that starts a holder of a ``delay`` sleep inhibitor and waits until it is held.
    The holder waits for logind to announce the sleep (PreparingForSleep), says so, works
    HOLDER_WORK_S, says it finished, and exits, which releases its lock."""
    preparing = f"busctl get-property {MANAGER} PreparingForSleep"
    holder = (
        f'until [ "$({preparing})" = "b true" ]; do sleep 0.1; done; '
        f"{_kmsg(HOLDER_PREPARING)}; sleep {HOLDER_WORK_S}; {_kmsg(HOLDER_FINISHED)}"
    )
    return (
        f"setsid -f systemd-inhibit --what=sleep --mode=delay --who={DELAY_HOLDER} "
        f"--why='finishes its work first' timeout {HOLDER_LIMIT_S} sh -c "
        f"{shlex.quote(holder)} </dev/null >/dev/null 2>&1; " + _wait_listed(DELAY_HOLDER)
    )


def install_sleep_hook(machine: Machine) -> None:
    """A system-sleep hook that writes what systemd-sleep ran it for to the kernel log."""
    hook = f'#!/bin/sh\necho "<5>{HOOK_TAG}: $1 $2" > /dev/kmsg\n'
    _run(machine, f"printf %s {shlex.quote(hook)} > {SLEEP_HOOK} && chmod 755 {SLEEP_HOOK}")


def _s2h_timer_hook() -> str:
    """The hook that makes the RTC wake and systemd-sleep's timer agree (see S2H_TIMER_HOOK)."""
    tag = f"<5>{S2H_TIMER_TAG}:"
    return f"""#!/bin/sh
[ "$1/$2" = "post/suspend-then-hibernate" ] || exit 0
if [ "$SYSTEMD_SLEEP_ACTION" != suspend ]; then
  echo "{tag} after the $SYSTEMD_SLEEP_ACTION leg: nothing to do" > /dev/kmsg; exit 0
fi
info=""
for comm in $(grep -lx systemd-sleep /proc/[0-9]*/comm 2>/dev/null); do
  for f in "${{comm%/comm}}"/fdinfo/*; do
    grep -qx 'clockid: *9' "$f" 2>/dev/null && info=$f && break 2
  done
done
if [ -z "$info" ]; then
  echo "{tag} no CLOCK_BOOTTIME_ALARM timer in systemd-sleep" > /dev/kmsg; exit 0
fi
ticks=$(sed -n 's/^ticks: *//p' "$info")
set -- $(sed -n 's/^it_value: *(//p' "$info" | tr -d ',)')
left=$(( ${{1:-0}} * 1000000000 + ${{2:-0}} ))
if [ "$ticks" != 0 ] || [ "$left" = 0 ]; then
  echo "{tag} expired at the wake" > /dev/kmsg
elif [ "$left" -le {RTC_EARLY_NS} ]; then
  echo "{tag} $left ns left at the wake (the RTC's whole seconds): waited out" > /dev/kmsg
  sleep "$(( left / 1000000000 )).$(printf %09d $(( left % 1000000000 )))"
else
  echo "{tag} $left ns left at the wake: not the RTC alarm's" > /dev/kmsg
fi
"""


def s2h_prepare() -> str:
    """Shell that installs the timer hook and the unit drop-in of suspend-then-hibernate."""
    finished = f"<5>{S2H_FINISHED_TAG} ($$SERVICE_RESULT)"
    unit = f"[Service]\nExecStopPost=/bin/sh -c 'echo \"{finished}\" > /dev/kmsg'\n"
    directory = S2H_UNIT_DROPIN.rsplit("/", 1)[0]
    hooks = S2H_TIMER_HOOK.rsplit("/", 1)[0]  # a guest may ship no hook, nor its directory
    return (
        f"mkdir -p {hooks} && printf %s {shlex.quote(_s2h_timer_hook())} > {S2H_TIMER_HOOK} && "
        f"chmod 755 {S2H_TIMER_HOOK} && mkdir -p {directory} && "
        f"printf %s {shlex.quote(unit)} > {S2H_UNIT_DROPIN} && systemctl daemon-reload"
    )


def hook_not_executable(machine: Machine) -> None:
    """Fault: the hook loses its execute bit; systemd-sleep then passes it over."""
    _run(machine, f"chmod 644 {SLEEP_HOOK}")


def override_logind(machine: Machine, settings: tuple[tuple[str, str], ...]) -> None:
    """Fault: a later logind drop-in sets ``settings`` (logind restarted), as a user's own
    configuration would, over what a case sets."""
    _run(
        machine,
        _dropin(LOGIND_OVERRIDE, "Login", settings) + " && systemctl restart systemd-logind",
    )


def _run(machine: Machine, script: str) -> None:
    result = machine.run(script)
    if not result.ok:
        raise SetupError(
            f"guest command failed (exit {result.exit_status}): {script[:120]}: "
            f"{result.stderr.strip()[-300:]}"
        )


@dataclass(frozen=True, kw_only=True)
class LogindConfigured:
    """``then``, once logind runs with ``settings`` (its drop-in written, logind restarted,
    each setting read back), systemd-sleep with ``sleep_settings``, and ``prepare`` (an
    inhibitor's holder started) has run in the guest."""

    then: Request
    settings: tuple[tuple[str, str], ...] = ()
    sleep_settings: tuple[tuple[str, str], ...] = ()
    prepare: str = ""
    label: str = ""

    @property
    def description(self) -> str:
        given = [f"{key}={value}" for key, value in (*self.settings, *self.sleep_settings)]
        setting = f" with {', '.join(given)}" if given else ""
        return f"{self.label or self.then.description}{setting}"

    def send(self, machine: Machine) -> concurrent.futures.Future[object] | None:
        steps = []
        if self.sleep_settings:
            steps.append(_dropin(SLEEP_DROPIN, "Sleep", self.sleep_settings))
        if self.settings:
            steps.append(_dropin(LOGIND_DROPIN, "Login", self.settings))
            steps.append("systemctl restart systemd-logind")
            for key, _ in self.settings:
                prop = _property(key)
                steps.append(f'echo "{key}=$(busctl get-property {MANAGER} {prop})"')
                steps.append(
                    f"echo \"where.{key}=$(grep -ls '^{key}=' /etc/systemd/logind.conf "
                    f"{LOGIND_DROPIN_DIR}/*.conf 2>/dev/null | tr '\\n' ' ')\""
                )
        if self.prepare:
            steps.append(self.prepare)
        result = machine.run(" && ".join(steps) if steps else "true")
        if not result.ok:
            raise GuestFault(
                "request",
                f"preparing {self.description} exited {result.exit_status}: "
                f"{result.stderr.strip()[-300:]}",
            )
        self._check_applied(result.stdout)
        return self.then.send(machine)

    def _check_applied(self, stdout: str) -> None:
        """A setting logind does not run with is named now: pressing the key would do what
        the other setting says (power the guest off), which no later wait could explain."""
        read = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
        for key, value in self.settings:
            got = read.get(key, "").strip()
            if got != _expected(key, value):
                where = read.get(f"where.{key}", "").strip() or "no file"
                raise GuestFault(
                    "request",
                    f"logind runs with {_property(key)} {got or 'unread'}, not "
                    f"{_expected(key, value)} as {LOGIND_DROPIN} sets it: {key} is set in "
                    f"{where}, and a later file wins",
                )


@dataclass(frozen=True)
class PowerButton:
    """The ACPI power button pressed (QMP system_powerdown): logind does HandlePowerKey."""

    description: ClassVar[str] = "the ACPI power button (system_powerdown)"

    def send(self, machine: Machine) -> None:
        said = machine.hmp("system_powerdown").strip()
        if said:
            raise GuestFault("request", f"system_powerdown: {said}")


@dataclass(frozen=True)
class KeyPress:
    """A key pressed on the guest's keyboard (QMP send-key): logind handles the sleep key."""

    key: str

    @property
    def description(self) -> str:
        return f"the {self.key} key (send-key {self.key})"

    def send(self, machine: Machine) -> None:
        machine.send_key(self.key)


@dataclass(frozen=True)
class LeftIdle:
    """No request at all: logind's idle action puts the guest to sleep by itself."""

    description: ClassVar[str] = "the guest left idle (logind's IdleAction)"

    def send(self, machine: Machine) -> None:
        return None


@dataclass(frozen=True, kw_only=True)
class RtcWakeThenHibernate:
    """suspend-then-hibernate's second leg: the RTC alarm wakes the guest from RAM after
    ``after_seconds``, systemd-sleep hibernates it (SUSPEND_DISK, power-off), and the guest
    is relaunched to resume from the image."""

    after_seconds: float
    keeps_vm_process: ClassVar[bool] = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        limit = self.after_seconds + machine.timeouts.wake
        require_signal(machine, Signal.WOKEN, marks, limit, "rtc-wake")
        woken = time.monotonic()
        self._await_hibernation(machine, marks)
        require_signal(
            machine, Signal.POWERED_OFF, marks, machine.timeouts.hibernate, "then-hibernate"
        )
        timings["rtc_wake_to_powered_off"] = time.monotonic() - woken
        relaunch_and_wait(machine, timings)

    @staticmethod
    def _await_hibernation(machine: Machine, marks: Marks) -> None:
        """SUSPEND_DISK, or a FAIL the moment systemd-sleep's unit ends without it, naming
        what the timer hook saw of systemd-sleep's timer at the wake."""
        limit = machine.timeouts.hibernate
        deadline = time.monotonic() + limit
        finished = re.compile(re.escape(S2H_FINISHED_TAG))
        while machine.wait_signal(Signal.HIBERNATED, marks.events, S2H_WAIT_SLICE_S) is None:
            line = machine.console.wait_for(finished, marks.console, 0)
            if line is not None:
                timer = machine.console.wait_for(
                    re.compile(re.escape(S2H_TIMER_TAG) + ".*"), marks.console, 0
                )
                seen = _after_tag(timer) if timer else "the timer hook logged nothing"
                raise GuestFault(
                    "then-hibernate",
                    f"{_after_tag(line)} after the wake, without hibernating; systemd-sleep's "
                    f"timer: {seen}",
                )
            if time.monotonic() > deadline:
                raise GuestFault(
                    "then-hibernate",
                    f"no {Signal.HIBERNATED.value} signal within {limit:.0f}s of the RTC wake; "
                    f"console: {machine.serial_tail()}",
                )


def _after_tag(line: str) -> str:
    """A tagged console line from its tag on (the kernel's timestamp left off)."""
    start = min(
        (i for i in (line.find(S2H_FINISHED_TAG), line.find(S2H_TIMER_TAG)) if i >= 0),
        default=0,
    )
    return line[start:].strip()


SUSPEND_THEN_HIBERNATE = Transition(
    id="s2h-systemctl",
    needs=Needs(power_states=("mem", "disk"), mem_sleep="deep", disk_mode="platform", swap=True),
    request=LogindConfigured(
        then=InGuestCommand(script="systemctl suspend-then-hibernate"),
        sleep_settings=(("HibernateDelaySec", str(HIBERNATE_DELAY_S)),),
        prepare=s2h_prepare(),
    ),
    entry=S3_ENTRY,
    wake=RtcWakeThenHibernate(after_seconds=HIBERNATE_DELAY_S),
    expected_events=(*S3_EVENTS, *S4_EVENTS),
    kernel_records=(
        K_S3_ENTRY,
        K_S3_ACPI_WAKE,
        K_SUSPEND_EXIT,
        K_HIB_ENTRY,
        K_IMAGE_WRITTEN,
        K_IMAGE_LOADED,
        K_HIB_EXIT,
    ),
)
POWER_KEY_SUSPEND = Transition(
    id="powerkey-suspend",
    needs=S3_NEEDS,
    request=LogindConfigured(then=PowerButton(), settings=(("HandlePowerKey", "suspend"),)),
    entry=S3_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)
POWER_KEY_HIBERNATE = Transition(
    id="powerkey-hibernate",
    needs=S4_NEEDS,
    request=LogindConfigured(then=PowerButton(), settings=(("HandlePowerKey", "hibernate"),)),
    entry=S4_ENTRY,
    wake=Relaunch(),
    expected_events=S4_EVENTS,
    kernel_records=S4_RECORDS,
)
SLEEP_KEY_SUSPEND = Transition(
    id="sleepkey-suspend",
    needs=S3_NEEDS,
    request=LogindConfigured(then=KeyPress("sleep"), settings=(("HandleSuspendKey", "suspend"),)),
    entry=S3_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)
IDLE_SUSPEND = Transition(
    id="idle-suspend",
    needs=S3_NEEDS,
    # logind's idle timer starts with logind, restarted with the drop-in: the idle action
    # follows within about IdleActionSec (a guest without sessions is idle from the start).
    request=LogindConfigured(
        then=LeftIdle(),
        settings=(("IdleAction", "suspend"), ("IdleActionSec", str(IDLE_ACTION_S))),
    ),
    entry=S3_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)
DELAY_INHIBITED_SUSPEND = Transition(
    id="delay-inhibited-suspend",
    needs=S3_NEEDS,
    request=LogindConfigured(
        then=InGuestCommand(script="systemctl suspend"),
        prepare=delay_inhibitor(),
        label=f"systemctl suspend while {DELAY_HOLDER} holds a delay inhibitor",
    ),
    entry=S3_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)
# systemctl checks block inhibitors itself where asked to (--check-inhibitors=yes; by default
# only for a user other than root on a terminal), and refuses naming each holder; logind
# ignores a caller's own inhibitors, so root's request would otherwise pass it by.
BLOCK_CHECKED = "systemctl suspend --check-inhibitors=yes"
BLOCK_INHIBITED_SUSPEND = Transition(
    id="block-inhibited-suspend",
    needs=S3_NEEDS,
    request=LogindConfigured(
        then=ReportedCommand(script=BLOCK_CHECKED),
        prepare=block_inhibitor(),
        label=f"{BLOCK_CHECKED} while {BLOCKER} holds a block inhibitor",
    ),
    entry=RefusalNamed(inner=S3_ENTRY),
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)


@dataclass(frozen=True)
class HostShutdown:
    """``virsh shutdown --mode MODE``: libvirt asks the guest to power off."""

    mode: str

    @property
    def description(self) -> str:
        return f"virsh shutdown --mode {self.mode}"

    def send(self, machine: Machine) -> None:
        host_of(machine).shutdown(self.mode)


# What the platform showed instead of a power-off, in libvirt's words.
DID_INSTEAD = {
    Signal.SUSPENDED.value: "pmsuspended (to RAM)",
    Signal.HIBERNATED.value: "pmsuspended to disk (hibernated)",
}


@dataclass(frozen=True, kw_only=True)
class ShutdownReported:
    """A shutdown's entry: the domain powered off. A guest that went to sleep instead (its
    power key handled as suspend or hibernate) is a FAIL that says what it did, never taken
    for a shutdown."""

    limit: str = "suspend_entry"

    def wait(
        self,
        machine: Machine,
        marks: Marks,
        answer: concurrent.futures.Future[object] | None,
        description: str,
    ) -> None:
        limit = getattr(machine.timeouts, self.limit)
        wanted = (*DID_INSTEAD, Signal.POWERED_OFF.value)
        event = machine.events.wait_for_signal(wanted, marks.events, limit)
        if event is None:
            raise GuestFault(
                "shutdown",
                f"{description}: the guest neither powered off nor slept within {limit:.0f}s; "
                f"console: {machine.serial_tail()}",
            )
        instead = next((DID_INSTEAD[s] for s in event.signals if s in DID_INSTEAD), "")
        if instead:
            state = machine.host_lifecycle.state() if machine.host_lifecycle else "?"
            raise GuestFault(
                "shutdown",
                f"{description}: the guest {instead}, not shut off ({event.name}; libvirt's "
                f"state {state}): its power key is handled as sleep",
            )


VIRSH_SHUTDOWN_POWERKEY_SUSPEND = Transition(
    id="virsh-shutdown-powerkey-suspend",
    needs=S3_NEEDS,
    request=LogindConfigured(then=HostShutdown("acpi"), settings=(("HandlePowerKey", "suspend"),)),
    entry=ShutdownReported(),
    wake=Relaunch(),
    expected_events=(Signal.POWERED_OFF,),
)

PASSING = (
    SUSPEND_THEN_HIBERNATE,
    POWER_KEY_SUSPEND,
    POWER_KEY_HIBERNATE,
    SLEEP_KEY_SUSPEND,
    IDLE_SUSPEND,
    DELAY_INHIBITED_SUSPEND,
)
