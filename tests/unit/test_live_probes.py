"""What the checks read from a live guest: the MiB sent each way, the closing look, the
clock."""

import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from harness import live_probes
from harness.live_probes import LOG_MARK, closing_facts, transfer_both_ways
from harness.ssh import BinaryResult, CommandResult


class Guest:
    """Keeps what arrives (optionally damaged on the way in), answers its checksum and sends
    it back (optionally damaged on the way out)."""

    def __init__(self, damage_in: bool = False, damage_out: bool = False) -> None:
        self.damage_in, self.damage_out = damage_in, damage_out

    def fetch(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> BinaryResult:
        assert stdin is not None
        kept = (b"x" + stdin[1:]) if self.damage_in else stdin
        sent = (kept[:-1] + b"y") if self.damage_out else kept
        line = hashlib.sha256(kept).hexdigest().encode() + b"  -\n"
        return BinaryResult(command, 0, line + sent, "")


@pytest.mark.parametrize(
    ("damage_in", "damage_out", "inbound", "outbound"),
    [
        (False, False, "ok", "ok"),
        (True, False, "corrupt", "ok"),
        (False, True, "ok", "corrupt"),
    ],
)
def test_each_direction_is_judged_on_its_own(
    damage_in: bool, damage_out: bool, inbound: str, outbound: str
) -> None:
    facts = transfer_both_ways(Guest(damage_in, damage_out))  # type: ignore[arg-type]
    assert facts["net.host_to_guest"].startswith(inbound), facts
    assert facts["net.guest_to_host"].startswith(outbound), facts


class Closing:
    """Answers the closing look as a guest whose kernel logged four lines, two of them before
    the cycle started."""

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        log = "boot 1\nboot 2\nPM: suspend entry\nPM: suspend exit\n"
        return CommandResult(command, 0, f"net.iface=ens3\nnet.irqs=7\n{LOG_MARK}\n{log}", "")


def test_the_closing_look_keeps_the_kernel_log_since_the_cycle_began() -> None:
    irqs, log = closing_facts(Closing(), line_count=2)  # type: ignore[arg-type]
    assert log == ["PM: suspend entry", "PM: suspend exit"]
    assert irqs == "7"


class AgentClock:
    """An agent whose guest-get-time answers the host's clock plus ``offset`` seconds."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def agent_execute(self, command: str) -> int:
        assert command == "guest-get-time"
        return int((time.time() + self.offset) * 1e9)


@pytest.mark.parametrize("offset", [0.0, 7.5, -3.25])
def test_the_clock_is_the_guests_minus_the_hosts_within_its_uncertainty(offset: float) -> None:
    facts = live_probes.clock_via_agent(AgentClock(offset))  # type: ignore[arg-type]
    assert abs(float(facts["clock.step_s"]) - offset) < 0.01, facts
    assert 0 <= float(facts["clock.uncertainty_s"]) < 0.01, facts


class LocalBash:
    """Runs the probe's commands in a real bash on this host, as the guest's shell would."""

    def run(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> CommandResult:
        done = self.fetch(command, timeout, stdin)
        return CommandResult(command, done.exit_status, done.data.decode(), done.stderr)

    def fetch(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> BinaryResult:
        done = subprocess.run(["bash", "-c", command], input=stdin or b"", capture_output=True)
        return BinaryResult(command, done.returncode, done.stdout, done.stderr.decode())


def test_the_transfer_makes_its_folder_on_a_freshly_booted_guest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a reboot the state folder (tmpfs) is gone until the facts script, which runs
    beside the transfer, makes it again: the transfer must not depend on winning that race."""
    monkeypatch.setattr(live_probes, "STATE_DIR", str(tmp_path / "not-yet"))
    facts = transfer_both_ways(LocalBash())  # type: ignore[arg-type]
    assert facts == {"net.host_to_guest": "ok", "net.guest_to_host": "ok"}, facts


def test_a_transfer_that_fails_in_the_guest_says_what_the_guest_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_probes, "STATE_DIR", "/proc/no-such-folder")
    facts = transfer_both_ways(LocalBash())  # type: ignore[arg-type]
    assert facts["net.guest_to_host"].startswith("corrupt (0 bytes received): the guest said")
    assert "no-such-folder" in facts["net.guest_to_host"], facts
