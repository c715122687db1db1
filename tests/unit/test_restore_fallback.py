"""A guest restored from the ready checkpoint whose kernel panics is cold booted instead; any
other failed restore stays an error."""

from pathlib import Path

import pytest

from harness.errors import KernelPanic, QemuStartError
from harness.machines.base import MachineBase
from harness.machines.checkpoint import Checkpoint


class Guest(MachineBase):
    def __init__(self, restore_fails_with: Exception | None) -> None:  # no QEMU: boot only
        self.name = "guest"
        self.ready_from = Checkpoint(name="c", state=Path("state"), disks={})
        self.failure = restore_fails_with
        self.steps: list[str] = []

    def start_from(self, checkpoint: Checkpoint) -> dict[str, float]:
        self.steps.append("restore")
        if self.failure is not None:
            raise self.failure
        return {"total": 2.0}

    def cold_boot(self) -> dict[str, float]:
        self.steps.append("cold boot")
        return {"agent": 14.0, "ssh": 15.0}


def test_a_restored_guest_that_answers_is_used() -> None:
    guest = Guest(None)
    assert guest.boot() == {"total": 2.0} and guest.steps == ["restore"]


def test_a_restore_whose_kernel_panics_falls_back_to_a_cold_boot_with_a_warning() -> None:
    guest = Guest(KernelPanic("checkpoint restore", "the guest kernel panicked: Oops"))
    with pytest.warns(RuntimeWarning, match="panicked.*cold booted instead"):
        timings = guest.boot()
    assert guest.steps == ["restore", "cold boot"]
    assert timings["restore_panicked"] == 1.0 and timings["ssh"] == 15.0


def test_a_damaged_checkpoint_stays_an_error() -> None:
    guest = Guest(QemuStartError("checkpoint restore: image is truncated"))
    with pytest.raises(QemuStartError, match="truncated"):
        guest.boot()
    assert guest.steps == ["restore"]
