"""The host-side steps of a guest's USB devices, display and balloon, run by the cycle before
the sleep request and after the wake, and the checks that judge what they recorded."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.checks.peripherals.balloon import balloon_after, balloon_before, balloon_stats
from harness.checks.peripherals.display import display_after, display_before, display_updates
from harness.checks.peripherals.usb import usb_after, usb_before, usb_healthy
from harness.checks.verdict import CheckResult, CycleEvidence
from harness.errors import HarnessError
from harness.machines.config import QemuConfig
from harness.machines.devices import DeviceProfile
from harness.machines.protocol import Machine


@dataclass(frozen=True)
class Step:
    """One device's host-side steps and its check."""

    name: str
    before: Callable[[Machine, dict[str, str]], None]
    after: Callable[[Machine, dict[str, str], dict[str, str]], None]
    check: Callable[[CycleEvidence], CheckResult]


class PeripheralWatch:
    """The steps of a machine's USB devices, display and balloon (none without them)."""

    def __init__(self, devices: DeviceProfile) -> None:
        self.devices = devices
        self.steps: list[Step] = []
        if devices.usb:
            self.steps.append(Step("usb", usb_before, usb_after, usb_healthy))
        if devices.display:
            before = functools.partial(display_before, display=devices.display)
            after = functools.partial(display_after, display=devices.display)
            self.steps.append(Step("display", before, after, display_updates))
        if devices.balloon:
            self.steps.append(Step("balloon", balloon_before, balloon_after, balloon_stats))

    @classmethod
    def of(cls, machine: object) -> PeripheralWatch:
        config = getattr(machine, "config", None)
        return cls(config.devices if isinstance(config, QemuConfig) else DeviceProfile())

    @property
    def checks(self) -> list[Callable[[CycleEvidence], CheckResult]]:
        return [step.check for step in self.steps]

    def before(self, machine: Machine, evidence: CycleEvidence) -> None:
        for step in self.steps:
            _guarded(
                step.name, evidence.before, functools.partial(step.before, machine, evidence.before)
            )

    def after(self, machine: Machine, evidence: CycleEvidence) -> None:
        for step in self.steps:
            run = functools.partial(step.after, machine, evidence.before, evidence.after)
            _guarded(step.name, evidence.after, run)


def _guarded(name: str, facts: dict[str, str], run: Callable[[], None]) -> None:
    started = time.monotonic()
    try:
        run()
    except (HarnessError, OSError, ValueError) as exc:  # a screendump unreadable, too
        facts[f"{name}.error"] = str(exc)[:300]
    facts[f"{name}.seconds"] = f"{time.monotonic() - started:.2f}"
