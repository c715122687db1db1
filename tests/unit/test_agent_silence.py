"""A silent guest agent is explained by what ssh can still see: the agent port's state in the
guest, or that ssh does not answer either."""

from typing import Any

import pytest

from harness.errors import SshError
from harness.guest.ssh import CommandResult
from harness.machines.base import AGENT_PORT_STATE, MachineBase


class FakeSsh:
    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.commands: list[str] = []

    def run(self, command: str, timeout: float, stdin: bytes | None = None) -> CommandResult:
        self.commands.append(command)
        if self.answer is None:
            raise SshError("ssh to 127.0.0.1:2222 failed for 15s: timed out")
        return CommandResult(command, 0, self.answer, "")


def silence(answer: str | None) -> tuple[str, list[str]]:
    machine: Any = MachineBase.__new__(MachineBase)
    machine._ssh = FakeSsh(answer)
    return machine._agent_silence(), machine._ssh.commands


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            "host_connected:0\nguest_connected:1\n",
            "ssh answers; the guest's agent port reads host_connected 0 (guest_connected 1): "
            "the host's PORT_OPEN never reached it; ",
        ),
        (
            "host_connected:1\nguest_connected:0\n",
            "ssh answers; the agent port reads host_connected 1, guest_connected 0; ",
        ),
        ("", "ssh answers; the agent port's state is unknown (''); "),
        (None, "ssh does not answer either (ssh to 127.0.0.1:2222 failed for 15s: timed out); "),
    ],
)
def test_the_silence_is_named_by_what_ssh_sees(answer: str | None, said: str) -> None:
    text, commands = silence(answer)
    assert text == said
    assert commands == [AGENT_PORT_STATE]


def test_the_port_state_is_read_by_the_agents_port_name_in_debugfs() -> None:
    assert "org.qemu.guest_agent.0" in AGENT_PORT_STATE
    assert "/sys/kernel/debug/virtio-ports/" in AGENT_PORT_STATE
