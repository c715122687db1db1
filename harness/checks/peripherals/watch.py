"""The host-side steps of a guest's USB devices, display and balloon, run by the cycle before
the sleep request and after the wake, and the checks that judge what they recorded.

After the wake the steps run once the cycle has made its own look at the guest: when it gave
ssh up (the link down or the NIC silent, seen through the guest agent), a step that needs ssh
(USB's listing and input reads, the display's drawing) is not tried, since it would only wait
out ssh's bound; its check says it was not measured and why, as the guest's other checks do.
A step that acts from the host alone (the balloon's statistics over QMP) still runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.checks.peripherals.balloon import balloon_after, balloon_before, balloon_stats
from harness.checks.peripherals.display import display_after, display_before, display_updates
from harness.checks.peripherals.usb import usb_after, usb_before, usb_healthy
from harness.checks.verdict import SSH_GIVEN_UP, CheckResult, CycleEvidence
from harness.errors import HarnessError
from harness.machines.config import QemuConfig
from harness.machines.devices import DeviceProfile
from harness.machines.protocol import Machine

NOT_MEASURED = "not_measured"  # the fact ``<step>.not_measured``: why the step was not tried


@dataclass(frozen=True)
class Step:
    """One device's host-side steps and its check; ``needs_ssh``: its after-step runs commands
    in the guest over ssh."""

    name: str
    before: Callable[[Machine, dict[str, str]], None]
    after: Callable[[Machine, dict[str, str], dict[str, str]], None]
    check: Callable[[CycleEvidence], CheckResult]
    needs_ssh: bool = True


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
            self.steps.append(
                Step("balloon", balloon_before, balloon_after, balloon_stats, needs_ssh=False)
            )

    @classmethod
    def of(cls, machine: object) -> PeripheralWatch:
        config = getattr(machine, "config", None)
        return cls(config.devices if isinstance(config, QemuConfig) else DeviceProfile())

    @property
    def checks(self) -> list[Callable[[CycleEvidence], CheckResult]]:
        return [functools.partial(_judged, step) for step in self.steps]

    def before(self, machine: Machine, evidence: CycleEvidence) -> None:
        for step in self.steps:
            _guarded(
                step.name, evidence.before, functools.partial(step.before, machine, evidence.before)
            )

    def after(self, machine: Machine, evidence: CycleEvidence) -> None:
        """The after-steps, run once the cycle's own look after the wake is done (its
        ``after_error`` set if it gave ssh up)."""
        given_up = evidence.after_error if evidence.after_error.startswith(SSH_GIVEN_UP) else ""
        for step in self.steps:
            if given_up and step.needs_ssh:
                evidence.after[f"{step.name}.{NOT_MEASURED}"] = given_up
                continue
            run = functools.partial(step.after, machine, evidence.before, evidence.after)
            _guarded(step.name, evidence.after, run)


def _judged(step: Step, ev: CycleEvidence) -> CheckResult:
    """The step's check; a step not tried after the wake is "not measured" with the cycle's
    reason, as the guest's other checks say it: not a pass on no evidence, and not its device
    blamed for another's fault (the NIC whose link is down)."""
    result = step.check(ev)
    if reason := ev.after.get(f"{step.name}.{NOT_MEASURED}"):
        return CheckResult(
            result.name, False, f"not measured after resume: {reason}", result.evidence
        )
    return result


def _guarded(name: str, facts: dict[str, str], run: Callable[[], None]) -> None:
    started = time.monotonic()
    try:
        run()
    except (HarnessError, OSError, ValueError) as exc:  # a screendump unreadable, too
        facts[f"{name}.error"] = str(exc)[:300]
    facts[f"{name}.seconds"] = f"{time.monotonic() - started:.2f}"
