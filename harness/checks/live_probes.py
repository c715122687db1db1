"""Guest facts that take more than a line of shell: the clock against the host's (through the
agent), the kernel log since a point, checksummed transfers both ways, and the network seen
through the agent (its file commands: no program started in the guest)."""

from __future__ import annotations

import hashlib
import os
import time

from harness.checks.probes import (
    NET_SCRIPT,
    STATE_DIR,
    STREAM_BYTES,
    STREAM_COMMAND,
    bash_wait,
    parse_facts,
)
from harness.guest import agent_files
from harness.machines.protocol import Machine

TRANSFER_BYTES = 1 << 20


LOG_MARK = "--- kernel log ---"


TRANSFERS_WAIT_S = 30  # the transfers of 1 MiB each way take a TCG guest under half a second


def closing_tail(token: str) -> str:
    """Appended to the facts script after the wake: waits for the transfers running beside it
    to end (they leave ``token`` behind; at most TRANSFERS_WAIT_S), then reads the kernel
    log, which therefore has whatever the checks provoked.
    Saves the closing look a round trip of its own. The whole log is printed, cut on the
    host: a program fewer in the guest (the log is bounded by its ring buffer)."""
    transferred = f'read -r t 2>/dev/null < {STATE_DIR}/transferred && [ "$t" = {token} ]'
    return f"""
read -r _t _ < /proc/uptime; echo "time.closing.start=$_t"
t=; read -r t 2>/dev/null < {STATE_DIR}/transferred
if [ "$t" = {token} ]; then seen=yes; else
  [ -p {STATE_DIR}/closing.wait ] || mkfifo {STATE_DIR}/closing.wait
  {bash_wait(f"{STATE_DIR}/closing.wait", transferred, TRANSFERS_WAIT_S, 0.02)}
  seen=no; read -r t 2>/dev/null < {STATE_DIR}/transferred && [ "$t" = {token} ] && seen=yes
fi
echo "net.transfers_ended_before_closing=$seen"
read -r _t _ < /proc/uptime; echo "time.closing.end=$_t"
echo '{LOG_MARK}'; dmesg -x --notime
"""


def split_closing(stdout: str, before: dict[str, str]) -> tuple[str, list[str]]:
    """The facts before LOG_MARK, and the kernel log after it since the facts ``before`` the
    sleep (the last 1000 lines): after the last line ending with the mark they wrote to the log,
    or after as many lines as they counted. Without either (a guest that booted again since,
    or whose log wrapped) the whole log is kept."""
    head, _, text = stdout.partition(LOG_MARK + "\n")
    lines = text.splitlines()
    mark = before.get("guest.log_mark")
    if mark:
        ends = [i for i, line in enumerate(lines) if line.endswith(mark)]
        start = ends[-1] + 1 if ends else 0
    else:
        start = int(before.get("guest.dmesg_lines") or 0)
    return head, lines[start:][-1000:]


def clock_via_agent(machine: Machine) -> dict[str, str]:
    """The guest's wall clock against the host's, read through the agent (guest-get-time: no
    program started in the guest, and a round trip of milliseconds, half of which is the
    reading's uncertainty)."""
    sent = time.time()
    guest_ns = machine.agent_execute("guest-get-time")
    received = time.time()
    step = int(guest_ns) / 1e9 - (sent + received) / 2
    return {"clock.step_s": f"{step:.3f}", "clock.uncertainty_s": f"{(received - sent) / 2:.3f}"}


def net_facts(machine: Machine, before: dict[str, str]) -> dict[str, str]:
    """Driver, link and interrupt facts of the virtio NIC the facts ``before`` the sleep named,
    read through the agent's file commands. Without one named there (probes without NET)
    NET_SCRIPT looks for it, run by the agent (guest-exec: a program or two, 0.1-0.2 s of a
    TCG guest's CPU right after a wake)."""
    iface, device = before.get("net.iface", ""), before.get("net.device", "")
    if not iface or not device:
        found = parse_facts(machine.agent_shell(NET_SCRIPT))
        return {**found, "net.irqs": nic_irqs(machine, found.get("net.device", ""))}

    def text(path: str) -> str:
        data = agent_files.read_file(machine.agent_execute, path)
        return "" if data is None else data.decode(errors="replace")

    uevent = text(f"/sys/class/net/{iface}/device/uevent").splitlines()
    return {
        "net.iface": iface,
        "net.driver": next((v[7:] for v in uevent if v.startswith("DRIVER=")), ""),
        "net.operstate": text(f"/sys/class/net/{iface}/operstate").strip(),
        "net.carrier": text(f"/sys/class/net/{iface}/carrier").strip(),
        "net.device": device,
        "net.irqs": nic_irqs(machine, device),
    }


def nic_irqs(machine: Machine, device: str) -> str:
    """The interrupts virtio device ``device`` (virtio0) has taken on all CPUs, read through
    the agent's file commands."""
    data = agent_files.read_file(machine.agent_execute, "/proc/interrupts") or b""
    return str(irq_count(data.decode(errors="replace"), device))


def irq_count(interrupts: str, device: str) -> int:
    """The sum over the CPUs' columns of /proc/interrupts' lines of ``device``'s queues
    (``virtio0-input.0``...), counted on the host (the guest's awk cost it 20-40 ms)."""
    lines = interrupts.splitlines()
    if not lines:
        return 0
    cpus = len(lines[0].split())
    total = 0
    for line in lines[1:]:
        fields = line.split()
        if fields and fields[-1].startswith(f"{device}-"):
            total += sum(int(v) for v in fields[1 : cpus + 1] if v.isdigit())
    return total


def transfer_both_ways(machine: Machine, token: str = "") -> dict[str, str]:
    """1 MiB host -> guest, then the same MiB guest -> host, over ssh (virtio-net), in one
    command: the guest checksums what arrived, keeps it in tmpfs and sends it back as it is
    (no base64 there: under TCG the guest would make, hash and encode a MiB of its own, a
    tenth of a second each), after a line with that checksum; what comes back must have it.
    Each direction is still judged on its own. The file stays for the next transfer. The
    guest leaves ``token`` behind once done (see closing_tail)."""
    data = os.urandom(TRANSFER_BYTES)
    path = f"{STATE_DIR}/transfer.bin"
    # After a fresh boot the state folder is made by the facts script, which runs beside this.
    result = machine.fetch(
        f"[ -d {STATE_DIR} ] || mkdir -p {STATE_DIR}; tee {path} | sha256sum && cat {path}"
        f"; s=$?; echo {token} > {STATE_DIR}/transferred; exit $s",
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
