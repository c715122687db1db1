from pathlib import Path

import pytest

from harness.machines.config import Firmware, QemuConfig
from harness.machines.qemu.cmdline import RunPaths, build_argv

PATHS = RunPaths(
    Path("/r/qmp.sock"),
    Path("/r/qga.sock"),
    Path("/r/console.sock"),
    Path("/r/root.qcow2"),
    Path("/r/swap.raw"),
    Path("/r/data.raw"),
)


def config(**kw: object) -> QemuConfig:
    base = dict(
        binary="qemu-system-x86_64",
        kernel=Path("/i/vmlinuz"),
        initrd=Path("/i/initrd.img"),
        append="root=/dev/vda resume=/dev/vdb",
    )
    base.update(kw)
    return QemuConfig(**base)  # type: ignore[arg-type]


def test_argv_has_accel_disks_sockets_and_loopback_only_forward() -> None:
    argv = build_argv(config(accel="tcg"), PATHS, 40022)
    joined = " ".join(argv)
    assert argv[:3] == ["qemu-system-x86_64", "-accel", "tcg"]
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in joined
    assert "file=/r/root.qcow2,if=none,id=root,format=qcow2" in joined
    assert "file=/r/swap.raw,if=none,id=swap,format=raw" in joined
    assert "socket,id=qmp0,path=/r/qmp.sock" in joined
    assert "name=org.qemu.guest_agent.0" in joined
    assert "socket,id=serial0,path=/r/console.sock" in joined
    assert "virtio-net-pci,netdev=net0,id=nic0,romfile=" in argv  # no iPXE ROM to set up


def test_relaunch_argv_is_identical() -> None:
    assert build_argv(config(), PATHS, 1) == build_argv(config(), PATHS, 1)


def test_ovmf_uses_readonly_code_and_a_vars_copy() -> None:
    fw = Firmware("ovmf", ovmf_code=Path("/fw/CODE.fd"), ovmf_vars=Path("/r/VARS.fd"))
    joined = " ".join(build_argv(config(firmware=fw, machine="q35"), PATHS, 1))
    assert "unit=0,readonly=on,file=/fw/CODE.fd" in joined
    assert "unit=1,file=/r/VARS.fd" in joined


def test_extra_args_come_last_and_unknown_firmware_is_refused() -> None:
    argv = build_argv(config(extra_args=("-global", "PIIX4_PM.disable_s3=1")), PATHS, 1)
    assert argv[-2:] == ["-global", "PIIX4_PM.disable_s3=1"]
    with pytest.raises(ValueError, match="unknown firmware"):
        build_argv(config(firmware=Firmware("coreboot")), PATHS, 1)


def test_qemu_is_sandboxed_and_its_guest_reaches_only_the_ssh_forward() -> None:
    argv = build_argv(config(), PATHS, 40022)
    sandbox = argv[argv.index("-sandbox") + 1]
    assert sandbox.split(",") == [
        "on",
        "obsolete=deny",
        "elevateprivileges=deny",
        "spawn=deny",  # no exec: migration, no helper programs
        "resourcecontrol=deny",
    ]
    assert "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22" in argv


def test_a_comma_in_a_path_cannot_add_an_option() -> None:
    odd = RunPaths(
        Path("/r,x/qmp.sock"),
        Path("/r,x/qga.sock"),
        Path("/r,x/console.sock"),
        Path("/r,x/root.qcow2,backing.file=/etc/shadow"),
        Path("/r,x/swap.raw"),
        Path("/r,x/data.raw"),
    )
    joined = " ".join(build_argv(config(), odd, 1))
    assert "file=/r,,x/root.qcow2,,backing.file=/etc/shadow,if=none,id=root," in joined
    assert "socket,id=qmp0,path=/r,,x/qmp.sock" in joined
    assert "filename=/r,,x/data.raw," in joined
    assert ",x/" not in joined.replace(",,x/", "")
