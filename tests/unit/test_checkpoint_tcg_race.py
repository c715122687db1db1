"""The ready checkpoint's one more boot after TCG's text-patching race, and only then."""

from pathlib import Path

import pytest

from harness.errors import KernelPanic
from harness.machines.checkpoint import Checkpoint
from harness.ready_checkpoints import (
    FIRST_ATTEMPT,
    SECOND_ATTEMPT,
    take_once_more_on_tcg_race,
    tcg_text_patch_panic,
)

RACE_CONSOLE = (
    "[    1.975404] clocksource: Switched to clocksource tsc\n"
    "[    1.977475] Oops: int3: 0000 [#1] SMP NOPTI\n"
    "[    1.983235] Kernel panic - not syncing: Fatal exception in interrupt\n"
)
OTHER_CONSOLE = "[    0.9] Kernel panic - not syncing: VFS: Unable to mount root fs\n"


def panic(tmp_path: Path, console: str) -> KernelPanic:
    log = tmp_path / "serial.log"
    log.write_text(console)
    return KernelPanic("boot", "the guest kernel panicked: ...", evidence={"serial_log": str(log)})


class Attempts:
    """Takes the checkpoint, failing the first ``failures`` attempts with ``error``."""

    def __init__(self, error: KernelPanic, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.names: list[str] = []

    def __call__(self, name: str) -> Checkpoint:
        self.names.append(name)
        if len(self.names) <= self.failures:
            raise self.error
        return Checkpoint(name, Path("/nowhere/state"), {})


def test_the_race_under_tcg_is_booted_once_more_with_a_warning(tmp_path: Path) -> None:
    attempts = Attempts(panic(tmp_path, RACE_CONSOLE), failures=1)
    with pytest.warns(RuntimeWarning, match="Oops: int3.*booted again"):
        take_once_more_on_tcg_race(attempts, "tcg")
    assert attempts.names == [FIRST_ATTEMPT, SECOND_ATTEMPT]


def test_the_race_twice_is_the_error(tmp_path: Path) -> None:
    attempts = Attempts(panic(tmp_path, RACE_CONSOLE), failures=2)
    with pytest.warns(RuntimeWarning), pytest.raises(KernelPanic):
        take_once_more_on_tcg_race(attempts, "tcg")
    assert attempts.names == [FIRST_ATTEMPT, SECOND_ATTEMPT]


@pytest.mark.parametrize(
    ("console", "accel"), [(OTHER_CONSOLE, "tcg"), (RACE_CONSOLE, "kvm")], ids=["other", "kvm"]
)
def test_any_other_panic_or_kvm_is_the_error_at_once(
    tmp_path: Path, console: str, accel: str
) -> None:
    attempts = Attempts(panic(tmp_path, console), failures=1)
    with pytest.raises(KernelPanic):
        take_once_more_on_tcg_race(attempts, accel)
    assert attempts.names == [FIRST_ATTEMPT]


def test_a_panic_without_its_console_is_not_the_race() -> None:
    assert not tcg_text_patch_panic(KernelPanic("boot", "panicked"), "tcg")
    missing = KernelPanic("boot", "panicked", evidence={"serial_log": "/nonexistent/serial.log"})
    assert not tcg_text_patch_panic(missing, "tcg")
