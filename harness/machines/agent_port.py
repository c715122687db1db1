"""The guest agent's virtio-serial port as the guest's virtio_console driver sees it, read over
ssh while the agent is silent after a resume.

A port that reads ``host_connected 0`` while ssh answers has lost the host's PORT_OPEN: QEMU
sends it once, when the guest announces the port, and does not send it again, so qemu-ga waits
on a hung-up port for good. A wait for the agent that sees that state for a while ends with the
diagnosis instead of running out its whole bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# The guest agent port's state in the guest (debugfs only).
AGENT_PORT_STATE = (
    "mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug; "
    "for f in /sys/kernel/debug/virtio-ports/*; do "
    "grep -q '^name: org.qemu.guest_agent.0$' \"$f\" && "
    "grep -E '^(host|guest)_connected: ' \"$f\" | tr -d ' '; done"
)
# A healthy agent answers within seconds of a resume: only a longer silence is looked into.
PROBE_AFTER_SECONDS = 15.0
PROBE_EVERY_SECONDS = 10.0
PROBE_SECONDS = 5.0  # one look over ssh; a guest that is still resuming may not answer it
# The port read host_connected 0 this long, ssh answering all along: QEMU's PORT_OPEN is lost.
LOST_AFTER_SECONDS = 20.0


@dataclass(frozen=True)
class PortState:
    """``host_connected`` and ``guest_connected`` of the agent's port (None: not found)."""

    host: str | None
    guest: str | None
    raw: str

    @classmethod
    def parse(cls, output: str) -> PortState:
        fields = dict(line.split(":", 1) for line in output.split() if line.count(":") == 1)
        return cls(fields.get("host_connected"), fields.get("guest_connected"), output.strip())

    @property
    def host_lost(self) -> bool:
        """The guest side has the port open and the host's open never reached it."""
        return self.host == "0"


class AgentPortWatch:
    """Looks at the agent's port every ``PROBE_EVERY_SECONDS`` once the agent has been silent
    for ``PROBE_AFTER_SECONDS``; ``check`` names a port that has read ``host_connected 0`` in
    every look over ``LOST_AFTER_SECONDS``. ``read`` returns None when ssh does not answer,
    which ends any loss seen so far (the guest may still be coming back)."""

    def __init__(
        self,
        read: Callable[[float], PortState | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._clock = clock
        self._start = clock()
        self._last_look: float | None = None
        self._lost_since: float | None = None

    def check(self) -> str:
        now = self._clock()
        if now - self._start < PROBE_AFTER_SECONDS:
            return ""
        if self._last_look is not None and now - self._last_look < PROBE_EVERY_SECONDS:
            return ""
        self._last_look = now
        state = self._read(PROBE_SECONDS)
        if state is None or not state.host_lost:
            self._lost_since = None
            return ""
        if self._lost_since is None:
            self._lost_since = now
        if now - self._lost_since < LOST_AFTER_SECONDS:
            return ""
        return (
            f"the guest is up (ssh answers) but its agent port reads host_connected 0 "
            f"(guest_connected {state.guest}) in every look over {now - self._lost_since:.0f}s: "
            "the host's PORT_OPEN never reached it, so the agent cannot answer"
        )
