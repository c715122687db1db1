"""Cloud images: the seed a cloud-init NoCloud datasource reads, and the firmware boot."""

from io import BytesIO
from pathlib import Path

import pycdlib
from ruamel.yaml import YAML

from harness.cloud import write_seed
from harness.qemu.cmdline import QemuConfig, RunPaths, build_argv

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
    assert user["runcmd"][-1] == ["systemctl", "enable", "--now", "qemu-guest-agent"]


def test_a_cloud_guest_boots_from_its_disk_with_the_seed_attached() -> None:
    config = QemuConfig("qemu", kernel=None, initrd=None, append="", seed=Path("/r/seed.iso"))
    argv = build_argv(config, PATHS, 2222)
    assert "-kernel" not in argv and "-append" not in argv
    assert "file=/r/seed.iso,if=none,id=seed,format=raw,readonly=on" in argv
    assert argv.index("virtio-blk-pci,drive=seed,id=seed-disk") > argv.index(
        "virtio-blk-pci,drive=data,id=data-disk"
    )  # after the scratch disk: /dev/vdd, swap stays /dev/vdb
