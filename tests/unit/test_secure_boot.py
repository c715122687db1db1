"""Secure boot: the QEMU arguments it takes (SMM, the secure pflash, an ESP the firmware
boots instead of the kernel), the loaders taken from the guest's release, and S4 under the
kernel's lockdown named in the kernel's own words."""

from pathlib import Path

from harness.machines.config import SECURE_UEFI, Firmware, QemuConfig
from harness.machines.qemu.cmdline import RunPaths, build_argv
from harness.setup.components import Package
from harness.setup.secure_boot import GRUB_CONFIG, loaders
from harness.transitions.catalogue import S4_NEEDS


def _argv(tmp_path: Path, kind: str, esp: Path | None) -> list[str]:
    config = QemuConfig(
        binary="qemu-system-x86_64",
        kernel=None if esp else tmp_path / "vmlinuz",
        initrd=None,
        append="root=/dev/vda",
        machine="q35",
        firmware=Firmware(kind, ovmf_code=tmp_path / "code.fd", ovmf_vars=tmp_path / "vars.fd"),
        esp=esp,
    )
    paths = RunPaths(*(tmp_path / name for name in ("q", "a", "c", "r", "s", "d")))
    return build_argv(config, paths, 2222)


def test_secure_boot_runs_smm_the_secure_pflash_and_boots_the_esp(tmp_path: Path) -> None:
    argv = _argv(tmp_path, SECURE_UEFI, tmp_path / "esp.raw")
    assert argv[argv.index("-machine") + 1] == "q35,smm=on"
    assert "driver=cfi.pflash01,property=secure,value=on" in argv
    assert "ide-hd,drive=esp,bus=ide.0,bootindex=0" in argv
    assert "-kernel" not in argv


def test_plain_ovmf_keeps_direct_kernel_boot_without_smm(tmp_path: Path) -> None:
    argv = _argv(tmp_path, "ovmf", None)
    assert argv[argv.index("-machine") + 1] == "q35"
    assert not any("secure" in a or "esp" in a for a in argv)
    assert "-kernel" in argv


def test_grub_boots_the_kernel_with_the_image_s_command_line() -> None:
    text = GRUB_CONFIG.format(cmdline="root=/dev/vda rw resume=/dev/vdb")
    assert "linux /vmlinuz root=/dev/vda rw resume=/dev/vdb" in text
    assert "initrd /initrd.img" in text


class Archive:
    """Offers each loader in bookworm and, newer, in bookworm-backports."""

    def offers(self, package: str) -> list[tuple[str, str]]:
        return [("2.0~bpo12", "bookworm-backports"), ("1.0", "bookworm"), ("3.0", "trixie")]

    def unpacked(self, name: str) -> None:
        return None

    def unpack(self, wanted: list[tuple[str, str]], name: str) -> tuple[Path, tuple[Package, ...]]:
        return Path(name), tuple(Package(n, v, "") for n, v in wanted)


def test_the_loaders_are_the_release_s_own_never_its_backports() -> None:
    _, packages = loaders("", Archive())  # type: ignore[arg-type]
    assert {p.version for p in packages} == {"1.0"}
    _, packages = loaders("trixie", Archive())  # type: ignore[arg-type]
    assert {p.version for p in packages} == {"3.0"}


def test_s4_under_lockdown_is_unsupported_in_the_kernel_s_words() -> None:
    said = "Lockdown: swapper/0: hibernation is restricted; see man kernel_lockdown.7"
    facts = {
        "guest.power_state": "freeze mem",
        "guest.acpi_states": "S0 S3 S4 S5",
        "guest.lockdown_said": said,
    }
    reason = S4_NEEDS.unmet(facts)
    assert reason is not None and reason.endswith(f"the kernel said: {said}"), reason
    assert "no disk" in reason
