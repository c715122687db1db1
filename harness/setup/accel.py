"""Choose the accelerator: real KVM only when a hardware KVM module is loaded."""

from __future__ import annotations

from pathlib import Path

HARDWARE_KVM_MODULES = ("kvm_intel", "kvm_amd")
ACCELS = ("auto", "kvm", "tcg")


def detect_accel(sys_module: Path = Path("/sys/module"), dev_kvm: Path = Path("/dev/kvm")) -> str:
    """``kvm`` with kvm_intel/kvm_amd and /dev/kvm; otherwise ``tcg``.

    /dev/kvm alone is not enough: a software nested hypervisor (kvm_pvm) also provides it,
    and stock kernels barely boot under it.
    """
    hardware = any((sys_module / name).is_dir() for name in HARDWARE_KVM_MODULES)
    return "kvm" if hardware and dev_kvm.exists() else "tcg"


def resolve_accel(requested: str) -> str:
    if requested not in ACCELS:
        raise ValueError(f"unknown accelerator {requested!r}: use one of {', '.join(ACCELS)}")
    return detect_accel() if requested == "auto" else requested
