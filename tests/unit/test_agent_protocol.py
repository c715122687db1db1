"""The agent client against a scripted peer speaking the guest agent's wire format."""

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.aio import LoopThread
from harness.errors import AgentCommandError
from harness.machines.qemu.agent import GuestAgent


def answer(msg: dict[str, Any]) -> bytes:
    if msg["execute"] == "guest-sync-delimited":
        reply = {"return": msg["arguments"]["id"], "id": msg.get("id")}
        return b"\xff" + json.dumps(reply).encode() + b"\n"
    error = {
        "class": "GenericError",
        "desc": "the requested suspend mode is not supported by the guest",
    }
    return json.dumps({"error": error, "id": msg.get("id")}).encode() + b"\n"


def fake_qga(path: Path, ready: threading.Event) -> None:
    """Connects to the harness like QEMU's chardev does, and answers like qemu-ga:
    stale junk first, 0xFF before a sync reply, an error for guest-suspend-ram."""

    async def main() -> None:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"return": {}, "id": "stale-from-before-resume"}\n\x00\x01garbage\n')
        decoder, buffer = json.JSONDecoder(), ""
        while chunk := await reader.read(4096):
            buffer += chunk.decode()
            while buffer.strip():  # QMP clients send JSON objects without newlines
                try:
                    msg, end = decoder.raw_decode(buffer.lstrip())
                except json.JSONDecodeError:
                    break
                buffer = buffer.lstrip()[end:]
                writer.write(answer(msg))
            await writer.drain()

    ready.wait(5)
    asyncio.run(main())


@pytest.fixture
def runner() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


def test_sync_survives_junk_and_delimiter_then_errors_map(
    tmp_path: Path, runner: LoopThread
) -> None:
    sock = tmp_path / "qga.sock"
    agent = GuestAgent(runner, sock)
    agent.listen()
    ready = threading.Event()
    peer = threading.Thread(target=fake_qga, args=(sock, ready), daemon=True)
    peer.start()
    ready.set()
    try:
        agent.accept(timeout=5, alive=lambda: True)
        assert agent.sync(timeout=5, alive=lambda: True) < 5
        future = agent.fire("guest-suspend-ram")
        with pytest.raises(AgentCommandError, match="not supported"):
            future.result(timeout=5)
    finally:
        agent.close()
