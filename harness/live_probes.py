"""Guest facts that take more than a line of shell: the clock against the host's (through the
agent), the kernel log since a point, checksummed transfers both ways, and the network seen
through the agent."""

from __future__ import annotations

import hashlib
import os
import time

from harness.machine import Machine
from harness.probes import NET_SCRIPT, STATE_DIR, STREAM_BYTES, STREAM_COMMAND, parse_facts
from harness.ssh import CommandResult

TRANSFER_BYTES = 1 << 20


def _clock_step(guest: float, sent: float, received: float) -> dict[str, str]:
    step = guest - (sent + received) / 2
    return {"clock.step_s": f"{step:.3f}", "clock.uncertainty_s": f"{(received - sent) / 2:.3f}"}


LOG_MARK = "--- kernel log ---"


def closing_facts(machine: Machine, line_count: int) -> tuple[str, list[str]]:
    """The last look after the wake, in one round trip: the NIC's interrupt count (after the
    transfers) and the kernel log after its first ``line_count`` lines, which therefore has
    whatever the checks provoked. The whole log is cut here, not in the guest: a program
    fewer there, on the checks' critical path (the log is bounded by its ring buffer)."""
    result = machine.run(f"{NET_SCRIPT}\necho '{LOG_MARK}'; dmesg -x --notime")
    net, _, kernel_log = result.stdout.partition(LOG_MARK + "\n")
    irqs = parse_facts(CommandResult(result.command, result.exit_status, net, "")).get("net.irqs")
    return irqs or "", kernel_log.splitlines()[line_count:][-1000:]


def clock_via_agent(machine: Machine) -> dict[str, str]:
    """The guest's wall clock against the host's, read through the agent (guest-get-time: no
    program started in the guest, and a round trip of milliseconds, half of which is the
    reading's uncertainty)."""
    sent = time.time()
    guest_ns = machine.agent_execute("guest-get-time")
    received = time.time()
    return _clock_step(int(guest_ns) / 1e9, sent, received)


def net_facts(machine: Machine) -> dict[str, str]:
    """Driver, link and interrupt facts of the virtio NIC, read through the agent."""
    return parse_facts(machine.agent_shell(NET_SCRIPT))


def transfer_both_ways(machine: Machine) -> dict[str, str]:
    """1 MiB host -> guest, then the same MiB guest -> host, over ssh (virtio-net), in one
    command: the guest checksums what arrived, keeps it in tmpfs and sends it back as it is
    (no base64 there: under TCG the guest would make, hash and encode a MiB of its own, a
    tenth of a second each), after a line with that checksum; what comes back must have it.
    Each direction is still judged on its own. The file stays for the next transfer."""
    data = os.urandom(TRANSFER_BYTES)
    path = f"{STATE_DIR}/transfer.bin"
    # After a fresh boot the state folder is made by the facts script, which runs beside this.
    result = machine.fetch(
        f"[ -d {STATE_DIR} ] || mkdir -p {STATE_DIR}; tee {path} | sha256sum && cat {path}",
        stdin=data,
    )
    line, _, back = result.data.partition(b"\n")
    guest_sha = line.decode(errors="replace").split(" ", 1)[0].strip()
    facts = {
        "net.host_to_guest": "ok"
        if guest_sha == _sha(data)
        else f"corrupt ({guest_sha[:16]} != {_sha(data)[:16]})"
    }
    if result.ok and guest_sha and _sha(back) == guest_sha:
        facts["net.guest_to_host"] = "ok"
    else:
        said = result.stderr.strip().splitlines()
        facts["net.guest_to_host"] = f"corrupt ({len(back)} bytes received)" + (
            f": the guest said {said[0][:200]!r}" if said else ""
        )
    return facts


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def judge_stream(received: bytes | None) -> str:
    """``ok`` when the guest's announced checksum matches the bytes that arrived."""
    if received is None:
        return "still running (never completed)"
    announced, _, data = received.partition(b"\n")
    if len(data) != STREAM_BYTES:
        return f"incomplete: {len(data)} of {STREAM_BYTES} bytes"
    return "ok" if _sha(data) == announced.decode(errors="replace").strip() else "corrupt"


__all__ = ["STREAM_BYTES", "STREAM_COMMAND"]
