"""Secure boot with SMM on q35 (OVMF with Microsoft's keys enrolled), the guest started
through Debian's signed shim and GRUB: S3 sleeps and wakes again and again, S4 is UNSUPPORTED
in the locked-down kernel's own words, and a boot loader that fails verification is named
within seconds instead of waiting out the boot bound."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.errors import KernelPanic
from harness.session import HarnessSession, Settings
from harness.setup import secure_boot
from harness.setup.secure_boot import ESP_OFFSET_SECTORS, SecureBootDisk
from tests.e2e.pytest_run import run_pytest

pytestmark = pytest.mark.selftest

RUN_TIMEOUT_S = 900  # a cold boot through shim and GRUB, three S3 cycles, an S4 refusal
SECURE = ("--firmware", "ovmf-secure", "--machine-type", "q35")


def run_cell(tmp_path: Path, selection: str) -> dict[str, Any]:
    args = ["testcases", "-m", "not selftest and not libvirt", "-k", selection, *SECURE]
    return run_pytest(args, tmp_path / "reports", RUN_TIMEOUT_S).results()


def test_secure_boot_sleeps_again_and_again_and_names_lockdown_for_s4(tmp_path: Path) -> None:
    data = run_cell(tmp_path, "test_suspend_to_ram_repeated or (test_hibernate and s4-agent)")
    (cell,) = data["cells"]
    assert re.fullmatch(r"ovmf-secure\d+\.\d+", cell["firmware"]), cell
    assert cell["firmware_file"].endswith(".ms.fd"), cell
    loaders = {p["name"] for p in cell["packages"] if p["component"] == "secure-boot"}
    assert loaders == {"shim-signed", "shim-helpers-amd64-signed", "grub-efi-amd64-signed"}
    verdicts = {t["test"].split("::")[1].split("[")[0]: t for t in data["tests"]}
    repeated = verdicts["test_suspend_to_ram_repeated"]
    assert repeated["verdicts"] == ["PASS"], repeated["series"][0]["reason"]
    assert repeated["series"][0]["cycles_passed"] >= 2
    s4 = verdicts["test_hibernate"]["series"][0]
    assert s4["verdict"] == "UNSUPPORTED", s4["reason"]
    assert "the kernel said: Lockdown: " in s4["reason"], s4["reason"]
    assert "hibernation is restricted" in s4["reason"], s4["reason"]


def _tampered(real: SecureBootDisk, tmp_path: Path) -> SecureBootDisk:
    """A copy of the ESP whose GRUB has one byte changed in its code: its signature no longer
    matches, which shim must refuse."""
    disk = tmp_path / "esp-tampered.raw"
    shutil.copyfile(real.path, disk)
    fat = f"{disk}@@{ESP_OFFSET_SECTORS * 512}"
    grub = tmp_path / "grubx64.efi"
    subprocess.run(["mcopy", "-i", fat, "::/EFI/BOOT/grubx64.efi", str(grub)], check=True)
    data = bytearray(grub.read_bytes())
    data[len(data) // 2] ^= 0xFF
    grub.write_bytes(bytes(data))
    subprocess.run(["mcopy", "-o", "-i", fat, str(grub), "::/EFI/BOOT/grubx64.efi"], check=True)
    return SecureBootDisk(disk, real.packages)


def test_a_boot_loader_that_fails_verification_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_esp = secure_boot.esp_disk
    monkeypatch.setattr(
        secure_boot, "esp_disk", lambda *a, **kw: _tampered(real_esp(*a, **kw), tmp_path)
    )
    settings = Settings(firmware="ovmf-secure", machine_type="q35", cold_boot=True)
    session = HarnessSession(settings, tmp_path / "guests", lambda _: None)
    try:
        machine = session.fresh_guest("tampered")
        with pytest.raises(KernelPanic) as raised:
            machine.boot()
        assert "secure boot refused to start: Verification failed: (0x1A) Security Violation" in (
            str(raised.value)
        ), raised.value
    finally:
        session.close()
