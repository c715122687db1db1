"""The device axis end to end, in a pytest of its own per device profile (a profile is a guest
of its own, with its own cold boot and checkpoint). A cycle that FAILs stops its guest, so
each guest below runs at most one failing cycle, last.

e1000e + NVMe (QEMU cannot checkpoint an NVMe controller: each case cold boots): one guest for
two of testcases/test_devices.py's cases, S3 passing with the checks on those devices, then
blkdebug EIO under the NVMe data disk failing the disk check naming nvme; and the link-down
case on a guest of its own, QMP set_link off after the wake failing the NIC check naming
e1000e once the echo over ssh has waited its bound (harness.checks.live_probes.ECHO_WAIT_S)
with nothing received: two cold boots. The guests boot the ``devices`` profile's image
(built once, then cached). S4 on it is left to the suite's runs of the profile. e1000e +
AHCI and virtio-scsi: S3 passes on those disks, each from its profile's checkpoint (with
S3S4_E2E_DEVICES=all: each is a guest of its own, beyond CI's share of time).

USB, display and balloon: one guest with all three (``--usb --display std --balloon``), from
the profile's checkpoint. S3 passes with their checks; then on the same guest one cycle with
the three peripheral faults of testcases/test_devices.py (the keyboard removed while asleep,
the display's DRM driver unbound after the wake, the balloon's driver unbound before the
sleep) fails exactly those three checks, each naming its device. The faults touch disjoint
devices (each alone fails only its own check), so one cycle proves the three checks as the
three cases do one by one (those cases run in the suite with --usb --display --balloon)."""

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.pytest_run import ROOT, run_pytest

pytestmark = pytest.mark.selftest

RUN_TIMEOUT_S = 900  # the devices image, when not cached, is built first (about a minute)

# testcases/test_devices.py's S3 and disk EIO cases one after the other on one booted guest
# (imported under other names, so that pytest does not collect them).
NVME_ONE_BOOT = '''
"""testcases/test_devices.py's S3 and disk EIO cases on one booted guest (written by
tests/e2e/test_devices.py)."""

from harness.transitions.catalogue import S3_AGENT
from testcases.test_devices import (
    test_devices_disk_eio_names_the_disk as disk_eio_names_the_disk,
    test_devices_sleep as devices_sleep,
)


def test_sleep_then_disk_eio(power_cycle, harness_session):
    devices_sleep(power_cycle, harness_session, S3_AGENT)
    disk_eio_names_the_disk(power_cycle, harness_session)
'''

# S3 with the peripherals checked, then their three faults in one cycle on the same guest;
# beside it the link-down case (imported under its own name: a case, on a guest of its own
# restored from the profile's checkpoint).
PERIPHERALS_ONE_GUEST = '''
"""S3 with the USB devices, display and balloon, then their three faults in one cycle, on one
guest; the e1000e's link-down case on another from the same checkpoint (written by
tests/e2e/test_devices.py)."""

from harness.checks.peripherals import display_name
from harness.checks.verdict import Verdict
from harness.cycle.peripheral_faults import (
    balloon_driver_unbound,
    display_driver_unbound,
    usb_keyboard_removed,
)
from harness.plugin import expect_judged
from harness.transitions.catalogue import S3_AGENT
from testcases.test_devices import (
    test_devices_link_down_names_the_nic,  # noqa: F401 - a case
    test_devices_sleep as devices_sleep,
)


def test_sleep_then_the_three_faults_in_one_cycle(power_cycle, harness_session):
    devices_sleep(power_cycle, harness_session, S3_AGENT)
    display = harness_session.settings.display
    faults = [usb_keyboard_removed(), display_driver_unbound(display), balloon_driver_unbound()]
    series = power_cycle(S3_AGENT, faults=faults)
    expect_judged(series)
    outcome = series.last
    assert outcome.verdict is Verdict.FAIL, outcome.reason
    failed = {c.name: c.detail for c in outcome.failed_checks}
    assert set(failed) == {"usb_healthy", "display_updates", "balloon_stats"}, failed
    assert "QEMU USB Keyboard (usb-kbd usb-kbd0" in failed["usb_healthy"], failed
    assert failed["display_updates"].startswith(display_name(display)), failed
    assert "after the wake" in failed["display_updates"], failed
    assert failed["balloon_stats"].startswith("virtio-balloon-pci balloon0"), failed
    assert "statistics stopped" in failed["balloon_stats"], failed
'''


def run_cases(tmp_path: Path, *options: str, cases: str | None = None) -> dict[str, Any]:
    """testcases/test_devices.py with ``options``, or the module ``cases`` written into
    ``tmp_path``; its results.json."""
    args = ["testcases/test_devices.py", *options]
    env = None
    if cases is not None:
        module = tmp_path / "test_devices_one_guest.py"
        module.write_text(cases)
        args = [str(module), *options, "--rootdir", str(ROOT)]
        env = {"PYTHONPATH": str(ROOT)}
    run = run_pytest(args, tmp_path / "reports", RUN_TIMEOUT_S, env=env)
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
    """S3, then the disk's fault, on one cold-booted guest; the case's own assertions name
    nvme. The e1000e's link-down case runs on the peripherals' guest below (its checkpoint
    restored: no cold boot of its own)."""
    data = run_cases(tmp_path, "--nic", "e1000e", "--disk", "nvme", cases=NVME_ONE_BOOT)
    (cell,) = data["cells"]
    assert cell["id"].endswith("-nic-e1000e-disk-nvme") and "-devices-q" in cell["id"], cell
    assert verdicts(data) == {"test_sleep_then_disk_eio": ["PASS", "FAIL"]}


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
    """S3 with the USB tablet and keyboard, std VGA, the balloon and an e1000e NIC checked;
    then the keyboard removed while asleep, the display's DRM driver unbound after the wake
    and the balloon's driver unbound before the sleep, in one cycle: each a FAIL of its check
    naming the device, and no other check failed. On a second guest from the same checkpoint,
    QMP set_link off after the wake fails the NIC check naming e1000e (the case's own
    assertions)."""
    options = ("--nic", "e1000e", "--usb", "--display", "std", "--balloon")
    data = run_cases(tmp_path, *options, cases=PERIPHERALS_ONE_GUEST)
    (cell,) = data["cells"]
    assert cell["id"].endswith("-usb-display-std-balloon") and "-devices-q" in cell["id"], cell
    assert "-nic-e1000e-" in cell["id"], cell
    assert verdicts(data) == {
        "test_devices_link_down_names_the_nic": ["FAIL"],
        "test_sleep_then_the_three_faults_in_one_cycle": ["PASS", "FAIL"],
    }
