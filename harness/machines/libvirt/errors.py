"""libvirt's errors as the harness's: one line that names the operation and libvirt's own text.

Refusals that mean "this combination does not offer it" become StateUnsupported (verdict
UNSUPPORTED, libvirt's text kept); an agent that does not answer becomes AgentError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import libvirt

from harness.errors import AgentCommandError, AgentError, HarnessError, StateUnsupported

T = TypeVar("T")

UNSUPPORTED_CODES = {
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
    libvirt.VIR_ERR_NO_SUPPORT,
}
UNSUPPORTED_TEXTS = ("not supported", "is disabled for this domain")
# VIR_ERR_AGENT_COMMAND_TIMEOUT (96) is newer than libvirt 9.0, whose headers the binding is built
# against on Debian 12.
AGENT_CODES = {
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    getattr(libvirt, "VIR_ERR_AGENT_COMMAND_TIMEOUT", 96),
}


class LibvirtError(HarnessError):
    """libvirt refused or failed an operation; ``code`` is libvirt's error number."""

    def __init__(self, operation: str, code: int, text: str) -> None:
        super().__init__(f"libvirt {operation}: {text} (libvirt error {code})")
        self.operation = operation
        self.code = code
        self.text = text


class LibvirtUnsupported(StateUnsupported):
    """libvirt or QEMU does not offer this operation for this domain or state."""

    def __init__(self, operation: str, code: int, text: str) -> None:
        super().__init__(f"libvirt {operation}: {text} (libvirt error {code})")
        self.operation = operation
        self.code = code
        self.text = text


def translate(operation: str, exc: libvirt.libvirtError) -> HarnessError:
    code = exc.get_error_code() or 0
    text = (exc.get_error_message() or str(exc)).strip()
    if code in AGENT_CODES:
        return AgentError(f"libvirt {operation}: guest agent: {text} (libvirt error {code})")
    if code in UNSUPPORTED_CODES or any(t in text for t in UNSUPPORTED_TEXTS):
        return LibvirtUnsupported(operation, code, text)
    if operation.startswith("agent ") and code == libvirt.VIR_ERR_INTERNAL_ERROR:
        return AgentCommandError(operation.removeprefix("agent "), text)
    return LibvirtError(operation, code, text)


def call(operation: str, function: Callable[[], T]) -> T:
    """Run one libvirt call; its libvirtError becomes the harness's one-line error."""
    try:
        return function()
    except libvirt.libvirtError as exc:
        raise translate(operation, exc) from exc
