"""The readiness tail both backends share: when the per-run key goes in through the agent."""

import time
from pathlib import Path
from typing import Any

import paramiko
import pytest

from harness.errors import AgentError, SshError, SshKeyRefused
from harness.guest.ssh import SshConnection, SshKey
from harness.machines.base import MachineBase, ipv4_addresses


class ScriptedSsh:
    """Refuses the key until ``installed`` says otherwise; records what was asked."""

    def __init__(self, steps: list[str], connected: bool = False, installed: bool = True) -> None:
        self.steps = steps
        self.connected = connected
        self.installed = installed

    def connect(self, timeout: float) -> float:
        self.steps.append("connect")
        if not self.installed:
            raise SshKeyRefused("refused")
        self.connected = True
        return 0.0

    def run(self, command: str, timeout: float) -> None:
        self.steps.append(f"run {command}")


NIC = {"name": "ens3", "ip-addresses": [{"ip-address-type": "ipv6", "ip-address": "fe80::1"}]}
LOOPBACK = {"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1"}]}
ADDRESSED = {**NIC, "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.2.15"}]}


class Guest(MachineBase):
    """Its agent shows the NIC without an IPv4 address for ``unaddressed`` looks; an agent that
    refuses the command (``network_facts`` False) answers with an AgentError."""

    def __init__(
        self, ssh: ScriptedSsh, unaddressed: int = 0, network_facts: bool = True
    ) -> None:  # no disks, no QEMU: only the tail
        self.name = "guest"
        self._ssh = ssh  # type: ignore[assignment]
        self._ssh_key = SshKey.__new__(SshKey)
        object.__setattr__(self._ssh_key, "public_line", "ecdsa-sha2-nistp256 AAAA test")
        self.unaddressed = unaddressed
        self.network_facts = network_facts

    def agent_execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        assert isinstance(self._ssh, ScriptedSsh)
        self._ssh.steps.append(command)
        if command == "guest-network-get-interfaces":
            if not self.network_facts:
                raise AgentError("The command guest-network-get-interfaces has been disabled")
            self.unaddressed -= 1
            return [LOOPBACK, NIC if self.unaddressed >= 0 else ADDRESSED]
        self._ssh.installed = True
        return {}


def ready(stage: str, ssh: ScriptedSsh, **guest: Any) -> list[str]:
    Guest(ssh, **guest)._ssh_ready(stage, time.monotonic() + 30)
    return ssh.steps


LOOK = "guest-network-get-interfaces"


def test_a_boot_installs_the_key_before_connecting() -> None:
    steps = ready("boot", ScriptedSsh([], installed=False))
    assert steps == [LOOK, "guest-ssh-add-authorized-keys", "connect", "run true"]


def test_a_boot_connects_only_once_the_guest_has_an_address() -> None:
    """A connection made before the address is there waits out slirp's SYN backoff."""
    steps = ready("boot", ScriptedSsh([], installed=False), unaddressed=2)
    assert steps == [LOOK, LOOK, LOOK, "guest-ssh-add-authorized-keys", "connect", "run true"]


def test_a_guest_that_a_service_booted_is_also_waited_for() -> None:
    """libvirt-guests' start boots guests that the harness then waits for as resumed."""
    steps = ready("resume", ScriptedSsh([]), unaddressed=1)
    assert steps == [LOOK, LOOK, "connect", "run true"]


def test_an_agent_that_refuses_network_facts_leaves_it_to_ssh() -> None:
    steps = ready("boot", ScriptedSsh([], installed=False), network_facts=False)
    assert steps == [LOOK, "guest-ssh-add-authorized-keys", "connect", "run true"]


def test_a_guest_that_never_gets_an_address_is_named() -> None:
    guest = Guest(ScriptedSsh([]), unaddressed=10**6)
    with pytest.raises(SshError, match=r"\['lo', 'ens3'\] never got an IPv4 address"):
        guest._ssh_ready("boot", time.monotonic() + 0.3)


def test_only_ipv4_addresses_off_loopback_count() -> None:
    assert ipv4_addresses([LOOPBACK, NIC]) == []
    assert ipv4_addresses([LOOPBACK, ADDRESSED]) == ["10.0.2.15"]
    assert ipv4_addresses({"error": "not a list"}) == []


@pytest.mark.parametrize(("stage", "looks"), [("resume", [LOOK]), ("checkpoint restore", [])])
def test_a_resumed_guest_holding_the_key_is_not_asked_to_install_it(
    stage: str, looks: list[str]
) -> None:
    """A restored guest was frozen with its address: not even that is looked at."""
    assert ready(stage, ScriptedSsh([])) == [*looks, "connect", "run true"]


def test_a_refused_key_is_installed_and_the_connection_tried_again() -> None:
    steps = ready("resume", ScriptedSsh([], installed=False))
    assert steps == [LOOK, "connect", "guest-ssh-add-authorized-keys", "connect", "run true"]


def test_a_live_connection_is_reused() -> None:
    assert ready("resume", ScriptedSsh([], connected=True)) == ["run true"]


def test_connect_ends_at_once_when_sshd_refuses_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    attempts: list[int] = []

    def refuse(self: paramiko.SSHClient, *args: Any, **kwargs: Any) -> None:
        attempts.append(1)
        raise paramiko.AuthenticationException("Authentication failed.")

    monkeypatch.setattr(paramiko.SSHClient, "connect", refuse)
    key = SshKey.generate(tmp_path)
    with pytest.raises(SshKeyRefused, match="refused the harness's key"):
        SshConnection(1, key).connect(timeout=30)
    assert attempts == [1]
