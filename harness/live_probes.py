"""Guest facts that take more than a line of shell: the clock against the host's, the kernel
log since a point, checksummed transfers both ways, and the network seen through the agent."""

from __future__ import annotations

import base64
import hashlib
import os
import time

from harness.machine import Machine
from harness.probes import NET_SCRIPT, STATE_DIR, STREAM_BYTES, STREAM_COMMAND, parse_facts

TRANSFER_BYTES = 1 << 20


def measure_clock(machine: Machine) -> dict[str, str]:
    """Guest wall clock minus host wall clock, with the uncertainty of one round trip."""
    sent = time.time()
    result = machine.run("date +%s.%N")
    received = time.time()
    try:
        guest = float(result.stdout.strip())
    except ValueError:
        return {"clock.error": result.stdout.strip()[:100]}
    step = guest - (sent + received) / 2
    return {"clock.step_s": f"{step:.3f}", "clock.uncertainty_s": f"{(received - sent) / 2:.3f}"}


def measure_clock_via_agent(machine: Machine) -> str:
    """Guest minus host wall clock in seconds, read through the agent (guest-get-time)."""
    sent = time.time()
    guest_ns = machine.agent_execute("guest-get-time")
    received = time.time()
    return f"{int(guest_ns) / 1e9 - (sent + received) / 2:.3f}"


def kernel_log_since(machine: Machine, line_count: int) -> list[str]:
    """Kernel log lines after the first ``line_count`` ones, with facility and level."""
    result = machine.run(f"dmesg -x --notime | tail -n +{line_count + 1}")
    return result.stdout.splitlines()[-1000:]


def net_facts(machine: Machine) -> dict[str, str]:
    """Driver, link and interrupt facts of the default-route NIC, read through the agent."""
    return parse_facts(machine.agent_shell(NET_SCRIPT))


def net_facts_via_ssh(machine: Machine) -> dict[str, str]:
    """The same facts over ssh: a tenth of the agent's cost, where ssh is known to work."""
    return parse_facts(machine.run(NET_SCRIPT))


def transfer_both_ways(machine: Machine) -> dict[str, str]:
    """1 MiB host -> guest and 1 MiB guest -> host over ssh (virtio-net), each checksummed."""
    data = os.urandom(TRANSFER_BYTES)
    inbound = machine.run("sha256sum | cut -d' ' -f1", stdin=data)
    facts = {
        "net.host_to_guest": "ok"
        if inbound.stdout.strip() == _sha(data)
        else f"corrupt ({inbound.stdout.strip()[:16]} != {_sha(data)[:16]})"
    }
    path = f"{STATE_DIR}/transfer.bin"
    outbound = machine.run(
        f"head -c {TRANSFER_BYTES} /dev/urandom > {path}; "
        f"sha256sum < {path} | cut -d' ' -f1; base64 -w0 < {path}; echo; "
        f"rm -f {path}"
    )
    lines = outbound.stdout.split("\n")
    try:
        received = base64.b64decode(lines[1])
    except (IndexError, ValueError):
        received = b""
    facts["net.guest_to_host"] = (
        "ok"
        if lines and _sha(received) == lines[0].strip()
        else f"corrupt ({len(received)} bytes received)"
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
