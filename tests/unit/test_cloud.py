"""Cloud images: the seed a cloud-init NoCloud datasource reads, and the firmware boot."""

import subprocess
from io import BytesIO
from pathlib import Path

import pycdlib
from ruamel.yaml import YAML

from harness.machines.config import QemuConfig
from harness.machines.qemu.cmdline import RunPaths, build_argv
from harness.setup.cloud import RESUME_SCRIPT, SET_RESUME_SH, ResumeStatus, write_seed

PATHS = RunPaths(*(Path(f"/r/{n}") for n in ("q.sock", "a.sock", "c.sock", "o", "s", "d")))


def read(iso: pycdlib.PyCdlib, name: str) -> str:
    out = BytesIO()
    iso.get_file_from_iso_fp(out, joliet_path=name)
    return out.getvalue().decode()


def test_seed_is_a_cidata_volume_with_the_key_swap_and_agent(tmp_path: Path) -> None:
    seed = write_seed(tmp_path / "seed.iso", "s3s4-42", "ssh-ed25519 AAAAkey s3s4")
    iso = pycdlib.PyCdlib()
    iso.open(str(seed))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        meta = YAML(typ="safe").load(read(iso, "/meta-data"))
        user_text = read(iso, "/user-data")
    finally:
        iso.close()
    assert meta["instance-id"] == "s3s4-42"
    assert user_text.startswith("#cloud-config\n")
    user = YAML(typ="safe").load(user_text)
    assert user["ssh_authorized_keys"] == ["ssh-ed25519 AAAAkey s3s4"]
    assert user["disable_root"] is False
    assert "mkswap -L s3s4-swap /dev/vdb" in user["runcmd"][0]
    assert user["runcmd"][1] == [RESUME_SCRIPT, "/dev/vdb"]  # after the swap exists
    assert "systemctl enable --now qemu-guest-agent" in user["runcmd"][-1]  # unless it runs
    assert "rsa" not in user["ssh_genkeytypes"]  # seconds of keygen under TCG
    (script,) = user["write_files"]
    assert script["path"] == RESUME_SCRIPT and script["permissions"] == "0755"
    assert script["content"].startswith("#!/bin/sh\n")


def set_resume(tmp_path: Path, cmdline: str, *tools: str) -> tuple[str, Path]:
    """Run set_resume.sh against a root under tmp_path with stub boot-loader ``tools``
    that record their arguments; the method it reports, and the root."""
    root, stubs = tmp_path / "root", tmp_path / "stubs"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "cmdline").write_text(cmdline + "\n")
    stubs.mkdir()
    for tool in tools:
        stub = stubs / tool
        stub.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/{tool}.args\n')
        stub.chmod(0o755)
    script = SET_RESUME_SH
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "S3S4_ROOT": str(root)}
    subprocess.run(["sh", str(script), "/dev/vdb"], env=env, check=True, timeout=30)
    return (root / "var/lib/s3s4/resume-method").read_text().strip(), root


def test_set_resume_leaves_a_command_line_that_has_it(tmp_path: Path) -> None:
    method, _ = set_resume(tmp_path, "root=/dev/vda1 resume=UUID=abc quiet", "grubby")
    assert method == "cmdline" and not (tmp_path / "grubby.args").exists()


def test_set_resume_through_grubby_on_fedora_and_centos(tmp_path: Path) -> None:
    method, _ = set_resume(tmp_path, "root=UUID=x ro", "grubby")
    assert method == "grubby"
    assert (tmp_path / "grubby.args").read_text().split() == [
        "--update-kernel=ALL",
        "--args=resume=/dev/vdb",
    ]


def test_set_resume_through_a_grub_drop_in_on_debian_and_ubuntu(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/default/grub.d").mkdir(parents=True)
    method, root = set_resume(
        tmp_path, "BOOT_IMAGE=/vmlinuz root=LABEL=cloudimg-rootfs", "update-grub"
    )
    assert method == "update-grub" and (tmp_path / "update-grub.args").exists()
    drop_in = (root / "etc/default/grub.d/99-s3s4-resume.cfg").read_text()
    sourced = subprocess.run(
        ["sh", "-c", f'GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"; . {root}/etc/default/grub.d/'
         '99-s3s4-resume.cfg; echo "$GRUB_CMDLINE_LINUX_DEFAULT"'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert sourced.stdout.strip() == "console=ttyS0 resume=/dev/vdb", drop_in


def test_set_resume_names_what_it_could_not_find(tmp_path: Path) -> None:
    method, _ = set_resume(tmp_path, "root=/dev/vda1")
    status = ResumeStatus.parse(f"off\n{method}\n")
    assert method.startswith("none: no grubby, update-grub")
    assert not status.on_cmdline and not status.needs_reboot


def test_resume_status_asks_for_a_reboot_only_after_a_boot_loader_change() -> None:
    assert ResumeStatus.parse("off\nsystemd-boot\n").needs_reboot
    assert not ResumeStatus.parse("on\ncmdline\n").needs_reboot
    assert not ResumeStatus.parse("off\n").needs_reboot  # the script never reported


def test_a_cloud_guest_boots_from_its_disk_with_the_seed_attached() -> None:
    config = QemuConfig("qemu", kernel=None, initrd=None, append="", seed=Path("/r/seed.iso"))
    argv = build_argv(config, PATHS, 2222)
    assert "-kernel" not in argv and "-append" not in argv
    assert "file=/r/seed.iso,if=none,id=seed,format=raw,readonly=on" in argv
    assert argv.index("virtio-blk-pci,drive=seed,id=seed-disk") > argv.index(
        "virtio-blk-pci,drive=data,id=data-disk"
    )  # after the scratch disk: /dev/vdd, swap stays /dev/vdb
