"""One error root for the harness, with subclasses that name the stage that failed.

A ``HarnessError`` means the harness could not do its part (verdict ERROR). A ``GuestFault``
means the guest, QEMU or a device misbehaved while the harness did its part (verdict FAIL).
Each carries a one-line message that names the fix or the stage, and optional evidence.
"""

from __future__ import annotations

from typing import Any


class HarnessError(Exception):
    """Root of every error the harness raises on purpose."""

    def __init__(self, message: str, *, evidence: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.evidence: dict[str, Any] = evidence or {}

    def __str__(self) -> str:
        return self.message


class SetupError(HarnessError):
    """Something the harness needs is missing or wrong: binary, image, option, permission."""


class ImageBuildError(SetupError):
    """The guest image could not be built."""


class QemuStartError(HarnessError):
    """QEMU exited or refused to start."""


class AgentError(HarnessError):
    """The guest agent did not answer or answered with an error the harness cannot handle."""


class AgentCommandError(AgentError):
    """The agent answered with an error (for example an unsupported suspend mode)."""

    def __init__(self, command: str, desc: str) -> None:
        super().__init__(f"guest agent {command}: {desc}")
        self.command = command
        self.desc = desc


class SshError(HarnessError):
    """ssh into the guest failed."""


class SshKeyRefused(SshError):
    """The guest's sshd answered and refused the harness's key (not installed there yet)."""


class StageTimeout(HarnessError):
    """A bounded wait ran out; ``stage`` names what never happened."""

    def __init__(self, stage: str, seconds: float, detail: str = "", **kw: Any) -> None:
        text = f"timed out after {seconds:.0f}s waiting for {stage}"
        super().__init__(f"{text}: {detail}" if detail else text, **kw)
        self.stage = stage
        self.seconds = seconds


class BootTimeout(StageTimeout):
    """The guest never became ready after a cold boot."""


class GuestFault(HarnessError):
    """The guest or a device misbehaved: the transition or a check failed (verdict FAIL)."""

    def __init__(self, stage: str, message: str, **kw: Any) -> None:
        super().__init__(f"{stage}: {message}", **kw)
        self.stage = stage


class KernelPanic(GuestFault):
    """The guest kernel panicked (on the console) while the harness waited for it."""


class SuspendNotEntered(GuestFault):
    """The guest was asked to sleep but QEMU never saw it go to sleep."""


class WakeTimeout(GuestFault):
    """The guest was woken (or relaunched) but never came back."""


class GuestStalled(GuestFault):
    """A guest CPU stalled while the harness waited for the guest to come back (the kernel's
    own stall report on the console): the wait ends there instead of at its limit."""


class GuestLockedUp(GuestFault):
    """A guest CPU ran with interrupts disabled and its timer interrupt pending for longer
    than any kernel section should (seen in QEMU's vCPU state): the wait ends there."""


class GuestAgentLost(GuestFault):
    """The guest came back (ssh answers) but its agent port never saw the host open it again:
    the agent cannot answer, so the wait for it ends there instead of at its limit."""


class StateUnsupported(HarnessError):
    """This combination does not offer the requested sleep state (verdict UNSUPPORTED)."""
