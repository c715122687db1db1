"""How a sleep is requested: a command run in the guest, or a guest-agent command."""

from __future__ import annotations

import concurrent.futures
import shlex
from dataclasses import dataclass
from typing import Protocol

from harness.errors import AgentError, GuestFault, SetupError
from harness.machines.protocol import Machine


class Request(Protocol):
    @property
    def description(self) -> str: ...

    def send(self, machine: Machine) -> concurrent.futures.Future[object] | None:
        """Ask for sleep; a future if an answer (a refusal) may arrive later."""
        ...


@dataclass(frozen=True, kw_only=True)
class InGuestCommand:
    """A command run in the guest, detached so that the ssh call returns at once; ``label``
    names it in reports when the script itself is too long to read."""

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
