"""A shell script run in the guest through the guest agent (guest-exec), whatever carries the
agent's commands: the harness's own agent client or libvirt's agent passthrough."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from harness.errors import AgentError
from harness.guest.ssh import CommandResult

# The agent has no completion event for guest-exec: its status is asked for this often.
EXEC_STATUS_INTERVAL = 0.05

Execute = Callable[[str, dict[str, Any]], Any]


def run_script(execute: Execute, script: str, timeout: float) -> CommandResult:
    """``sh -c script`` in the guest; its exit status and output once it has exited."""
    started = execute(
        "guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True}
    )
    deadline = time.monotonic() + timeout
    while True:
        status = execute("guest-exec-status", {"pid": started["pid"]})
        if status.get("exited"):
            return CommandResult(
                script,
                int(status.get("exitcode", -1)),
                base64.b64decode(status.get("out-data", "")).decode(errors="replace"),
                base64.b64decode(status.get("err-data", "")).decode(errors="replace"),
            )
        if time.monotonic() > deadline:
            raise AgentError(f"guest-exec did not finish within {timeout:.0f}s")
        time.sleep(EXEC_STATUS_INTERVAL)
