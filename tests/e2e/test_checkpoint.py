"""Ready checkpoints: every case's guest is a restore of one frozen, booted guest, on disks of
its own, so cases stay independent; a damaged checkpoint is a one-line error."""

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.machines.checkpoint import Checkpoint
from harness.machines.libvirt.machine import LibvirtMachine
from harness.machines.qemu.machine import QemuMachine
from harness.session import HarnessSession

pytestmark = pytest.mark.selftest


# A 4 KiB block of the 64 MiB scratch disk past what the checks write (0-16 MiB, 40-41 MiB).
TOKEN_BLOCK = 12800  # 50 MiB


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _restored(session: HarnessSession, label: str) -> QemuMachine:
    machine = session.fresh_guest(label)
    assert isinstance(machine, QemuMachine)
    assert machine.ready_from is not None, "the default guest should start from the checkpoint"
    timings = machine.boot()
    assert "restore" in timings, timings
    return machine


def test_restored_guests_share_the_boot_but_not_the_disks(
    harness_session: HarnessSession,
) -> None:
    checkpoint = harness_session.ready_checkpoint()
    frozen = {role: _digest(path) for role, path in checkpoint.disks.items()}
    first = _restored(harness_session, "checkpoint-first")
    try:
        boot_id = first.run("cat /proc/sys/kernel/random/boot_id").stdout
        # Written by the first guest to its root disk, its swap disk and its RAM (tmpfs).
        assert first.run(
            "echo first > /var/tmp/owner && sync && swapoff /dev/vdb && "
            "dd if=/dev/urandom of=/dev/vdb bs=1M seek=8 count=1 conv=fsync 2>/dev/null && "
            "echo first > /run/owner"
        ).ok
        second = _restored(harness_session, "checkpoint-second")
        try:
            assert second.run("cat /proc/sys/kernel/random/boot_id").stdout == boot_id
            seen = second.run("cat /var/tmp/owner /run/owner 2>&1; swapon --show=NAME")
            assert "first" not in seen.stdout, seen.stdout
            assert "/dev/vdb" in seen.stdout, "the second guest's swap is still active"
            clock = second.run("date +%s").stdout
            assert abs(int(clock) - int(time.time())) <= 2, clock
        finally:
            harness_session.discard(second)
    finally:
        harness_session.discard(first)
    assert {role: _digest(path) for role, path in checkpoint.disks.items()} == frozen


def test_damaged_checkpoint_is_a_one_line_error(
    harness_session: HarnessSession, tmp_path: Path
) -> None:
    good = harness_session.ready_checkpoint()
    state = tmp_path / "state.migration"
    shutil.copyfile(good.state, state)
    with state.open("r+b") as handle:
        handle.truncate(state.stat().st_size // 3)
    damaged = Checkpoint(name="damaged", state=state, disks=good.disks)
    machine = harness_session.fresh_guest("checkpoint-damaged")
    assert isinstance(machine, QemuMachine)
    machine.ready_from = damaged
    try:
        with pytest.raises(HarnessError) as caught:
            machine.boot()
        message = str(caught.value)
        assert "checkpoint restore" in message and "\n" not in message, message
        assert not machine.running
    finally:
        harness_session.discard(machine)


@pytest.mark.libvirt
def test_libvirt_cases_restore_the_libvirt_checkpoint_and_share_nothing(
    harness_session: HarnessSession,
) -> None:
    """Under libvirt too: each case's domain is a restore (virsh restore) of one frozen,
    settled domain on fresh copies of its disks, which stay as they were frozen."""
    first = harness_session.libvirt_guest()
    assert isinstance(first, LibvirtMachine) and first.ready_from is not None
    checkpoint = first.ready_from
    frozen = {role: _digest(path) for role, path in checkpoint.disks.items()}
    boot_id = first.run("cat /proc/sys/kernel/random/boot_id").stdout
    # Written by the first guest to RAM (tmpfs) and, past every cache, to its scratch disk:
    # a restore keeps the checkpoint's page cache, so only a direct read of the disk can
    # tell a fresh copy from the first guest's disk.
    assert first.run(
        "echo first > /run/owner && echo first-was-here | "
        f"dd of=/dev/vdc bs=4k seek={TOKEN_BLOCK} oflag=direct,sync conv=sync 2>/dev/null"
    ).ok
    second = harness_session.libvirt_guest()  # the next case's: the same domain, restored
    assert second.run("cat /proc/sys/kernel/random/boot_id").stdout == boot_id
    seen = second.run(
        f"cat /run/owner 2>&1; dd if=/dev/vdc bs=4k skip={TOKEN_BLOCK} count=1 iflag=direct "
        "2>/dev/null | tr -d '\\0'"
    )
    assert "first" not in seen.stdout, seen.stdout
    clock = second.run("date +%s").stdout
    assert abs(int(clock) - int(time.time())) <= 2, clock
    second.stop()
    assert {role: _digest(path) for role, path in checkpoint.disks.items()} == frozen
