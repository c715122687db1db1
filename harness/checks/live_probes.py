"""Guest facts that take more than a line of shell: the clock against the host's (through the
agent), the kernel log since a point, checksummed transfers both ways, and the network seen
through the agent (its file commands: no program started in the guest)."""

from __future__ import annotations

import hashlib
import os
import time

from harness.checks import facts as fact
from harness.checks.guest_scripts import program
from harness.checks.probes import (
    BOUNDED_WAIT,
    NET_SCRIPT,
    STATE_DIR,
    STREAM_BYTES,
    STREAM_COMMAND,
    parse_facts,
)
from harness.guest import agent_files
from harness.machines.protocol import Machine

TRANSFER_BYTES = 1 << 20


LOG_MARK = "--- kernel log ---"


# The echo's bytes reach a NIC whose link works within milliseconds: an echo that got nothing
# back sooner than this (its channel already closed) says nothing about the link.
ECHO_WAITED_S = 5.0
# The echo's whole wait for its bytes back: a guest whose ssh answers again echoes within a
# second or two even under TCG, so this is several times that and twice ECHO_WAITED_S; a dead
# link that still reads up (QEMU's e1000e after set_link off) is named once it has passed.
ECHO_WAIT_S = 10.0
TRANSFERS_WAIT_S = 30  # the transfers of 1 MiB each way take a TCG guest well under a second


def closing_tail(token: str) -> str:
    """Appended to the facts script after the wake (scripts/closing.sh): waits for the
    transfers running beside it to end (they leave ``token`` behind; at most
    TRANSFERS_WAIT_S), then prints the kernel log after LOG_MARK, which therefore has
    whatever the checks provoked."""
    return program(
        "closing.sh",
        STATE_DIR=STATE_DIR,
        TOKEN=token,
        TRANSFERS_WAIT_S=TRANSFERS_WAIT_S,
        KERNEL_LOG_CUT=LOG_MARK,
        BOUNDED_WAIT=BOUNDED_WAIT,
    )


def split_closing(stdout: str, before: dict[str, str]) -> tuple[str, list[str]]:
    """The facts before LOG_MARK, and the kernel log after it since the facts ``before`` the
    sleep (the last 1000 lines): after the last line ending with the mark they wrote to the log,
    or after as many lines as they counted. Without either (a guest that booted again since,
    or whose log wrapped) the whole log is kept."""
    head, _, text = stdout.partition(LOG_MARK + "\n")
    lines = text.splitlines()
    mark = before.get(fact.GUEST_LOG_MARK)
    if mark:
        ends = [i for i, line in enumerate(lines) if line.endswith(mark)]
        start = ends[-1] + 1 if ends else 0
    else:
        start = int(before.get(fact.GUEST_DMESG_LINES) or 0)
    return head, lines[start:][-1000:]


def clock_via_agent(machine: Machine) -> dict[str, str]:
    """The guest's wall clock against the host's, read through the agent (guest-get-time: no
    program started in the guest, and a round trip of milliseconds, half of which is the
    reading's uncertainty)."""
    sent = time.time()
    guest_ns = machine.agent_execute("guest-get-time")
    received = time.time()
    step = int(guest_ns) / 1e9 - (sent + received) / 2
    return {
        fact.CLOCK_STEP_S: f"{step:.3f}",
        fact.CLOCK_UNCERTAINTY_S: f"{(received - sent) / 2:.3f}",
    }


def net_facts(machine: Machine, before: dict[str, str]) -> dict[str, str]:
    """Driver, link and interrupt facts of the NIC the facts ``before`` the sleep named,
    read through the agent's file commands. Without one named there (probes without NET)
    NET_SCRIPT looks for it, run by the agent (guest-exec: a program or two, tenths of a
    second of a TCG guest's CPU right after a wake)."""
    iface, device = before.get(fact.NET_IFACE, ""), before.get(fact.NET_DEVICE, "")
    if not iface or not device:
        found = parse_facts(machine.agent_shell(NET_SCRIPT))
        return {**found, fact.NET_IRQS: nic_irqs(machine, found.get(fact.NET_DEVICE, ""))}

    def text(path: str) -> str:
        data = agent_files.read_file(machine.agent_execute, path)
        return "" if data is None else data.decode(errors="replace")

    uevent = text(f"/sys/class/net/{iface}/device/uevent").splitlines()
    return {
        fact.NET_IFACE: iface,
        fact.NET_DRIVER: next((v[7:] for v in uevent if v.startswith("DRIVER=")), ""),
        fact.NET_OPERSTATE: text(f"/sys/class/net/{iface}/operstate").strip(),
        fact.NET_CARRIER: text(f"/sys/class/net/{iface}/carrier").strip(),
        fact.NET_DEVICE: device,
        fact.NET_IRQS: nic_irqs(machine, device),
        fact.NET_RX_PACKETS: text(f"/sys/class/net/{iface}/statistics/rx_packets").strip(),
    }


def nic_silent(machine: Machine, after: dict[str, str], waited_s: float) -> str:
    """Where the echo over ssh got nothing back after waiting ``waited_s`` (at least
    ECHO_WAITED_S), whether the NIC received nothing meanwhile: its ``rx_packets`` read again
    through the agent (into ``after``) and unchanged since net_facts. Then the reason, naming
    the NIC: its link is dead whatever it reads (QEMU's e1000e tells a resumed guest its link
    is up while the host's end is down), and whatever waits on ssh would wait out its bound.
    Else "" (the echo came back, or packets arrived: a guest slow to answer, not a dead
    link)."""
    iface, rx = after.get(fact.NET_IFACE, ""), after.get(fact.NET_RX_PACKETS, "")
    if after.get(fact.TCP_ECHO) in (None, "ok") or waited_s < ECHO_WAITED_S or not iface or not rx:
        return ""
    data = agent_files.read_file(
        machine.agent_execute, f"/sys/class/net/{iface}/statistics/rx_packets"
    )
    after[fact.NET_RX_AFTER_ECHO] = "" if data is None else data.decode(errors="replace").strip()
    if after[fact.NET_RX_AFTER_ECHO] != rx:
        return ""
    return (
        f"the NIC {after.get(fact.NET_DRIVER) or 'nic'} {iface} received nothing while the "
        f"echo over ssh waited (rx_packets stayed at {rx}), though its link reads "
        f"{after.get(fact.NET_OPERSTATE) or '?'} (carrier {after.get(fact.NET_CARRIER)})"
    )


def nic_irqs(machine: Machine, device: str) -> str:
    """The interrupts the NIC's ``device`` (virtio0 for virtio-net, else the interface) has
    taken on all CPUs, read through the agent's file commands."""
    data = agent_files.read_file(machine.agent_execute, "/proc/interrupts") or b""
    return str(irq_count(data.decode(errors="replace"), device))


def irq_count(interrupts: str, device: str) -> int:
    """The sum over the CPUs' columns of /proc/interrupts' lines of ``device`` and its queues
    (``virtio0-input.0``..., e1000e's ``ens3``, ``ens3-rx-0``...), counted on the host: an awk in
    the guest costs it tens of ms."""
    lines = interrupts.splitlines()
    if not lines:
        return 0
    cpus = len(lines[0].split())
    total = 0
    for line in lines[1:]:
        fields = line.split()
        if fields and device and (fields[-1] == device or fields[-1].startswith(f"{device}-")):
            total += sum(int(v) for v in fields[1 : cpus + 1] if v.isdigit())
    return total


def transfer_both_ways(machine: Machine, token: str = "") -> dict[str, str]:
    """1 MiB host -> guest, then the same MiB guest -> host, over ssh (virtio-net), in one
    command (scripts/transfer.sh): the guest checksums what arrived, keeps it in tmpfs and
    sends it back as it is, after a line with that checksum; what comes back must have it.
    Each direction is still judged on its own. The file stays for the next transfer. The
    guest leaves ``token`` behind once done (see closing_tail)."""
    data = os.urandom(TRANSFER_BYTES)
    result = machine.fetch(program("transfer.sh", STATE_DIR=STATE_DIR, TOKEN=token), stdin=data)
    line, _, back = result.data.partition(b"\n")
    guest_sha = line.decode(errors="replace").split(" ", 1)[0].strip()
    facts = {
        fact.NET_HOST_TO_GUEST: "ok"
        if guest_sha == _sha(data)
        else f"corrupt ({guest_sha[:16]} != {_sha(data)[:16]})"
    }
    if result.ok and guest_sha and _sha(back) == guest_sha:
        facts[fact.NET_GUEST_TO_HOST] = "ok"
    else:
        said = result.stderr.strip().splitlines()
        facts[fact.NET_GUEST_TO_HOST] = f"corrupt ({len(back)} bytes received)" + (
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
