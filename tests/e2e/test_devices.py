"""The device axis end to end: testcases/test_devices.py in a pytest of its own per device
profile (a profile is a guest of its own, with its own cold boot and checkpoint).

e1000e + NVMe: S3 and S4 pass with the checks on those devices, QMP set_link off after the
wake fails the NIC check naming e1000e, and blkdebug EIO under the NVMe data disk fails the
disk check naming nvme. Its guest boots the ``devices`` profile's image (built once, then
cached) and cold boots every case: QEMU cannot checkpoint an NVMe controller. e1000e + AHCI
and virtio-scsi: S3 passes on those disks, each from its profile's checkpoint (with
S3S4_E2E_DEVICES=all: each is a guest of its own, beyond CI's share of time).

USB, display and balloon: one guest with all three (``--usb --display std --balloon``) passes
S3 with their checks, and each of their faults fails its check naming the device, each case
from the profile's checkpoint."""

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.pytest_run import run_pytest

pytestmark = pytest.mark.selftest

RUN_TIMEOUT_S = 900  # the devices image, when not cached, is built first (about a minute)


def run_cases(tmp_path: Path, *options: str) -> dict[str, Any]:
    """testcases/test_devices.py with ``options``; its results.json."""
    run = run_pytest(["testcases/test_devices.py", *options], tmp_path / "reports", RUN_TIMEOUT_S)
    assert run.returncode == 0, run.output[-6000:]
    (results,) = run.reports.glob("2*/results.json")
    data: dict[str, Any] = json.loads(results.read_text())
    return data


def verdicts(data: dict[str, Any]) -> dict[str, list[str]]:
    """Each case's verdicts, by test function; cases that ran no cycle (skipped: the other
    profiles' devices) left out."""
    return {
        t["test"].split("::")[-1].split("[")[0]: t["verdicts"]
        for t in data["tests"]
        if t["verdicts"]
    }


def test_e1000e_and_nvme_sleep_and_their_faults_name_them(tmp_path: Path) -> None:
    """S3 and both faults; S4 (a minute more) is left to the suite's runs of the profile."""
    data = run_cases(tmp_path, "--nic", "e1000e", "--disk", "nvme", "-k", "not devices-s4")
    (cell,) = data["cells"]
    assert cell["id"].endswith("-nic-e1000e-disk-nvme") and "-devices-q" in cell["id"], cell
    assert verdicts(data) == {
        "test_devices_sleep": ["PASS"],
        "test_devices_link_down_names_the_nic": ["FAIL"],
        "test_devices_disk_eio_names_the_disk": ["FAIL"],
    }


@pytest.mark.skipif(
    os.environ.get("S3S4_E2E_DEVICES") != "all",
    reason="a minute each beyond CI's share: S3S4_E2E_DEVICES=all runs them",
)
@pytest.mark.parametrize("disk", ["ahci", "virtio-scsi"])
def test_s3_on_an_ahci_and_a_virtio_scsi_disk(tmp_path: Path, disk: str) -> None:
    data = run_cases(tmp_path, "--nic", "e1000e", "--disk", disk, "-k", "devices-s3")
    (cell,) = data["cells"]
    assert cell["id"].endswith(f"-nic-e1000e-disk-{disk}"), cell
    assert verdicts(data) == {"test_devices_sleep": ["PASS"]}


def test_usb_display_and_balloon_sleep_and_their_faults_name_them(tmp_path: Path) -> None:
    """S3 with the USB tablet and keyboard, std VGA and the balloon checked; the keyboard
    removed while asleep, the display's DRM driver unbound after the wake, the balloon's driver
    unbound before the sleep: each a FAIL of its check naming the device."""
    selection = "devices-s3 or usb_keyboard or display_driver or balloon_driver"
    data = run_cases(tmp_path, "--usb", "--display", "std", "--balloon", "-k", selection)
    (cell,) = data["cells"]
    assert cell["id"].endswith("-usb-display-std-balloon") and "-devices-q" in cell["id"], cell
    assert verdicts(data) == {
        "test_devices_sleep": ["PASS"],
        "test_usb_keyboard_removed_while_asleep_is_named": ["FAIL"],
        "test_display_driver_unbound_is_named": ["FAIL"],
        "test_balloon_driver_unbound_is_named": ["FAIL"],
    }
