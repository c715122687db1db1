"""Guest facts that take more than a line of shell: the clock against the host's, the kernel
log since a point, checksummed transfers both ways, and the network seen through the agent."""

from __future__ import annotations

import hashlib
import os
import time

from harness.machine import Machine
from harness.probes import NET_SCRIPT, STATE_DIR, STREAM_BYTES, STREAM_COMMAND, parse_facts
from harness.ssh import CommandResult

TRANSFER_BYTES = 1 << 20


def _clock_step(guest_seconds: str, sent: float, received: float) -> dict[str, str]:
    try:
        guest = float(guest_seconds.strip())
    except ValueError:
        return {"clock.error": guest_seconds.strip()[:100]}
    step = guest - (sent + received) / 2
    return {"clock.step_s": f"{step:.3f}", "clock.uncertainty_s": f"{(received - sent) / 2:.3f}"}


LOG_MARK = "--- kernel log ---"


def closing_facts(machine: Machine, line_count: int) -> tuple[dict[str, str], list[str]]:
    """The last look after the wake, in one round trip: the guest's clock against the host's
    (read first; its uncertainty is half the whole round trip), the NIC's facts (its interrupt
    count after the transfers), and the kernel log after its first ``line_count`` lines,
    which therefore has whatever the checks provoked."""
    sent = time.time()
    # bash's own clock where there is one, and the whole kernel log cut here: two programs
    # fewer in the guest, on the checks' critical path (the log is bounded by its ring buffer).
    clock = "echo ${EPOCHREALTIME:-$(date +%s.%N)}"
    result = machine.run(f"{clock}; {NET_SCRIPT}\necho '{LOG_MARK}'; dmesg -x --notime")
    received = time.time()
    head, _, kernel_log = result.stdout.partition(LOG_MARK + "\n")
    first, _, net = head.partition("\n")
    facts = _clock_step(first, sent, received)
    facts.update(parse_facts(CommandResult(result.command, result.exit_status, net, "")))
    return facts, kernel_log.splitlines()[line_count:][-1000:]


def measure_clock_via_agent(machine: Machine) -> str:
    """Guest minus host wall clock in seconds, read through the agent (guest-get-time)."""
    sent = time.time()
    guest_ns = machine.agent_execute("guest-get-time")
    received = time.time()
    return f"{int(guest_ns) / 1e9 - (sent + received) / 2:.3f}"


def net_facts(machine: Machine) -> dict[str, str]:
    """Driver, link and interrupt facts of the virtio NIC, read through the agent."""
    return parse_facts(machine.agent_shell(NET_SCRIPT))


def transfer_both_ways(machine: Machine) -> dict[str, str]:
    """1 MiB host -> guest, then the same MiB guest -> host, over ssh (virtio-net). The guest
    checksums what arrived and keeps it in tmpfs; what comes back must have that checksum.
    Sending back what arrived, as it is (no base64 in the guest), spares the guest making,
    hashing and encoding a MiB of its own: under TCG each costs a tenth of a second. Each
    direction is still judged on its own. The file stays for the next transfer to replace."""
    data = os.urandom(TRANSFER_BYTES)
    path = f"{STATE_DIR}/transfer.bin"
    # After a fresh boot the state folder is made by the facts script, which runs beside this.
    inbound = machine.run(
        f"[ -d {STATE_DIR} ] || mkdir -p {STATE_DIR}; tee {path} | sha256sum", stdin=data
    )
    guest_sha = inbound.stdout.split(" ", 1)[0].strip()
    facts = {
        "net.host_to_guest": "ok"
        if guest_sha == _sha(data)
        else f"corrupt ({guest_sha[:16]} != {_sha(data)[:16]})"
    }
    outbound = machine.fetch(f"cat {path}")
    if inbound.ok and guest_sha and outbound.ok and _sha(outbound.data) == guest_sha:
        facts["net.guest_to_host"] = "ok"
    else:
        said = (outbound.stderr or inbound.stderr).strip().splitlines()
        facts["net.guest_to_host"] = f"corrupt ({len(outbound.data)} bytes received)" + (
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
