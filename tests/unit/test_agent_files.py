"""Guest files read through the agent's file commands."""

import base64
from typing import Any

import pytest

from harness.errors import AgentCommandError
from harness.guest.agent_files import READ_LIMIT, read_file


class Agent:
    """Answers guest-file-* for one file, ``chunk`` bytes a read; records the commands."""

    def __init__(self, data: bytes | None, chunk: int = 3, endless: bool = False) -> None:
        self.data, self.chunk, self.endless = data, chunk, endless
        self.commands: list[str] = []
        self.offset = 0

    def __call__(self, command: str, arguments: dict[str, Any]) -> Any:
        self.commands.append(command)
        if command == "guest-file-open":
            if self.data is None:
                raise AgentCommandError(command, "failed to open file: No such file or directory")
            return 7
        assert arguments["handle"] == 7
        if command == "guest-file-read":
            if self.data == b"refused":
                raise AgentCommandError(command, "failed to read file: Invalid argument")
            part = b"z" * self.chunk if self.endless else self.data[self.offset :][: self.chunk]
            self.offset += len(part)
            eof = not self.endless and self.offset >= len(self.data)
            return {"count": len(part), "buf-b64": base64.b64encode(part).decode(), "eof": eof}
        assert command == "guest-file-close"
        return {}


def test_a_file_is_read_to_its_end_and_closed() -> None:
    agent = Agent(b"up\nand more\n")
    assert read_file(agent, "/sys/class/net/ens3/operstate") == b"up\nand more\n"
    assert agent.commands[0] == "guest-file-open" and agent.commands[-1] == "guest-file-close"
    assert agent.commands.count("guest-file-read") == 4  # 3 bytes a read, the last says eof


def test_a_file_the_guest_cannot_open_is_none_and_nothing_is_left_open() -> None:
    agent = Agent(None)
    assert read_file(agent, "/sys/class/net/gone/operstate") is None
    assert agent.commands == ["guest-file-open"]


def test_a_file_the_guest_refuses_to_read_is_none_and_is_closed() -> None:
    """sysfs's ``carrier`` of an interface that is down refuses reads with EINVAL."""
    agent = Agent(b"refused")
    assert read_file(agent, "/sys/class/net/ens3/carrier") is None
    assert agent.commands == ["guest-file-open", "guest-file-read", "guest-file-close"]


def test_a_file_without_end_is_read_only_so_far() -> None:
    agent = Agent(b"", chunk=65536, endless=True)
    data = read_file(agent, "/dev/zero")
    assert data is not None and len(data) == READ_LIMIT
    assert agent.commands[-1] == "guest-file-close"


def test_an_agent_that_fails_otherwise_is_not_taken_for_a_missing_file() -> None:
    def execute(command: str, arguments: dict[str, Any]) -> Any:
        raise TimeoutError("the agent did not answer")

    with pytest.raises(TimeoutError):
        read_file(execute, "/proc/interrupts")
