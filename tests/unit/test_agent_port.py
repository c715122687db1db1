"""A wait for the agent after a resume ends early, named, when the agent's port has lost the
host's PORT_OPEN while ssh answers; any other state leaves the wait to its bound."""

from harness.machines.agent_port import (
    LOST_AFTER_SECONDS,
    PROBE_AFTER_SECONDS,
    PROBE_EVERY_SECONDS,
    AgentPortWatch,
    PortState,
)

LOST = PortState.parse("host_connected:0\nguest_connected:1\n")
OPEN = PortState.parse("host_connected:1\nguest_connected:1\n")


class Guest:
    """A clock and a sequence of port states, one per look (None: ssh silent)."""

    def __init__(self, states: list[PortState | None]) -> None:
        self.now = 0.0
        self.states = states
        self.looks = 0

    def read(self, timeout: float) -> PortState | None:
        state = self.states[min(self.looks, len(self.states) - 1)]
        self.looks += 1
        return state


def run_for(guest: Guest, seconds: float, step: float = 1.0) -> tuple[str, float]:
    watch = AgentPortWatch(guest.read, clock=lambda: guest.now)
    while guest.now <= seconds:
        if said := watch.check():
            return said, guest.now
        guest.now += step
    return "", guest.now


def test_a_port_that_keeps_host_connected_0_ends_the_wait_named() -> None:
    guest = Guest([LOST])
    said, at = run_for(guest, 180)
    assert "agent port reads host_connected 0 (guest_connected 1)" in said
    assert "PORT_OPEN never reached it" in said
    assert at == PROBE_AFTER_SECONDS + LOST_AFTER_SECONDS
    assert guest.looks == 1 + LOST_AFTER_SECONDS / PROBE_EVERY_SECONDS


def test_nothing_is_looked_at_while_a_healthy_agent_may_still_answer() -> None:
    guest = Guest([LOST])
    assert run_for(guest, PROBE_AFTER_SECONDS - 1) == ("", PROBE_AFTER_SECONDS)
    assert guest.looks == 0


def test_an_open_port_or_a_silent_ssh_never_ends_the_wait() -> None:
    sequences: list[list[PortState | None]] = [[OPEN], [None], [LOST, None, LOST, OPEN, None]]
    for states in sequences:
        assert run_for(Guest(states), 180)[0] == ""


def test_a_loss_seen_once_then_not_starts_over() -> None:
    guest = Guest([LOST, OPEN, LOST, LOST, LOST, LOST])
    said, at = run_for(guest, 180)
    assert said
    assert at == PROBE_AFTER_SECONDS + 2 * PROBE_EVERY_SECONDS + LOST_AFTER_SECONDS


def test_the_port_state_is_parsed_from_debugfs_lines() -> None:
    assert (LOST.host, LOST.guest, LOST.host_lost) == ("0", "1", True)
    assert not OPEN.host_lost
    assert PortState.parse("").host is None
