"""A scripted stand-in for a backend, for testing verdict logic without a guest."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from harness.checks.live_probes import LOG_MARK, STREAM_BYTES
from harness.errors import SshError
from harness.guest.console.log import ConsoleLog
from harness.guest.ssh import BinaryResult, CommandResult
from harness.machines.events import EventLog, RecordedEvent
from harness.machines.protocol import Signal
from harness.machines.qemu.signals import qmp_signals
from harness.machines.vcpu_lockup import SAMPLE_SECONDS, LockupWatch, VcpuState
from harness.timeouts import Timeouts

FACTS = (
    "guest.boot_id=b1\nguest.ram_marker=m1\nguest.power_state=freeze mem disk\n"
    "guest.mem_sleep=s2idle [deep]\nguest.power_disk=[platform] shutdown reboot suspend\n"
    "sentinel.pid=7\nsentinel.count=1\n"
    "sentinel.alive=yes\nsentinel.count_later=5\ndisk.written_sha=a\ndisk.reread_sha=a\n"
    "disk.fresh_sha=b\ndisk.fresh_reread_sha=b\ndisk.fresh_write_status=0\n"
    "guest.taint=0\nguest.suspend_success=1\nblk.vda_requests=10\nguest.uptime=50\n"
    "blk.pattern_sha=p\nblk.inflight_status=0\nblk.inflight_mib=4\nblk.inflight_sha=p\n"
    "blk.fresh_status=0\n"
    "blk.fresh_sha=f\nblk.fresh_reread_sha=f\nblk.vdc_requests=5\n"
    "net.iface=ens3\nnet.device=virtio0\n"
)
# What a clean cycle changes: one more suspend counted, more requests, time went on.
PROGRESS = {
    "guest.suspend_success=1": "guest.suspend_success=2",
    "blk.vda_requests=10": "blk.vda_requests=20",
    "blk.vdc_requests=5": "blk.vdc_requests=9",
    "guest.uptime=50": "guest.uptime=60",
}


def progressed(facts: str) -> str:
    for old, new in PROGRESS.items():
        facts = facts.replace(old, new)
    return facts


class FakeEcho:
    def __init__(self) -> None:
        self.closed = False

    def roundtrip(self, payload: bytes, timeout: float) -> bytes:
        return payload

    def close(self) -> None:
        self.closed = True


class FakeStream:
    def result(self, timeout: float) -> bytes:
        data = b"x" * (STREAM_BYTES)
        return hashlib.sha256(data).hexdigest().encode() + b"\n" + data

    def close(self) -> None:
        pass


class FakeMachine:
    def __init__(
        self,
        tmp: Path,
        *,
        facts: str = FACTS,
        after_facts: str | None = None,
        sleeps: bool = True,
        agent_answer: Exception | None = None,
        swap: str = "/dev/vdb",
    ) -> None:
        self.name = "fake"
        self.events = EventLog(classify=qmp_signals)
        self.console = ConsoleLog(tmp / "serial.log")
        self.serial_log = self.console.path
        self.timeouts = Timeouts(suspend_entry=0.3, wake=0.3, hibernate=0.3, resume=0.3)
        self.facts, self.sleeps, self.agent_answer, self.swap = facts, sleeps, agent_answer, swap
        self.after_facts = progressed(facts if after_facts is None else after_facts)
        self.vcpus: list[VcpuState] = []  # what QEMU would show of the guest's vCPUs
        self._clock = 0.0
        self.stuck_at = b""  # console lines of a guest that does not get to sleep
        self.captures = 0
        self.clock_offset = 0.0
        self.kernel_log = ""
        self.link = "up"
        self.irqs = 0  # the NIC's interrupts: each transfer adds irqs_per_transfer
        self.irqs_per_transfer = 10
        self.nic_driver = "virtio_net"  # "" when the NIC is left unbound
        self.open_files: list[bytes] = []
        self.agent_shells = 0
        self.ssh_closed = threading.Event()
        self.echoes: list[FakeEcho] = []
        self.transferred = threading.Event()
        self.stopped = False

    def hmp(self, command: str) -> str:
        return ""

    def lockup_watch(self) -> LockupWatch:
        """Each sample is taken one sampling period after the last (no real waiting)."""

        def clock() -> float:
            self._clock += SAMPLE_SECONDS
            return self._clock

        return LockupWatch(lambda: self.vcpus, clock)

    @property
    def running(self) -> bool:
        return True

    def serial_tail(self, lines: int = 3) -> str:
        return self.console.tail(lines)

    def boot(self) -> dict[str, float]:
        return {}

    def ensure_ready(self) -> None:
        pass

    def wait_ready(self, stage: str, timeout: float) -> dict[str, float]:
        return {"agent": 0.1, "ssh": 0.2}

    def run(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> CommandResult:
        if self.link != "up":  # no answer comes: it waits until the connection is closed
            if not self.ssh_closed.wait(10):
                raise AssertionError(f"ssh left waiting on a dead link: {command[:40]!r}")
            raise SshError("connection closed")
        if "swap.target" in command:
            return CommandResult(command, 0, self.swap, "")
        if "systemctl" in command:
            self._sleep("hibernate" in command)
        self.captures += 1
        facts = self.facts if self.captures == 1 else self.after_facts
        if LOG_MARK in command:  # ended by the closing look: it waits for the transfers
            assert self.transferred.wait(5), "the transfers never ran"
            self.transferred.clear()
            facts += f"{LOG_MARK}\n{self.kernel_log}"
        return CommandResult(command, 0, facts, "")

    def fetch(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> BinaryResult:
        assert stdin is not None, command  # the MiB sent to the guest, kept there and sent back
        checksum = hashlib.sha256(stdin).hexdigest().encode() + b"  -\n"
        self.irqs += self.irqs_per_transfer
        self.transferred.set()
        return BinaryResult(command, 0, checksum + stdin, "")

    def agent_shell(self, script: str, timeout: float | None = None) -> CommandResult:
        """NET_SCRIPT run through the agent (only for facts that name no NIC)."""
        self.agent_shells += 1
        facts = (
            f"net.iface=ens3\nnet.driver=virtio_net\nnet.operstate={self.link}\n"
            f"net.carrier={int(self.link == 'up')}\nnet.device=virtio0\n"
        )
        return CommandResult(script, 0, facts, "")

    def open_echo(self) -> FakeEcho:
        self.echoes.append(FakeEcho())
        return self.echoes[-1]

    def open_stream(self, command: str) -> FakeStream:
        return FakeStream()

    def fail_data_disk_io(self) -> None:
        pass

    def close_ssh(self) -> None:
        self.ssh_closed.set()

    def set_link(self, up: bool) -> None:
        self.link = "up" if up else "down"

    def agent_execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        if command == "guest-get-time":
            return int((time.time() + self.clock_offset) * 1e9)
        if command == "guest-file-open":
            assert arguments is not None
            self.open_files.append(self._guest_file(arguments["path"]))
            return len(self.open_files) - 1
        if command == "guest-file-read":
            assert arguments is not None
            data = self.open_files[arguments["handle"]]
            return {"count": len(data), "buf-b64": base64.b64encode(data).decode(), "eof": True}
        return {}

    def _guest_file(self, path: str) -> bytes:
        """The few guest files the network's look reads through the agent."""
        nic = "/sys/class/net/ens3/"
        files = {
            nic + "device/uevent": (f"DRIVER={self.nic_driver}\n" if self.nic_driver else "")
            + "MODALIAS=virtio:d00000001v00001AF4\n",
            nic + "operstate": f"{self.link}\n",
            nic + "carrier": f"{int(self.link == 'up')}\n",
            nic + "statistics/rx_packets": "1000\n",
            "/proc/interrupts": f"  CPU0\n 25: {self.irqs} PCI-MSI 49153-edge virtio0-input.0\n",
        }
        return files[path].encode()

    def agent_fire(
        self, command: str, arguments: dict[str, Any] | None = None
    ) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self.agent_answer is not None:
            future.set_exception(self.agent_answer)
        else:
            self._sleep("disk" in command)
        return future

    def _sleep(self, to_disk: bool) -> None:
        if not self.sleeps:
            self.console.feed(self.stuck_at)
            return
        if to_disk:
            self.console.feed(b"PM: hibernation: hibernation entry\n")
            self.events.append("SUSPEND_DISK", {})
            self.events.append("QEMU_EXITED", {})
        else:
            self.console.feed(b"PM: suspend entry (deep)\n")
            self.events.append("SUSPEND", {})

    def wait_signal(self, signal: Signal, since: int, timeout: float) -> RecordedEvent | None:
        return self.events.wait_for_signal({signal.value}, since, timeout)

    def wake_from_ram(self) -> None:
        self.events.append("WAKEUP", {})
        self.console.feed(b"ACPI: PM: Waking up from system sleep state S3\nPM: suspend exit\n")

    def power_on(self) -> None:
        self.console.feed(b"firmware\n[    0.000000] Linux version 6.1.0-fake\n")
        self.console.feed(b"PM: Image loading done\nPM: hibernation: hibernation exit\n")

    def power_cut(self) -> None:
        self.events.append("QEMU_EXITED", {})

    def send_key(self, key: str) -> None:
        self.console.feed(b"PM: suspend exit\n")

    def screendump(self, name: str) -> Path | None:
        return None

    def hang_evidence(self, suffix: str) -> dict[str, str]:
        return {}

    def replace_swap_disk(self) -> None:
        pass

    def platform_facts(self) -> dict[str, Any]:
        return {}

    def stop(self) -> None:
        self.stopped = True
