"""Power transitions as data: how sleep is requested, which signal proves it, how to wake.

A transition is chosen by data (a request strategy and a wake strategy), never by an
if-chain; a new path (hybrid, RTC, libvirt) is a new request or wake strategy.
"""

from __future__ import annotations

import concurrent.futures
import enum
import shlex
from dataclasses import dataclass
from typing import Protocol

from harness.errors import GuestFault, HarnessError
from harness.machine import Machine, Signal


class SleepState(enum.Enum):
    S3 = "s3"
    S4 = "s4"

    @property
    def entry_signal(self) -> Signal:
        return Signal.SUSPENDED if self is SleepState.S3 else Signal.HIBERNATED


class Request(Protocol):
    @property
    def description(self) -> str: ...

    def send(self, machine: Machine) -> concurrent.futures.Future[object] | None:
        """Ask for sleep; a future if the answer (an error) may arrive later."""
        ...


@dataclass(frozen=True)
class InGuestCommand:
    """A command run inside the guest over ssh, queued so that ssh returns at once."""

    argv: tuple[str, ...]

    @property
    def description(self) -> str:
        return shlex.join(self.argv) + " (in guest)"

    def send(self, machine: Machine) -> None:
        result = machine.run(shlex.join(self.argv))
        if not result.ok:
            raise GuestFault(
                "request",
                f"{self.description} exited {result.exit_status}: {result.stderr.strip()}",
            )


@dataclass(frozen=True)
class AgentCommand:
    """A guest-agent command that sends no reply on success (guest-suspend-*)."""

    command: str

    @property
    def description(self) -> str:
        return f"guest agent {self.command}"

    def send(self, machine: Machine) -> concurrent.futures.Future[object]:
        return machine.agent_fire(self.command)


class Wake(Protocol):
    @property
    def description(self) -> str: ...

    def perform(self, machine: Machine, since: int, timings: dict[str, float]) -> None:
        """Bring the sleeping guest back until its agent and ssh answer."""
        ...


@dataclass(frozen=True)
class Transition:
    id: str
    state: SleepState
    request: Request
    wake: Wake

    @property
    def title(self) -> str:
        return (
            f"{self.state.value.upper()} via {self.request.description}, "
            f"woken by {self.wake.description}"
        )


class WakeTimeoutError(GuestFault):
    pass


def require_event(machine: Machine, signal: Signal, since: int, timeout: float, stage: str) -> None:
    if machine.wait_signal(signal, since, timeout) is None:
        raise WakeTimeoutError(
            stage,
            f"no {signal.value} signal within {timeout:.0f}s; serial: {machine.serial_tail()}",
        )


@dataclass(frozen=True)
class SystemWakeup:
    """Host wake of an S3 guest: QMP system_wakeup (libvirt: dompmwakeup)."""

    description: str = "system_wakeup"

    def perform(self, machine: Machine, since: int, timings: dict[str, float]) -> None:
        timeouts = machine.timeouts
        machine.wake_from_ram()
        require_event(machine, Signal.WOKEN, since, timeouts.wake, "wake")
        timings.update(
            {f"resume_{k}": v for k, v in machine.wait_ready("resume", timeouts.agent).items()}
        )


@dataclass(frozen=True)
class Relaunch:
    """S4 resume: start the VM again on the same disks; the kernel loads its image."""

    description: str = "relaunch"

    def perform(self, machine: Machine, since: int, timings: dict[str, float]) -> None:
        timeouts = machine.timeouts
        machine.power_on()
        try:
            ready = machine.wait_ready("resume", timeouts.resume)
        except HarnessError as exc:
            raise WakeTimeoutError("resume", f"{exc}") from exc
        timings.update({f"resume_{k}": v for k, v in ready.items()})


S3_SYSTEMCTL = Transition(
    "s3-systemctl",
    SleepState.S3,
    InGuestCommand(("systemctl", "--no-block", "suspend")),
    SystemWakeup(),
)
S3_AGENT = Transition("s3-agent", SleepState.S3, AgentCommand("guest-suspend-ram"), SystemWakeup())
S4_SYSTEMCTL = Transition(
    "s4-systemctl",
    SleepState.S4,
    InGuestCommand(("systemctl", "--no-block", "hibernate")),
    Relaunch(),
)
S4_AGENT = Transition("s4-agent", SleepState.S4, AgentCommand("guest-suspend-disk"), Relaunch())

TRANSITIONS = {t.id: t for t in (S3_SYSTEMCTL, S3_AGENT, S4_SYSTEMCTL, S4_AGENT)}
