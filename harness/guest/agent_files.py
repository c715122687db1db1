"""A guest file read through the guest agent's file commands (guest-file-open, -read, -close),
whatever carries the agent's commands: the harness's own agent client or libvirt's passthrough.

No program is started in the guest: right after a wake a TCG guest is still busy resuming,
and a guest-exec of even a short script then costs it over a hundred ms, a file read about ten.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from harness.errors import AgentCommandError

Execute = Callable[[str, dict[str, Any]], Any]

READ_CHUNK = 65536  # /proc/interrupts of a guest with a few vCPUs is a few KiB: one read
READ_LIMIT = 1 << 20  # the files read are sysfs and procfs texts; this bounds a file without end


def read_file(execute: Execute, path: str) -> bytes | None:
    """What the guest reads from ``path`` (at most READ_LIMIT bytes), or None when the guest
    cannot open or read it (gone, or a sysfs file that refuses reads in its state, such as
    ``carrier`` of an interface that is down)."""
    try:
        handle = execute("guest-file-open", {"path": path, "mode": "r"})
    except AgentCommandError:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        while size < READ_LIMIT:
            reply = execute("guest-file-read", {"handle": handle, "count": READ_CHUNK})
            chunk = base64.b64decode(reply.get("buf-b64", ""))
            chunks.append(chunk)
            size += len(chunk)
            if reply.get("eof") or not chunk:
                break
    except AgentCommandError:
        return None
    finally:
        execute("guest-file-close", {"handle": handle})
    return b"".join(chunks)
