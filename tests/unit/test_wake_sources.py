"""Wake sources (harness.transitions.wakes.PressWakeSource) on a scripted machine: a source
that wakes passes, one that does not is a FAIL naming it within its bound, one whose QEMU model
cannot wake is UNSUPPORTED with QEMU's reason once system_wakeup brought the guest back, and a
key press that could reach another keyboard is refused before anything is pressed."""

from dataclasses import replace
from pathlib import Path

from harness.checks.verdict import Verdict
from harness.cycle.run import run_cycle
from harness.guest.ssh import CommandResult
from harness.transitions.catalogue import (
    S3_KEY_PS2,
    S3_KEY_USB,
    S3_KEY_VIRTIO,
    S3_POWER_BUTTON,
    TRANSITIONS,
)
from harness.transitions.parts import Transition
from harness.transitions.wakes import PressWakeSource
from tests.unit.fake_machine import FakeMachine

BOUND_S = 0.2  # the fake's WAKEUP, when it comes, is recorded at the press


class WakeSourceMachine(FakeMachine):
    """A fake whose key press and power button wake it or not, with its QOM devices."""

    def __init__(self, tmp: Path, *, wakes: bool, devices: str = "") -> None:
        super().__init__(tmp)
        self.wakes, self.devices = wakes, devices
        self.pressed: list[str] = []
        self.woken_by_host = 0

    def run(
        self, command: str, timeout: float | None = None, stdin: bytes | None = None
    ) -> CommandResult:
        if "echo mem > /sys/power/state" in command:
            self._sleep(False)
            return CommandResult(command, 0, "", "")
        return super().run(command, timeout, stdin)

    def hmp(self, command: str) -> str:
        if command == "qom-list /machine/peripheral":
            return self.devices
        if command == "system_powerdown":
            self._press("power button")
        return ""

    def send_key(self, key: str) -> None:
        self._press(key)

    def wake_from_ram(self) -> None:
        self.woken_by_host += 1
        super().wake_from_ram()

    def _press(self, what: str) -> None:
        self.pressed.append(what)
        if self.wakes:
            FakeMachine.wake_from_ram(self)


def bounded(transition: Transition) -> Transition:
    assert isinstance(transition.wake, PressWakeSource)
    return replace(transition, wake=replace(transition.wake, bound_s=BOUND_S))


def test_each_source_is_a_named_transition() -> None:
    assert {"s3-key-ps2", "s3-key-usb", "s3-key-virtio", "s3-power-button"} <= set(TRANSITIONS)


def test_a_ps2_key_that_wakes_passes_with_its_time(tmp_path: Path) -> None:
    machine = WakeSourceMachine(tmp_path, wakes=True)
    outcome = run_cycle(machine, bounded(S3_KEY_PS2))
    assert outcome.verdict is Verdict.PASS, outcome.reason
    assert machine.pressed == ["shift"] and machine.woken_by_host == 0
    assert [e["event"] for e in outcome.evidence.events] == ["SUSPEND", "WAKEUP"]
    assert 0 <= outcome.evidence.timings["source_to_wakeup"] < BOUND_S


def test_a_ps2_key_that_does_not_wake_is_a_fail_naming_it_within_the_bound(
    tmp_path: Path,
) -> None:
    machine = WakeSourceMachine(tmp_path, wakes=False)
    outcome = run_cycle(machine, bounded(S3_KEY_PS2))
    assert outcome.verdict is Verdict.FAIL
    assert outcome.reason.startswith(
        "wake: the PS/2 keyboard (i8042) did not wake the guest: no WAKEUP within 0s of a key "
        "press (QMP send-key)"
    ), outcome.reason
    assert machine.woken_by_host == 0 and machine.stopped


def test_a_source_qemu_cannot_wake_from_is_unsupported_with_qemus_reason(
    tmp_path: Path,
) -> None:
    machine = WakeSourceMachine(tmp_path, wakes=False)
    outcome = run_cycle(machine, bounded(S3_POWER_BUTTON))
    assert outcome.verdict is Verdict.UNSUPPORTED
    assert outcome.reason.startswith(
        "the ACPI power button cannot wake an S3 guest on this QEMU: "
    ), outcome.reason
    assert "acpi_pm1_evt_power_down" in outcome.reason
    assert "system_wakeup then woke the guest" in outcome.reason
    # Left awake for the next cycle: woken by the host, not stopped.
    assert machine.pressed == ["power button"] and machine.woken_by_host == 1
    assert not machine.stopped


def test_a_source_qemu_cannot_wake_from_passes_where_it_wakes(tmp_path: Path) -> None:
    machine = WakeSourceMachine(tmp_path, wakes=True, devices="kbd0 (child<usb-kbd>)\n")
    outcome = run_cycle(machine, bounded(S3_KEY_USB))
    assert outcome.verdict is Verdict.PASS, outcome.reason


def test_a_usb_key_without_a_usb_keyboard_is_refused_before_the_press(tmp_path: Path) -> None:
    machine = WakeSourceMachine(tmp_path, wakes=True)
    outcome = run_cycle(machine, bounded(S3_KEY_USB))
    assert outcome.verdict is Verdict.ERROR
    assert "must have exactly this keyboard (-device usb-kbd), it has none" in outcome.reason
    assert machine.pressed == []


def test_a_ps2_key_beside_a_virtio_keyboard_is_refused(tmp_path: Path) -> None:
    devices = "virtio-keyboard-pci (child<virtio-keyboard-pci>)\n"
    machine = WakeSourceMachine(tmp_path, wakes=True, devices=devices)
    outcome = run_cycle(machine, bounded(S3_KEY_PS2))
    assert outcome.verdict is Verdict.ERROR
    assert "also has virtio-keyboard-pci, which would take the key press" in outcome.reason
    assert machine.pressed == []


def test_the_virtio_keyboard_names_qemus_code(tmp_path: Path) -> None:
    devices = "kbd (child<virtio-keyboard-pci>)\n"
    machine = WakeSourceMachine(tmp_path, wakes=False, devices=devices)
    outcome = run_cycle(machine, bounded(S3_KEY_VIRTIO))
    assert outcome.verdict is Verdict.UNSUPPORTED
    assert "virtio_input_handle_event" in outcome.reason
