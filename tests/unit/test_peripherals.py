"""The USB devices, display and balloon of a device profile: their command line, cell id and
image, and the pure checks that judge them across a sleep (harness.checks.peripherals)."""

from pathlib import Path

import pytest

from harness.checks.peripherals import (
    BAND_ROWS,
    GREY_AFTER,
    GREY_BEFORE,
    PeripheralWatch,
    balloon_stats,
    band_shown,
    display_updates,
    parse_ppm,
    parse_usb,
    usb_healthy,
)
from harness.checks.verdict import CycleEvidence
from harness.errors import SshError
from harness.machines.config import QemuConfig
from harness.machines.devices import DeviceProfile, image_profile
from harness.machines.qemu.cmdline import RunPaths, build_argv
from harness.setup.guest_profiles import DEVICES
from harness.setup.image import MODULE_ROOTS

PATHS = RunPaths(*(Path(f"/r/{name}") for name in ("q", "a", "c", "root", "swap", "data")))


def argv(devices: DeviceProfile) -> list[str]:
    config = QemuConfig(
        binary="qemu-system-x86_64",
        kernel=Path("/i/vmlinuz"),
        initrd=None,
        append="root=/dev/vda",
        devices=devices,
    )
    return build_argv(config, PATHS, 1)


def option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == name]


def test_the_default_profile_keeps_the_machines_std_vga_and_adds_nothing() -> None:
    args = argv(DeviceProfile())
    assert option(args, "-vga") == ["std"]
    assert not [d for d in option(args, "-device") if "xhci" in d or "balloon" in d]
    assert DeviceProfile().id_suffix == ""


@pytest.mark.parametrize(
    ("display", "device"),
    [
        ("std", "VGA,id=display0"),
        ("virtio-gpu", "virtio-vga,id=display0"),
        ("qxl", "qxl-vga,id=display0"),
    ],
)
def test_a_chosen_display_is_a_device_with_an_id_instead_of_the_machines_vga(
    display: str, device: str
) -> None:
    args = argv(DeviceProfile(display=display))
    assert option(args, "-vga") == ["none"]
    assert device in option(args, "-device")


def test_usb_and_balloon_devices_and_the_cell_id_naming_them() -> None:
    devices = DeviceProfile(usb=True, display="qxl", balloon=True)
    assert option(argv(devices), "-device")[-5:] == [
        "qemu-xhci,id=usb0",
        "usb-tablet,bus=usb0.0,id=usb-tablet0",
        "usb-kbd,bus=usb0.0,id=usb-kbd0",
        "qxl-vga,id=display0",
        "virtio-balloon-pci,id=balloon0",
    ]
    assert devices.id_suffix == "usb-display-qxl-balloon"
    assert DeviceProfile(nic="e1000e", usb=True).id_suffix == "nic-e1000e-usb"
    with pytest.raises(ValueError, match="unknown display 'cirrus': use one of std, virtio-gpu"):
        DeviceProfile(display="cirrus")


def test_usb_and_displays_boot_the_devices_image_a_balloon_alone_does_not() -> None:
    assert image_profile(DeviceProfile(usb=True), None) == "devices"
    assert image_profile(DeviceProfile(display="std"), None) == "devices"
    assert image_profile(DeviceProfile(balloon=True), None) is None  # drivers/virtio is kept
    includes = DEVICES.module_paths(MODULE_ROOTS)
    for module in ("tiny/bochs.ko*", "virtio/*", "qxl/*", "drm_kms_helper.ko*", "ttm/*"):
        assert f"/lib/modules/*/kernel/drivers/gpu/drm/{module}" in includes


def test_no_watch_without_these_devices_one_step_each_with_them() -> None:
    assert PeripheralWatch(DeviceProfile()).steps == []
    watch = PeripheralWatch(DeviceProfile(usb=True, display="std", balloon=True))
    assert [s.name for s in watch.steps] == ["usb", "display", "balloon"]
    assert PeripheralWatch.of(object()).steps == []  # a machine without a QEMU config


USB_BEFORE = (
    "1-1|QEMU USB Tablet|usbhid\n1-2|QEMU USB Keyboard|usbhid\nusb1|xHCI Host Controller|hub"
)


def evidence(before: dict[str, str], after: dict[str, str]) -> CycleEvidence:
    ev = CycleEvidence("s3-agent")
    ev.before, ev.after = before, after
    return ev


def test_usb_passes_with_the_devices_bound_and_both_events_read() -> None:
    assert parse_usb(USB_BEFORE)["1-2"] == ("QEMU USB Keyboard", "usbhid")
    after = {"usb.devices": USB_BEFORE, "usb.input.tablet": "24", "usb.input.keyboard": "24"}
    result = usb_healthy(evidence({"usb.devices": USB_BEFORE}, after))
    assert result.passed, result.detail
    assert "QEMU USB Keyboard (1-2, usbhid)" in result.detail


def test_usb_fails_naming_a_keyboard_gone_and_its_missing_events() -> None:
    after = {
        "usb.devices": USB_BEFORE.replace("1-2|QEMU USB Keyboard|usbhid\n", ""),
        "usb.input.tablet": "24",
        "usb.input.keyboard": "none",
        "usb.sent.usb-kbd0": "Device 'usb-kbd0' not found",
    }
    result = usb_healthy(evidence({"usb.devices": USB_BEFORE}, after))
    assert not result.passed
    assert result.detail.startswith(
        "xHCI: QEMU USB Keyboard (usb-kbd usb-kbd0 at 1-2) gone after the wake"
    )
    assert "no input device in the guest; input-send-event: Device 'usb-kbd0'" in result.detail


def test_usb_fails_naming_a_device_whose_driver_let_go() -> None:
    after = {
        "usb.devices": USB_BEFORE.replace("Tablet|usbhid", "Tablet|"),
        "usb.input.tablet": "0",
        "usb.input.keyboard": "24",
    }
    detail = usb_healthy(evidence({"usb.devices": USB_BEFORE}, after)).detail
    assert "QEMU USB Tablet (usb-tablet usb-tablet0 at 1-1) bound to nothing after" in detail
    assert "QEMU USB Tablet (usb-tablet usb-tablet0): no event within 15s" in detail


def ppm(width: int, height: int, band_grey: int) -> bytes:
    rows = [bytes(width * 3)] * (height - BAND_ROWS) + [bytes([band_grey]) * width * 3] * BAND_ROWS
    return f"P6\n{width} {height}\n255\n".encode() + b"".join(rows)


def test_the_band_is_found_at_the_bottom_of_a_screendump() -> None:
    shot = ppm(320, 200, GREY_AFTER)
    assert parse_ppm(shot)[:2] == (320, 200)
    assert band_shown(shot, GREY_AFTER, 320) == 1.0
    assert band_shown(shot, GREY_BEFORE, 320) == 0.0
    assert band_shown(ppm(320, 200, 0), GREY_AFTER, 320) == 0.0  # a blank screen
    with pytest.raises(ValueError):
        parse_ppm(b"\x89PNG")


def display_facts(phase: str, shown: str) -> dict[str, str]:
    return {
        "display.name": "std",
        f"display.{phase}_fb": "4096 1024,768 32 bochs-drm",
        f"display.{phase}_shown": shown,
        f"display.{phase}_band": "0.00 after 40 draws",
    }


def test_the_display_check_names_the_device_whose_screen_stopped() -> None:
    ok = display_updates(evidence(display_facts("before", "yes"), display_facts("after", "yes")))
    assert ok.passed, ok.detail
    failed = display_updates(evidence(display_facts("before", "yes"), display_facts("after", "no")))
    assert not failed.passed
    assert failed.detail == (
        "std VGA (VGA display0, bochs-drm): the screen did not show what the guest drew after "
        "the wake within 15s (band 0.00 after 40 draws)"
    )
    gone = display_facts("after", "")
    gone["display.after_fb"] = "none"
    detail = display_updates(evidence(display_facts("before", "yes"), gone)).detail
    assert detail.endswith("no framebuffer in the guest after the wake")


def test_the_balloon_check_wants_statistics_after_the_wake() -> None:
    before = {"balloon.last_update": "1000"}
    ok = balloon_stats(evidence(before, {"balloon.since": "1000", "balloon.last_update": "1004"}))
    assert ok.passed, ok.detail
    stopped = balloon_stats(
        evidence(before, {"balloon.since": "1000", "balloon.last_update": "1000"})
    )
    assert not stopped.passed
    assert stopped.detail.startswith(
        "virtio-balloon-pci balloon0 (virtio_balloon): guest statistics stopped: "
        "last-update stayed at 1000"
    )
    never = balloon_stats(evidence({"balloon.last_update": "0"}, {}))
    assert "no guest statistics before the sleep" in never.detail


GIVEN_UP = "ssh given up: the guest's network link is down (seen through the guest agent)"


class HostOnlyMachine:
    """A machine whose QMP answers (the balloon's statistics advancing at each read) and whose
    ssh does not: each command is recorded and fails as a dead link's would."""

    def __init__(self) -> None:
        self.qmp_calls: list[str] = []
        self.ssh_commands: list[str] = []
        self.last_update = 1000

    def qmp(self, command: str, arguments: dict[str, object] | None = None) -> object:
        self.qmp_calls.append(command)
        if command == "qom-get":
            self.last_update += 1
            return {"last-update": self.last_update}
        return {}

    def run(self, command: str, timeout: float | None = None) -> object:
        self.ssh_commands.append(command)
        raise SshError("ssh command failed or timed out after 120s")


def test_after_ssh_given_up_the_ssh_steps_are_not_measured_and_the_balloon_still_is() -> None:
    watch = PeripheralWatch(DeviceProfile(usb=True, display="std", balloon=True))
    machine = HostOnlyMachine()
    ev = evidence(
        {"usb.devices": USB_BEFORE, "display.before_shown": "yes", "balloon.last_update": "1000"},
        {},
    )
    ev.after_error = GIVEN_UP
    watch.after(machine, ev)  # type: ignore[arg-type]
    assert machine.ssh_commands == []
    assert "qom-get" in machine.qmp_calls  # the balloon's statistics, read from the host
    results = {r.name: r for r in (check(ev) for check in watch.checks)}
    for name in ("usb_healthy", "display_updates"):
        assert not results[name].passed
        assert results[name].detail == f"not measured after resume: {GIVEN_UP}"
    assert results["balloon_stats"].passed, results["balloon_stats"].detail


def test_another_after_error_leaves_the_ssh_steps_to_run() -> None:
    """Only a cycle that gave ssh up stops the ssh steps: any other error of its facts leaves
    them to try (and report what they met)."""
    watch = PeripheralWatch(DeviceProfile(usb=True))
    machine = HostOnlyMachine()
    ev = evidence({"usb.devices": USB_BEFORE}, {})
    ev.after_error = "guest fact capture (after) exited 1: oops"
    watch.after(machine, ev)  # type: ignore[arg-type]
    assert machine.ssh_commands  # tried, and its failure recorded as the step's error
    assert "usb.not_measured" not in ev.after
    result = watch.checks[0](ev)
    assert not result.passed
    assert "not read after the wake: ssh command failed" in result.detail


def test_without_an_after_error_the_watchs_checks_are_the_devices_own() -> None:
    watch = PeripheralWatch(DeviceProfile(usb=True))
    ev = evidence(
        {"usb.devices": USB_BEFORE},
        {"usb.devices": USB_BEFORE, "usb.input.tablet": "24", "usb.input.keyboard": "24"},
    )
    assert watch.checks[0](ev) == usb_healthy(ev)
