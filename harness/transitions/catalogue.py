"""Power transitions as data: what the guest must offer, how sleep is requested, what proves
entry, how the guest is woken, and what the platform and the guest kernel must have recorded.

A new path is a new combination of these parts, never a new branch in the cycle.
"""

from __future__ import annotations

import concurrent.futures
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from harness.errors import (
    AgentCommandError,
    AgentError,
    GuestFault,
    GuestLockedUp,
    HarnessError,
    SetupError,
    StateUnsupported,
    SuspendNotEntered,
    WakeTimeout,
)
from harness.guest.console.diagnosis import GUEST_SAYS_RESUMED
from harness.machines.protocol import Machine, Signal
from harness.machines.vcpu_lockup import LockupWatch


@dataclass(frozen=True)
class Marks:
    """Where a cycle began in the event log and in the console."""

    events: int
    console: int

    @classmethod
    def now(cls, machine: Machine) -> Marks:
        return cls(machine.events.mark(), machine.console.mark())


# -- what the guest must offer -------------------------------------------------------------


@dataclass(frozen=True)
class Needs:
    """The guest facts a state requires; ``unmet`` says why a guest does not offer it."""

    power_states: tuple[str, ...]
    mem_sleep: str | None = None
    disk_mode: str | None = None
    swap: bool = False

    def unmet(self, facts: dict[str, str]) -> str | None:
        offered = facts.get("guest.power_state", "").split()
        acpi = facts.get("guest.acpi_states") or "?"
        missing = [s for s in self.power_states if s not in offered]
        if missing:
            return (
                f"guest offers no {'/'.join(missing)}: /sys/power/state is "
                f"'{' '.join(offered)}', ACPI supports {acpi}"
            )
        mem_sleep = facts.get("guest.mem_sleep", "")
        if (
            self.mem_sleep
            and self.mem_sleep not in mem_sleep.replace("[", " ").replace("]", " ").split()
        ):
            label = "S3" if self.mem_sleep == "deep" else self.mem_sleep
            return (
                f"guest offers no {label}: /sys/power/mem_sleep is '{mem_sleep}', "
                f"ACPI supports {acpi}"
            )
        disk = facts.get("guest.power_disk", "")
        if (
            self.disk_mode
            and self.disk_mode not in disk.replace("[", " ").replace("]", " ").split()
        ):
            return f"guest offers no hibernation mode {self.disk_mode}: /sys/power/disk is '{disk}'"
        return None


def _choices(sysfs_value: str) -> list[str]:
    """``s2idle [deep]`` -> ``['s2idle', 'deep']``."""
    return sysfs_value.replace("[", " ").replace("]", " ").split()


S3_NEEDS = Needs(("mem",), mem_sleep="deep")
S4_NEEDS = Needs(("disk",), disk_mode="platform", swap=True)


# -- requests ------------------------------------------------------------------------------


class Request(Protocol):
    @property
    def description(self) -> str: ...

    def send(self, machine: Machine) -> concurrent.futures.Future[object] | None:
        """Ask for sleep; a future if an answer (a refusal) may arrive later."""
        ...


@dataclass(frozen=True)
class InGuestCommand:
    """A command run in the guest, detached so that the ssh call returns at once."""

    script: str
    label: str = ""

    @property
    def description(self) -> str:
        return (self.label or self.script) + " (in guest)"

    def send(self, machine: Machine) -> None:
        detached = f"setsid -f sh -c {shlex.quote(self.script)} </dev/null >/dev/null 2>&1"
        result = machine.run(detached)
        if not result.ok:
            raise GuestFault(
                "request",
                f"{self.description} exited {result.exit_status}: {result.stderr.strip()}",
            )


AGENT_ANSWER_S = 15.0  # a running agent answers guest-ping at once, even under TCG


@dataclass(frozen=True)
class AgentCommand:
    """A guest-agent command that sends no reply on success (guest-suspend-*)."""

    command: str

    @property
    def description(self) -> str:
        return f"guest agent {self.command}"

    def send(self, machine: Machine) -> concurrent.futures.Future[object]:
        # guest-suspend-* is never answered on success: without this, an absent agent would
        # look like a guest that would not go to sleep.
        try:
            machine.agent_execute("guest-ping", timeout=AGENT_ANSWER_S)
        except AgentError as exc:
            raise SetupError(
                f"the guest agent does not answer ({exc}): the agent cases need "
                "qemu-guest-agent running in the guest (systemctl enable --now qemu-guest-agent)"
            ) from exc
        return machine.agent_fire(self.command)


# -- proof of entry ------------------------------------------------------------------------

WAIT_SLICE = 0.5  # a wait for entry also looks at the request's answer this often


class Entry(Protocol):
    @property
    def description(self) -> str: ...

    def wait(
        self,
        machine: Machine,
        marks: Marks,
        answer: concurrent.futures.Future[object] | None,
        description: str,
    ) -> None:
        """Return once the sleep state is proven entered; raise SuspendNotEntered otherwise."""
        ...


@dataclass(frozen=True)
class PlatformEntry:
    """Entry proven by what QEMU sees: one signal, then optionally more (S4: power-off)."""

    signals: tuple[Signal, ...]
    limit: str = "suspend_entry"

    @property
    def description(self) -> str:
        return " then ".join(s.value for s in self.signals)

    def wait(
        self,
        machine: Machine,
        marks: Marks,
        answer: concurrent.futures.Future[object] | None,
        description: str,
    ) -> None:
        limit = getattr(machine.timeouts, self.limit)
        deadline = time.monotonic() + limit
        first, *rest = self.signals
        watch = machine.lockup_watch()
        while machine.wait_signal(first, marks.events, WAIT_SLICE) is None:
            check_answer(answer, description)
            check_not_locked_up(watch, description)
            said = machine.console.lines_since(marks.console)
            resumed = [line for line in said if GUEST_SAYS_RESUMED.search(line)]
            if resumed:
                raise SuspendNotEntered(
                    "suspend-entry",
                    f"{description}: the guest kernel reports it slept and "
                    f"resumed ('{resumed[0].strip()}') but the platform never saw {first.value}",
                )
            if time.monotonic() > deadline:
                raise SuspendNotEntered(
                    "suspend-entry",
                    f"{description} was sent but no {first.value} signal came "
                    f"within {limit:.0f}s; console: {machine.serial_tail()}",
                )
        for signal in rest:
            if (
                machine.wait_signal(
                    signal, marks.events, max(0.0, deadline - time.monotonic()) + limit
                )
                is None
            ):
                raise SuspendNotEntered(
                    f"{first.value}-then-{signal.value}",
                    f"no {signal.value} within {limit:.0f}s after "
                    f"{first.value}; console: {machine.serial_tail()}",
                )


@dataclass(frozen=True)
class ConsoleEntry:
    """Entry proven by the guest kernel's own console line (QEMU sees nothing for s2idle)."""

    pattern: str
    limit: str = "suspend_entry"

    @property
    def description(self) -> str:
        return f"console '{self.pattern}'"

    def wait(
        self,
        machine: Machine,
        marks: Marks,
        answer: concurrent.futures.Future[object] | None,
        description: str,
    ) -> None:
        limit = getattr(machine.timeouts, self.limit)
        deadline = time.monotonic() + limit
        pattern = re.compile(self.pattern)
        watch = machine.lockup_watch()
        while machine.console.wait_for(pattern, marks.console, WAIT_SLICE) is None:
            check_answer(answer, description)
            check_not_locked_up(watch, description)
            if time.monotonic() > deadline:
                raise SuspendNotEntered(
                    "suspend-entry",
                    f"{description} was sent but the guest never printed "
                    f"'{self.pattern}' within {limit:.0f}s; console: {machine.serial_tail()}",
                )


def check_not_locked_up(watch: LockupWatch, description: str) -> None:
    """A guest that locked up on its way to sleep will not get there: say so now."""
    if lockup := watch.check():
        raise GuestLockedUp("suspend-entry", f"{description} was sent, then {lockup}")


def check_answer(answer: concurrent.futures.Future[object] | None, description: str) -> None:
    """The agent only answers a suspend request to refuse it: turn that into the verdict."""
    if answer is None or not answer.done():
        return
    try:
        answer.result(timeout=0)
    except StateUnsupported:
        raise
    except AgentCommandError as exc:
        if "not supported" in exc.desc:
            raise StateUnsupported(f"{description}: {exc.desc}") from exc
        raise GuestFault("request", str(exc)) from exc
    except concurrent.futures.CancelledError:
        return
    except HarnessError as exc:
        raise GuestFault("request", str(exc)) from exc


# -- waking --------------------------------------------------------------------------------


class Wake(Protocol):
    @property
    def description(self) -> str: ...

    @property
    def keeps_vm_process(self) -> bool:
        """The same VM process runs before and after, so host-side connections survive."""
        ...

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        """Bring the sleeping guest back until its agent and ssh answer."""
        ...


def require_signal(
    machine: Machine, signal: Signal, marks: Marks, timeout: float, stage: str
) -> None:
    if machine.wait_signal(signal, marks.events, timeout) is None:
        raise WakeTimeout(
            stage,
            f"no {signal.value} signal within {timeout:.0f}s; console: {machine.serial_tail()}",
        )


def _require_console(
    machine: Machine, pattern: str, marks: Marks, timeout: float, stage: str
) -> None:
    if machine.console.wait_for(re.compile(pattern), marks.console, timeout) is None:
        raise WakeTimeout(
            stage,
            f"the guest never printed '{pattern}' within "
            f"{timeout:.0f}s; console: {machine.serial_tail()}",
        )


def wait_guest_ready(machine: Machine, timeout: float, timings: dict[str, float]) -> None:
    try:
        ready = machine.wait_ready("resume", timeout)
    except GuestFault:
        raise  # named already (a panic, a stalled CPU): not a timeout
    except HarnessError as exc:
        raise WakeTimeout("resume", str(exc)) from exc
    timings.update({f"resume_{k}": v for k, v in ready.items()})


@dataclass(frozen=True)
class SystemWakeup:
    """Host wake from RAM: QMP system_wakeup (libvirt: dompmwakeup)."""

    description: str = "system_wakeup"
    keeps_vm_process: bool = True

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        machine.wake_from_ram()
        require_signal(machine, Signal.WOKEN, marks, machine.timeouts.wake, "wake")
        wait_guest_ready(machine, machine.timeouts.agent, timings)


@dataclass(frozen=True)
class AwaitPlatformWake:
    """A wake source inside the platform (the RTC alarm): the host does nothing but wait."""

    after_seconds: float
    description: str = "the RTC alarm"
    keeps_vm_process: bool = True

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        limit = self.after_seconds + machine.timeouts.wake
        require_signal(machine, Signal.WOKEN, marks, limit, "rtc-wake")
        wait_guest_ready(machine, machine.timeouts.agent, timings)


@dataclass(frozen=True)
class SendKey:
    """Wake from suspend-to-idle with a key press (i8042 wakeup enabled by the request)."""

    key: str = "shift"
    description: str = "a key press (QMP send-key)"
    keeps_vm_process: bool = True

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        machine.send_key(self.key)
        _require_console(machine, r"PM: suspend exit", marks, machine.timeouts.wake, "wake")
        wait_guest_ready(machine, machine.timeouts.agent, timings)


@dataclass(frozen=True)
class Relaunch:
    """S4 resume: start the VM again on the same disks; the kernel loads its image."""

    description: str = "relaunch"
    keeps_vm_process: bool = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        relaunch_and_wait(machine, timings)


KERNEL_BANNER = "Linux version "  # a kernel's first console line


def relaunch_and_wait(machine: Machine, timings: dict[str, float]) -> None:
    """Power on, wait for the resumed guest, and time the part of the wait that the resume
    kernel's own clock does not count: from the launch to its first line (QEMU starting, the
    firmware, the kernel decompressing itself), as ``relaunch_to_kernel``."""
    since = machine.console.mark()
    launched = time.monotonic()
    machine.power_on()
    wait_guest_ready(machine, machine.timeouts.resume, timings)
    first = next(
        (t for t, line in machine.console.seen_since(since) if KERNEL_BANNER in line), None
    )
    if first is not None:
        timings["relaunch_to_kernel"] = first - launched


@dataclass(frozen=True)
class PowerLossRelaunch:
    """Hybrid sleep's second ending: power is lost while in RAM; the disk image must serve."""

    description: str = "power loss, then relaunch"
    keeps_vm_process: bool = False

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        machine.power_cut()
        relaunch_and_wait(machine, timings)


@dataclass(frozen=True)
class AwaitGuestResume:
    """The guest comes back by itself (hibernation modes reboot and test_resume)."""

    pattern: str = r"hibernation: hibernation exit|PM: hibernation exit"
    description: str = "nothing (the guest restores itself)"
    keeps_vm_process: bool = True

    def perform(self, machine: Machine, marks: Marks, timings: dict[str, float]) -> None:
        _require_console(machine, self.pattern, marks, machine.timeouts.resume, "resume")
        wait_guest_ready(machine, machine.timeouts.resume, timings)


# -- the transitions -----------------------------------------------------------------------

# The guest kernel's own records, modern and older wordings.
K_S3_ENTRY = (
    r"PM: suspend entry \(deep\)|PM: Syncing filesystems|PM: Preparing system for mem sleep"
)
K_S3_ACPI_WAKE = r"ACPI: (PM: )?Waking up from system sleep state S3"
K_S2IDLE_ENTRY = r"PM: suspend entry \(s2idle\)|PM: Preparing system for freeze sleep"
K_SUSPEND_EXIT = r"PM: suspend exit|PM: Finishing wakeup"
K_HIB_ENTRY = r"hibernation: hibernation entry|PM: hibernation entry|PM: Creating hibernation image"
K_HIB_EXIT = r"hibernation: hibernation exit|PM: hibernation exit|PM: Restarting tasks"
K_IMAGE_WRITTEN = r"hibernation: Wrote \d+ kbytes|PM: Wrote \d+ kbytes"
K_IMAGE_LOADED = (
    r"PM: Image loading done|PM: Loading image data pages .*done|hibernation: Read \d+ kbytes"
)


@dataclass(frozen=True)
class Rewake:
    """Wake again from the state the first cycle left saved, after ``prepare`` on the host."""

    description: str
    prepare: Callable[[Machine], None]
    expected_events: tuple[Signal, ...] = ()


@dataclass(frozen=True)
class Transition:
    id: str
    needs: Needs
    request: Request
    entry: Entry
    wake: Wake
    expected_events: tuple[Signal, ...] = ()
    kernel_records: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())
    # Host paths that stop the VM leave the guest clock behind by the time it was off; the
    # clock is then set from the host, as libvirt-guests' SYNC_TIME does (the lag is kept).
    resync_clock: bool = False
    # Further wakes from the same saved state (a save image restored again), each after its
    # preparation of the host (e.g. the disks reverted to the point of the save).
    then: tuple[Rewake, ...] = ()

    @property
    def counts_suspend(self) -> bool:
        """The kernel counts this in /sys/power/suspend_stats (suspend, not hibernation)."""
        states = self.needs.power_states
        return "disk" not in states and bool({"mem", "freeze", "standby"} & set(states))

    @property
    def keeps_vm_process(self) -> bool:
        return self.wake.keeps_vm_process

    @property
    def title(self) -> str:
        return f"{self.id}: {self.request.description}, woken by {self.wake.description}"


def _s2idle_script(state_command: str) -> str:
    """Enable the keyboard as a wake source and show the kernel's PM debug lines on the console,
    so that the harness can see the guest reach the idle loop before pressing a key."""
    return (
        "echo enabled > /sys/devices/platform/i8042/serio0/power/wakeup; "
        "echo 1 > /sys/power/pm_debug_messages; dmesg -n 8; "
        f"{state_command}; dmesg -n 7; echo 0 > /sys/power/pm_debug_messages"
    )


def _disk_mode(mode: str) -> InGuestCommand:
    return InGuestCommand(
        f"echo {mode} > /sys/power/disk && echo disk > /sys/power/state",
        f"echo {mode} > /sys/power/disk; echo disk > /sys/power/state",
    )


S3_RECORDS = (K_S3_ENTRY, K_S3_ACPI_WAKE, K_SUSPEND_EXIT)
S4_RECORDS = (K_HIB_ENTRY, K_IMAGE_WRITTEN, K_IMAGE_LOADED, K_HIB_EXIT)
HYBRID_RAM_RECORDS = (K_HIB_ENTRY, K_IMAGE_WRITTEN, K_S3_ACPI_WAKE, K_HIB_EXIT)
S3_EVENTS = (Signal.SUSPENDED, Signal.WOKEN)
S4_EVENTS = (Signal.HIBERNATED, Signal.POWERED_OFF)
S3_ENTRY = PlatformEntry((Signal.SUSPENDED,))
S4_ENTRY = PlatformEntry((Signal.HIBERNATED, Signal.POWERED_OFF), limit="hibernate")
HYBRID_NEEDS = Needs(("mem", "disk"), mem_sleep="deep", disk_mode="suspend", swap=True)
HYBRID_ENTRY = PlatformEntry((Signal.SUSPENDED,), limit="hibernate")
RTC_SECONDS = 5

S3_SYSTEMCTL = Transition(
    "s3-systemctl",
    S3_NEEDS,
    InGuestCommand("systemctl suspend"),
    S3_ENTRY,
    SystemWakeup(),
    S3_EVENTS,
    S3_RECORDS,
    ("s3",),
)
S3_AGENT = Transition(
    "s3-agent",
    S3_NEEDS,
    AgentCommand("guest-suspend-ram"),
    S3_ENTRY,
    SystemWakeup(),
    S3_EVENTS,
    S3_RECORDS,
    ("s3",),
)
S3_SYSFS = Transition(
    "s3-sysfs",
    S3_NEEDS,
    InGuestCommand("echo deep > /sys/power/mem_sleep; echo mem > /sys/power/state"),
    S3_ENTRY,
    SystemWakeup(),
    S3_EVENTS,
    S3_RECORDS,
    ("s3",),
)
S3_RTC = Transition(
    "s3-rtcwake",
    S3_NEEDS,
    InGuestCommand(f"rtcwake -m mem -s {RTC_SECONDS}"),
    S3_ENTRY,
    AwaitPlatformWake(RTC_SECONDS),
    S3_EVENTS,
    S3_RECORDS,
    ("s3", "rtc"),
)
S2IDLE = Transition(
    "s2idle",
    Needs(("mem",), mem_sleep="s2idle"),
    InGuestCommand(
        _s2idle_script(
            "old=$(sed 's/.*\\[\\(.*\\)\\].*/\\1/' /sys/power/mem_sleep); "
            "echo s2idle > /sys/power/mem_sleep; echo mem > /sys/power/state; "
            "echo $old > /sys/power/mem_sleep"
        ),
        "echo s2idle > mem_sleep; echo mem > state",
    ),
    ConsoleEntry(r"PM: suspend-to-idle"),
    SendKey(),
    (),
    (K_S2IDLE_ENTRY, K_SUSPEND_EXIT),
    ("s2idle",),
)
FREEZE = Transition(
    "freeze",
    Needs(("freeze",)),
    InGuestCommand(
        _s2idle_script("echo freeze > /sys/power/state"), "echo freeze > /sys/power/state"
    ),
    ConsoleEntry(r"PM: suspend-to-idle"),
    SendKey(),
    (),
    (K_S2IDLE_ENTRY, K_SUSPEND_EXIT),
    ("s2idle",),
)
STANDBY = Transition(
    "standby",
    Needs(("standby",)),
    InGuestCommand("echo standby > /sys/power/state"),
    S3_ENTRY,
    SystemWakeup(),
    S3_EVENTS,
    (),
    ("s1",),
)
S4_SYSTEMCTL = Transition(
    "s4-systemctl",
    S4_NEEDS,
    InGuestCommand("systemctl hibernate"),
    S4_ENTRY,
    Relaunch(),
    S4_EVENTS,
    S4_RECORDS,
    ("s4",),
)
S4_AGENT = Transition(
    "s4-agent",
    S4_NEEDS,
    AgentCommand("guest-suspend-disk"),
    S4_ENTRY,
    Relaunch(),
    S4_EVENTS,
    S4_RECORDS,
    ("s4",),
)
HYBRID_SYSTEMCTL_WAKE = Transition(
    "hybrid-systemctl-wake",
    HYBRID_NEEDS,
    InGuestCommand("systemctl hybrid-sleep"),
    HYBRID_ENTRY,
    SystemWakeup(),
    S3_EVENTS,
    HYBRID_RAM_RECORDS,
    ("hybrid",),
)
HYBRID_SYSTEMCTL_POWERLOSS = Transition(
    "hybrid-systemctl-powerloss",
    HYBRID_NEEDS,
    InGuestCommand("systemctl hybrid-sleep"),
    HYBRID_ENTRY,
    PowerLossRelaunch(),
    (Signal.SUSPENDED, Signal.POWERED_OFF),
    S4_RECORDS,
    ("hybrid",),
)
HYBRID_AGENT_WAKE = Transition(
    "hybrid-agent-wake",
    HYBRID_NEEDS,
    AgentCommand("guest-suspend-hybrid"),
    HYBRID_ENTRY,
    SystemWakeup(),
    S3_EVENTS,
    HYBRID_RAM_RECORDS,
    ("hybrid",),
)
HYBRID_AGENT_POWERLOSS = Transition(
    "hybrid-agent-powerloss",
    HYBRID_NEEDS,
    AgentCommand("guest-suspend-hybrid"),
    HYBRID_ENTRY,
    PowerLossRelaunch(),
    (Signal.SUSPENDED, Signal.POWERED_OFF),
    S4_RECORDS,
    ("hybrid",),
)
DISK_PLATFORM = Transition(
    "disk-platform",
    S4_NEEDS,
    _disk_mode("platform"),
    S4_ENTRY,
    Relaunch(),
    S4_EVENTS,
    S4_RECORDS,
    ("s4", "disk-mode"),
)
DISK_SHUTDOWN = Transition(
    "disk-shutdown",
    Needs(("disk",), disk_mode="shutdown", swap=True),
    _disk_mode("shutdown"),
    PlatformEntry((Signal.POWERED_OFF,), limit="hibernate"),
    Relaunch(),
    (Signal.SHUTDOWN, Signal.POWERED_OFF),
    S4_RECORDS,
    ("s4", "disk-mode"),
)
DISK_REBOOT = Transition(
    "disk-reboot",
    Needs(("disk",), disk_mode="reboot", swap=True),
    _disk_mode("reboot"),
    PlatformEntry((Signal.RESET,), limit="hibernate"),
    AwaitGuestResume(),
    (Signal.RESET,),
    S4_RECORDS,
    ("s4", "disk-mode"),
)
DISK_SUSPEND = Transition(
    "disk-suspend",
    HYBRID_NEEDS,
    _disk_mode("suspend"),
    HYBRID_ENTRY,
    SystemWakeup(),
    S3_EVENTS,
    HYBRID_RAM_RECORDS,
    ("s4", "disk-mode", "hybrid"),
)
DISK_TEST_RESUME = Transition(
    "disk-test_resume",
    Needs(("disk",), disk_mode="test_resume", swap=True),
    _disk_mode("test_resume"),
    ConsoleEntry(K_HIB_ENTRY, limit="hibernate"),
    AwaitGuestResume(),
    (),
    S4_RECORDS,
    ("s4", "disk-mode"),
)

ALL = (
    S3_SYSTEMCTL,
    S3_AGENT,
    S3_SYSFS,
    S3_RTC,
    S2IDLE,
    FREEZE,
    STANDBY,
    S4_SYSTEMCTL,
    S4_AGENT,
    HYBRID_SYSTEMCTL_WAKE,
    HYBRID_SYSTEMCTL_POWERLOSS,
    HYBRID_AGENT_WAKE,
    HYBRID_AGENT_POWERLOSS,
    DISK_PLATFORM,
    DISK_SHUTDOWN,
    DISK_REBOOT,
    DISK_SUSPEND,
    DISK_TEST_RESUME,
)
TRANSITIONS = {t.id: t for t in ALL}
