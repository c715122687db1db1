"""A run's ready checkpoints, one per backend: a guest booted once, settled (its boot jobs
done, the checks' data made), and frozen, so that every case starts from a restore of it.
A checkpoint that could not be taken is remembered: one failure per run, not a boot per case.

Under TCG one boot failure is taken again once: a guest kernel that oopses on a breakpoint its
own text patching had just placed ("Oops: int3", then a panic), a race of QEMU's
multi-threaded TCG with two or more vCPUs that strikes now and then in any boot and never on
KVM (docs/reliability.md). The checkpoint's boot is the harness's setup, not a case, so the
run goes on from a second boot, with a warning in the run's summary and the first boot's
console kept as its evidence. Any other panic, and any panic on KVM, stays an error."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from harness.checks.probes import WARM_UP
from harness.errors import HarnessError, KernelPanic
from harness.guest.ssh import CommandResult
from harness.machines.checkpoint import Checkpoint

log = logging.getLogger(__name__)

SETTLE_SECONDS = 60  # a freshly booted guest finishes its boot jobs before it is frozen
# What the guest kernel prints when a vCPU hits a text-patching breakpoint it cannot account
# for: under TCG, the emulator's race (see the module's docstring).
TEXT_PATCH_OOPS = "Oops: int3"
FIRST_ATTEMPT = "checkpoint"
SECOND_ATTEMPT = "checkpoint-again"  # its own evidence folder: the first boot's stays


class Freezable(Protocol):
    def cold_boot(self) -> dict[str, float]: ...

    def run(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> CommandResult: ...

    def capture_checkpoint(self, directory: Path) -> Checkpoint: ...


def take(machine: Freezable, directory: Path) -> Checkpoint:
    """Cold boot ``machine``, let it settle, freeze it into ``directory``."""
    timings = machine.cold_boot()
    settled = machine.run(f"timeout {SETTLE_SECONDS} systemctl is-system-running --wait\n{WARM_UP}")
    log.info("checkpoint: boot %s, system %s", timings, settled.stdout.strip())
    return replace(machine.capture_checkpoint(directory), boot_timings=timings)


def tcg_text_patch_panic(exc: KernelPanic, accel: str) -> bool:
    """Whether ``exc`` is TCG's text-patching race: an ``Oops: int3`` on the console under
    TCG (its console log is the panic's evidence)."""
    if accel != "tcg":
        return False
    log_path = exc.evidence.get("serial_log")
    if not log_path:
        return False
    try:
        console = Path(log_path).read_text(errors="replace")
    except OSError:
        return False
    return TEXT_PATCH_OOPS in console


def take_once_more_on_tcg_race(attempt: Callable[[str], Checkpoint], accel: str) -> Checkpoint:
    """``attempt(name)`` takes the checkpoint with a guest named ``name``; a first boot lost to
    TCG's text-patching race (tcg_text_patch_panic) is followed by one more."""
    try:
        return attempt(FIRST_ATTEMPT)
    except KernelPanic as exc:
        if not tcg_text_patch_panic(exc, accel):
            raise
        message = (
            f"the ready checkpoint's boot: {exc} after '{TEXT_PATCH_OOPS}' (TCG's text-patching "
            "race, a known issue under TCG only); booted again"
        )
        log.warning("%s", message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return attempt(SECOND_ATTEMPT)


class ReadyCheckpoints:
    def __init__(self) -> None:
        self._taken: dict[str, Checkpoint] = {}
        self._failed: dict[str, HarnessError] = {}

    def get(self, backend: str, make: Callable[[], Checkpoint]) -> Checkpoint:
        """The backend's checkpoint, made by ``make`` on first use."""
        if backend in self._failed:
            raise self._failed[backend]
        if backend not in self._taken:
            try:
                self._taken[backend] = make()
            except HarnessError as exc:
                hint = "" if "--cold-boot" in str(exc) else " (--cold-boot boots every case)"
                self._failed[backend] = HarnessError(
                    f"the ready checkpoint could not be taken: {exc}{hint}"
                )
                raise self._failed[backend] from exc
        return self._taken[backend]
