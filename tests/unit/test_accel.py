from pathlib import Path

import pytest

from harness.setup.accel import detect_accel, resolve_accel


def fake_sys(tmp_path: Path, *modules: str) -> tuple[Path, Path]:
    for name in modules:
        (tmp_path / "module" / name).mkdir(parents=True)
    (tmp_path / "module").mkdir(exist_ok=True)
    kvm = tmp_path / "kvm"
    kvm.touch()
    return tmp_path / "module", kvm


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        (("kvm", "kvm_intel"), "kvm"),
        (("kvm", "kvm_amd"), "kvm"),
        (("kvm", "kvm_pvm"), "tcg"),  # a software nested hypervisor also provides /dev/kvm
        ((), "tcg"),
    ],
)
def test_only_hardware_kvm_counts(tmp_path: Path, modules: tuple[str, ...], expected: str) -> None:
    sys_module, dev_kvm = fake_sys(tmp_path, *modules)
    assert detect_accel(sys_module, dev_kvm) == expected


def test_hardware_module_without_dev_kvm_is_tcg(tmp_path: Path) -> None:
    sys_module, dev_kvm = fake_sys(tmp_path, "kvm_intel")
    dev_kvm.unlink()
    assert detect_accel(sys_module, dev_kvm) == "tcg"


def test_override_and_unknown() -> None:
    assert resolve_accel("tcg") == "tcg"
    with pytest.raises(ValueError, match="unknown accelerator"):
        resolve_accel("hvf")
