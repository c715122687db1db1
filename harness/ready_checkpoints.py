"""A run's ready checkpoints, one per backend: a guest booted once, settled (its boot jobs
done, the checks' data made), and frozen, so that every case starts from a restore of it.
A checkpoint that could not be taken is remembered: one failure per run, not a boot per case."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from harness.checks.probes import WARM_UP
from harness.errors import HarnessError
from harness.guest.ssh import CommandResult
from harness.machines.checkpoint import Checkpoint

log = logging.getLogger(__name__)

SETTLE_SECONDS = 60  # a freshly booted guest finishes its boot jobs before it is frozen


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
