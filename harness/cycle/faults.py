"""Faults injected on purpose into a cycle, to show that a stage or a check can fail.

A fault acts at a point of the cycle: before the sleep request, right after it (while the
guest goes to sleep), while the guest sleeps, or right after the wake (before anything is
measured).
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.checks import guest_scripts
from harness.checks import probes as probe_lib
from harness.errors import SetupError
from harness.machines import gdbstub
from harness.machines.config import ROOT_DRIVE
from harness.machines.protocol import Machine
from harness.machines.vcpu_lockup import parse_registers

BEFORE_REQUEST = "before-request"
AFTER_REQUEST = "after-request"
ASLEEP = "asleep"
AFTER_WAKE = "after-wake"


@dataclass(frozen=True)
class Fault:
    """Something done to a guest on purpose, to prove that a check or a stage can fail.

    ``point`` is when (before the request, right after it, asleep, or after the wake);
    ``cycles`` limits it to some cycles of a series (1-based), or every cycle when empty.
    """

    name: str
    apply: Callable[[Machine], None]
    point: str = ASLEEP
    cycles: tuple[int, ...] = ()

    def applies(self, point: str, cycle: int) -> bool:
        return self.point == point and (not self.cycles or cycle in self.cycles)


FRESH_SWAP_WHILE_HIBERNATED = Fault(
    "fresh swap disk while hibernated (the guest must cold boot instead of resuming)",
    lambda machine: machine.replace_swap_disk(),
)


def _fake_suspend(machine: Machine) -> None:
    result = machine.run(
        "echo 1 > /sys/module/suspend/parameters/pm_test_delay && echo core > /sys/power/pm_test"
    )
    if not result.ok:
        raise SetupError(f"cannot set pm_test in the guest: {result.stderr.strip()}")


def guest_only_pretends_to_suspend(cycles: tuple[int, ...] = ()) -> Fault:
    """The guest kernel runs its whole suspend sequence (pm_test=core) and logs entry and exit,
    but never asks the platform to sleep: QEMU sees no SUSPEND."""
    return Fault(
        "guest kernel suspends only as far as pm_test=core (QEMU sees no SUSPEND)",
        _fake_suspend,
        BEFORE_REQUEST,
        cycles,
    )


def clock_step(seconds: int) -> Fault:
    """The guest's clock jumps by ``seconds`` right after the wake."""
    return Fault(
        f"guest clock stepped {seconds:+d}s after the wake",
        lambda m: _run_or_fail(m, f"date -s @$(( $(date +%s) + {seconds} ))"),
        AFTER_WAKE,
    )


def link_down() -> Fault:
    """The NIC's link goes down (QMP set_link) right after the wake."""
    return Fault(
        "NIC link set down over QMP after the wake", lambda m: m.set_link(False), AFTER_WAKE
    )


def kill_sentinel() -> Fault:
    """The sentinel process dies around the transition."""
    return Fault(
        "sentinel process killed (SIGKILL) after the wake",
        lambda m: _run_or_fail(m, f"kill -9 $(cat {probe_lib.STATE_DIR}/sentinel.pid)"),
        AFTER_WAKE,
    )


def disk_io_errors() -> Fault:
    """Every I/O on the scratch disk, whatever its bus, fails (QEMU blkdebug, EIO) from the
    wake on."""
    return Fault(
        "blkdebug: EIO on every read and write of the scratch disk after the wake",
        lambda m: m.fail_data_disk_io(),
        ASLEEP,
    )


# Where the probe file's first block lies on the root disk, in bytes: its partition's start
# and its first extent (see scripts/locate_probe_file.sh).
_LOCATE_PROBE_FILE = guest_scripts.program(
    "locate_probe_file.sh", package=__package__, PROBE_FILE=probe_lib.PROBE_FILE
)
_FIRST_EXTENT = re.compile(r"^\s*0:\s+0\.\.\s*\d+:\s+(\d+)\.\.", re.MULTILINE)


def _overwrite_probe_file_on_disk(machine: Machine) -> None:
    result = machine.run(_LOCATE_PROBE_FILE)
    start = re.search(r"^start=(\d+)$", result.stdout, re.MULTILINE)
    extent = _FIRST_EXTENT.search(result.stdout)
    if not result.ok or start is None or extent is None:
        raise SetupError(f"cannot locate the probe file on the root disk: {result.stdout!r}")
    offset = int(start.group(1)) * 512 + int(extent.group(1)) * 4096
    # qemu-io prints what it did on QEMU's own output; the monitor answers only an error.
    said = machine.hmp(f'qemu-io {ROOT_DRIVE} "write -P 0x5a {offset} 4096"').strip()
    if said:
        raise SetupError(f"qemu-io on the root disk failed (direct QEMU backend only): {said}")


def root_disk_data_overwritten() -> Fault:
    """The root disk's blocks under the file written before the sleep change on the host's side
    (qemu-io through the monitor, below the guest's page cache) after the wake."""
    return Fault(
        "root disk: the probe file's first 4 KiB overwritten by qemu-io after the wake",
        _overwrite_probe_file_on_disk,
        AFTER_WAKE,
    )


def root_filesystem_read_only() -> Fault:
    """The guest's disk file systems go read-only after the wake (sysrq's emergency remount,
    what ext4's errors=remount-ro does after an I/O error), so that no new write lands."""
    script = guest_scripts.program(
        "remount_read_only.sh",
        package=__package__,
        STATE_DIR=probe_lib.STATE_DIR,
        BOUNDED_WAIT=probe_lib.BOUNDED_WAIT,
    )
    return Fault(
        "root file system remounted read-only (sysrq-u) after the wake",
        lambda m: _run_or_fail(m, script),
        AFTER_WAKE,
    )


def kernel_call_trace() -> Fault:
    """The guest kernel prints real backtraces of all CPUs (sysrq-l) after the wake."""
    return Fault(
        "kernel backtrace provoked with sysrq-l after the wake",
        lambda m: _run_or_fail(m, "echo 1 > /proc/sys/kernel/sysrq; echo l > /proc/sysrq-trigger"),
        AFTER_WAKE,
    )


# CPU 1 held for 15 s, RCU's stall timeout lowered to 5 s meanwhile (scripts/cpu_stall.sh).
CPU_STALL_SCRIPT = guest_scripts.code("cpu_stall.sh", __package__)


def cpu_stall() -> Fault:
    """A guest CPU stalled long enough for the kernel's RCU stall report, after the wake."""
    return Fault(
        "CPU 1 held 15 s by a SCHED_FIFO loop, RCU's kthread bound to it, after the wake",
        lambda m: _run_or_fail(m, CPU_STALL_SCRIPT, timeout=60),
        AFTER_WAKE,
    )


# The guest wakes with its agent silent (SIGSTOP before the request) and a CPU that stalls:
# a systemd-sleep hook starts the stall after the resume (as a unit of its own: what a hook
# leaves behind dies with systemd-suspend.service). The harness must give up on the guest
# when RCU's report comes out (5 s), not at the end of its wait; after 15 s the stall ends
# and the agent is let go, so that the guest is usable again.
STALL_ON_WAKE_HOOK = "/usr/lib/systemd/system-sleep/zz-s3s4-stall-on-wake"
STALL_ON_WAKE_SCRIPT = guest_scripts.program(
    "stall_on_wake.sh",
    package=__package__,
    CPU_STALL=CPU_STALL_SCRIPT,
    HOOK=guest_scripts.code("stall_on_wake_hook.sh", __package__),
    HOOK_PATH=STALL_ON_WAKE_HOOK,
)


def cpu_stall_on_wake() -> Fault:
    """The guest wakes with a stalled CPU and a silent agent (use an in-guest request: the
    agent is stopped before it): the wait for the woken guest must end on the kernel's stall
    report."""
    return Fault(
        "qemu-ga stopped before the request; a systemd-sleep hook stalls CPU 1 after the resume",
        lambda m: _run_or_fail(m, STALL_ON_WAKE_SCRIPT),
        BEFORE_REQUEST,
    )


def freeze_agent() -> Fault:
    """The guest agent is stopped (SIGSTOP) just before the request: its channel stays open but
    nothing answers, so every agent call must end on the harness's own bound."""
    return Fault(
        "qemu-ga frozen with SIGSTOP before the request",
        lambda m: _run_or_fail(m, "pkill -STOP -x qemu-ga"),
        BEFORE_REQUEST,
    )


# A loop in user space that never enters the kernel: a 122-byte static ELF whose one
# instruction jumps to itself (an interpreter's loop was seen making system calls, where the
# kernel enables interrupts again). Run on CPU 1 only, ahead of everything else there
# (SCHED_FIFO, no RT throttling), so that the user code the gdbstub catches there is this.
SPIN_ADDRESS = 0x400000
SPIN_ENTRY_OFFSET = 64 + 56  # after the ELF header and its one program header
SPIN_RIP = f"{SPIN_ADDRESS + SPIN_ENTRY_OFFSET:016x}"
SPIN_PATH = "/var/tmp/s3s4-harness-spin"  # not in /run: mounted noexec


def spin_executable() -> bytes:
    code = b"\xeb\xfe"  # jmp .
    size = SPIN_ENTRY_OFFSET + len(code)
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    header = struct.pack(
        "<16sHHIQQQIHHHHHH",
        ident,
        2,
        0x3E,
        1,
        SPIN_ADDRESS + SPIN_ENTRY_OFFSET,
        64,
        0,
        0,
        64,
        56,
        1,
        0,
        0,
        0,
    )
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, SPIN_ADDRESS, SPIN_ADDRESS, size, size, 0x1000)
    return header + program + code


# Written from its input and started on CPU 1 (scripts/spin_on_cpu1.sh).
SPIN_ON_CPU1 = guest_scripts.program("spin_on_cpu1.sh", package=__package__, SPIN_PATH=SPIN_PATH)
LOCKUP_INJECTION_ATTEMPTS = 5
LOCKUP_CONFIRMING_LOOKS = 3
SPIN_START_S = 30.0


def _start_spin_on_cpu1(machine: Machine) -> None:
    """Start the loop and wait until vCPU 1 is seen at its one instruction (it takes a while
    to be exec'ed under TCG; caught in ``chrt`` or ``taskset`` instead, the flag would not
    last)."""
    result = machine.run(SPIN_ON_CPU1, stdin=spin_executable())
    if not result.ok:
        raise SetupError(f"fault injection: the spinning program did not start: {result.stderr}")
    deadline = time.monotonic() + SPIN_START_S
    while parse_registers(machine.hmp("info registers -a")).get(1, ("",))[0] != SPIN_RIP:
        if time.monotonic() > deadline:
            raise SetupError(
                f"fault injection: {SPIN_PATH} not seen running on vCPU 1 in {SPIN_START_S:.0f}s"
            )


def _clear_cpu1_interrupt_flag(machine: Machine) -> None:
    """Clear vCPU 1's interrupt flag while it runs the loop; confirmed by looking at it again
    through HMP (caught in other user code, which then blocks in the kernel, it would not
    stay locked), else tried again."""
    looks: list[tuple[str, bool, bool] | None] = []
    for _ in range(LOCKUP_INJECTION_ATTEMPTS):
        stub = machine.runtime_dir / gdbstub.SOCKET_NAME  # private: not a TCP port
        machine.hmp(gdbstub.gdbserver_command(stub))
        try:
            gdbstub.clear_interrupt_flag_in_user_space(stub, cpu=1)
        finally:
            machine.hmp("gdbserver none")
        looks = [
            parse_registers(machine.hmp("info registers -a")).get(1)
            for _ in range(LOCKUP_CONFIRMING_LOOKS)
        ]
        if all(look == (SPIN_RIP, False, False) for look in looks):
            return
    raise SetupError(f"fault injection: vCPU 1 did not stay with interrupts disabled: {looks}")


def vcpu_lockup_while_entering() -> tuple[Fault, Fault]:
    """vCPU 1 runs on with interrupts disabled once the guest has been asked to sleep, and
    never takes an interrupt again, as a CPU spinning in the kernel with interrupts off does
    (no such spin is to be had from user space): a loop runs on CPU 1 before the request,
    and right after it the loop's interrupt flag is cleared through QEMU's gdbstub. The
    freezer can then never stop that task (its wake-up IPI is never taken). Locked before the
    request instead, the guest cannot be asked: the agent's and sshd's work stalls behind it."""
    return (
        Fault("a loop on vCPU 1 (SCHED_FIFO, user space)", _start_spin_on_cpu1, BEFORE_REQUEST),
        Fault(
            "vCPU 1's interrupt flag cleared (gdbstub) while it loops",
            _clear_cpu1_interrupt_flag,
            AFTER_REQUEST,
        ),
    )


def _run_or_fail(machine: Machine, command: str, timeout: float | None = None) -> None:
    result = machine.run(command, timeout=timeout)
    if not result.ok:
        raise SetupError(f"fault injection '{command}' failed: {result.stderr.strip()}")
