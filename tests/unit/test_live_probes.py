"""What the checks read from a live guest: the MiB sent each way, the closing look, the
clock."""

import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from harness.checks import live_probes
from harness.checks.live_probes import LOG_MARK, split_closing, transfer_both_ways
from harness.checks.probes import KERNEL_LOG_MARK as MARK
from harness.checks.probes import parse_facts
from harness.guest.ssh import BinaryResult, CommandResult
from tests.unit.fake_machine import FakeMachine


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


CLOSING = (
    f"disk.x=1\n{LOG_MARK}\nboot 1\nuser  :info  : {MARK} 1\nWARNING: CPU: 0 before\n"
    f"user  :info  : {MARK} 11\nPM: suspend entry\nPM: suspend exit\n"
)


def test_the_closing_look_keeps_the_kernel_log_after_the_mark_of_the_facts_before() -> None:
    head, lines = split_closing(CLOSING, {"guest.log_mark": f"{MARK} 11"})
    assert head == "disk.x=1\n"
    assert lines == ["PM: suspend entry", "PM: suspend exit"]
    # Mark 1 is not mark 11's prefix: what came after the first is kept, the warning too.
    assert split_closing(CLOSING, {"guest.log_mark": f"{MARK} 1"})[1][0] == "WARNING: CPU: 0 before"


def test_without_a_mark_the_closing_look_keeps_what_follows_the_lines_counted() -> None:
    _, lines = split_closing(CLOSING, {"guest.dmesg_lines": "4"})
    assert lines == ["PM: suspend entry", "PM: suspend exit"]


def test_a_mark_the_log_no_longer_holds_keeps_the_whole_log() -> None:
    """A guest that booted again since the facts before: all of the new boot's log is new."""
    _, lines = split_closing(CLOSING, {"guest.log_mark": f"{MARK} 7"})
    assert lines[0] == "boot 1" and len(lines) == 6


def _closing(tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, float]:
    """The closing look run by a real bash, its state folder in ``tmp_path``."""
    monkeypatch.setattr(live_probes, "STATE_DIR", str(tmp_path))
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", live_probes.closing_tail(token)], capture_output=True, text=True
    )
    head, _ = split_closing(done.stdout, {})
    return parse_facts(CommandResult("", done.returncode, head, "")), time.monotonic() - started


def test_the_closing_look_goes_on_at_once_when_the_transfers_have_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "transferred").write_text("abc123\n")
    facts, seconds = _closing(tmp_path, "abc123", monkeypatch)
    assert facts["net.transfers_ended_before_closing"] == "yes", facts
    assert seconds < 1, (facts, seconds)


def test_the_closing_look_waits_for_the_transfers_then_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "transferred").write_text("an earlier cycle's\n")
    later = subprocess.Popen(["bash", "-c", f"sleep 0.5; echo abc123 > {tmp_path}/transferred"])
    try:
        facts, seconds = _closing(tmp_path, "abc123", monkeypatch)
    finally:
        later.wait()
    assert facts["net.transfers_ended_before_closing"] == "yes", facts
    assert 0.5 <= seconds < 3, seconds


def test_the_closing_look_waits_for_the_transfers_only_so_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_probes, "TRANSFERS_WAIT_S", 2)  # bash's $SECONDS: 1 to 2 s
    facts, seconds = _closing(tmp_path, "abc123", monkeypatch)
    assert facts["net.transfers_ended_before_closing"] == "no", facts
    assert 1 <= seconds < 4, seconds


def test_the_transfer_leaves_its_token_for_the_closing_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_probes, "STATE_DIR", str(tmp_path))
    assert transfer_both_ways(LocalBash(), "abc123")["net.guest_to_host"] == "ok"  # type: ignore[arg-type]
    assert (tmp_path / "transferred").read_text() == "abc123\n"


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


def test_the_nic_named_before_the_sleep_is_looked_at_without_a_guest_program(
    tmp_path: Path,
) -> None:
    machine = FakeMachine(tmp_path)
    machine.irqs = 40
    before = {"net.iface": "ens3", "net.device": "virtio0"}
    assert live_probes.net_facts(machine, before) == {  # type: ignore[arg-type]
        "net.iface": "ens3",
        "net.driver": "virtio_net",
        "net.operstate": "up",
        "net.carrier": "1",
        "net.device": "virtio0",
        "net.irqs": "40",
        "net.rx_packets": "1000",
    }
    assert machine.agent_shells == 0


def test_without_a_nic_named_before_the_sleep_the_network_script_looks_for_it(
    tmp_path: Path,
) -> None:
    machine = FakeMachine(tmp_path)
    machine.irqs = 25
    facts = live_probes.net_facts(machine, {})  # type: ignore[arg-type]
    assert facts["net.driver"] == "virtio_net" and machine.agent_shells == 1, facts
    assert facts["net.irqs"] == "25", facts  # counted on the host: the script has no awk
