"""The readiness tail both backends share: when the per-run key goes in through the agent."""

import time
from pathlib import Path
from typing import Any

import paramiko
import pytest

from harness.errors import SshKeyRefused
from harness.guest_base import GuestBase
from harness.ssh import SshConnection, SshKey


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


class Guest(GuestBase):
    def __init__(self, ssh: ScriptedSsh) -> None:  # no disks, no QEMU: only the tail
        self.name = "guest"
        self._ssh = ssh  # type: ignore[assignment]
        self._ssh_key = SshKey.__new__(SshKey)
        object.__setattr__(self._ssh_key, "public_line", "ecdsa-sha2-nistp256 AAAA test")

    def agent_execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        assert isinstance(self._ssh, ScriptedSsh)
        self._ssh.steps.append(command)
        self._ssh.installed = True
        return {}


def ready(stage: str, ssh: ScriptedSsh) -> list[str]:
    Guest(ssh)._ssh_ready(stage, time.monotonic() + 30)
    return ssh.steps


def test_a_boot_installs_the_key_before_connecting() -> None:
    steps = ready("boot", ScriptedSsh([], installed=False))
    assert steps == ["guest-ssh-add-authorized-keys", "connect", "run true"]


@pytest.mark.parametrize("stage", ["resume", "checkpoint restore"])
def test_a_resumed_guest_holding_the_key_is_not_asked_to_install_it(stage: str) -> None:
    assert ready(stage, ScriptedSsh([])) == ["connect", "run true"]


def test_a_refused_key_is_installed_and_the_connection_tried_again() -> None:
    steps = ready("resume", ScriptedSsh([], installed=False))
    assert steps == ["connect", "guest-ssh-add-authorized-keys", "connect", "run true"]


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
