"""Cloud images: only a standalone qcow2 is taken, its digest never trusted from plain http;
the seed a cloud-init NoCloud datasource reads, and the firmware boot."""

import functools
import os
import subprocess
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from io import BytesIO
from pathlib import Path
from typing import ClassVar

import pycdlib
import pytest
from ruamel.yaml import YAML

from harness.errors import SetupError
from harness.machines.config import QemuConfig
from harness.machines.qemu.cmdline import RunPaths, build_argv
from harness.setup.cloud import (
    RESUME_SCRIPT,
    SET_RESUME_SH,
    ResumeStatus,
    check_standalone_qcow2,
    cloud_image,
    write_seed,
)
from harness.setup.downloads import file_sha256
from tests.unit.local_mirrors import serve

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


def qemu_img(*arguments: str) -> None:
    subprocess.run(["qemu-img", *arguments], check=True, capture_output=True, timeout=60)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A standalone qcow2, an overlay of a harmless backing file, one with its data in an
    external file, a raw image, and a VMDK descriptor whose extent is a FIFO (opening it
    would block: probing the format would hang)."""
    folder = tmp_path / "images"
    folder.mkdir()
    qemu_img("create", "-q", "-f", "qcow2", str(folder / "plain.qcow2"), "1M")
    qemu_img("create", "-q", "-f", "raw", str(folder / "backing.raw"), "1M")
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(folder / "backing.raw"), "-F", "raw",
             str(folder / "overlay.qcow2"))  # fmt: skip
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={folder / 'data.raw'}",
             str(folder / "external-data.qcow2"), "1M")  # fmt: skip
    (folder / "disk.raw").write_bytes(b"\0" * 65536)
    os.mkfifo(folder / "extent")
    (folder / "disk.vmdk").write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\nRW 2048 FLAT "extent" 0\n'
    )
    return folder


def test_a_standalone_qcow2_is_taken(images: Path) -> None:
    check_standalone_qcow2(images / "plain.qcow2")


def test_a_qcow2_with_a_backing_file_is_refused(images: Path) -> None:
    with pytest.raises(SetupError) as caught:
        check_standalone_qcow2(images / "overlay.qcow2")
    assert str(caught.value) == (
        f"{images}/overlay.qcow2 is a qcow2 overlay of {images}/backing.raw, which QEMU would "
        "open as root: refused; use a standalone image (qemu-img convert -O qcow2 it into one "
        "you trust)"
    )


def test_a_qcow2_with_an_external_data_file_is_refused(images: Path) -> None:
    with pytest.raises(SetupError) as caught:
        check_standalone_qcow2(images / "external-data.qcow2")
    assert str(caught.value).startswith(
        f"{images}/external-data.qcow2 keeps its data in the external file {images}/data.raw, "
        "which QEMU would open as root: refused"
    )


@pytest.mark.parametrize("name", ["disk.raw", "disk.vmdk"])
def test_other_formats_are_refused_and_never_probed(images: Path, name: str) -> None:
    with pytest.raises(SetupError, match=rf"^{images}/{name} is not a qcow2 image qemu-img can "
                       r"read \(.*\): use the qcow2 build of the image$"):  # fmt: skip
        check_standalone_qcow2(images / name)


class Mirror(SimpleHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Mirror.hits.append(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(images: Path) -> Iterator[str]:
    """The images over plain http, with a SHA256SUMS beside them."""
    sums = "".join(f"{file_sha256(p)}  {p.name}\n" for p in sorted(images.glob("*.qcow2")))
    (images / "SHA256SUMS").write_text(sums)
    Mirror.hits = []
    with serve(functools.partial(Mirror, directory=str(images))) as url:
        yield url


def test_an_http_image_without_a_digest_given_is_refused(mirror: str, tmp_path: Path) -> None:
    with pytest.raises(SetupError) as caught:
        cloud_image(f"{mirror}/plain.qcow2", cache=tmp_path / "cache")
    assert str(caught.value) == (
        f"{mirror}/SHA256SUMS is an unsigned checksum list over plain http, which proves "
        "nothing: use https (or a local copy), or give the image's digest with --cloud-sha256"
    )
    assert Mirror.hits == []  # neither the list nor the image was read


def test_an_http_image_with_its_digest_given_or_a_local_list(
    mirror: str, images: Path, tmp_path: Path
) -> None:
    sha = file_sha256(images / "plain.qcow2")
    image = cloud_image(f"{mirror}/plain.qcow2", sha, cache=tmp_path / "cache")
    assert image.disk == tmp_path / "cache" / "sha256" / sha / "plain.qcow2"
    assert image.cloud and image.key == sha[:16]
    listed = cloud_image(
        f"{mirror}/plain.qcow2", sums_url=str(images / "SHA256SUMS"), cache=tmp_path / "cache"
    )
    assert listed.disk == image.disk
    assert Mirror.hits == ["/plain.qcow2"]  # once: the second found it cached by its digest


def test_a_downloaded_overlay_is_refused_before_anything_boots_it(
    mirror: str, images: Path, tmp_path: Path
) -> None:
    sha = file_sha256(images / "overlay.qcow2")
    with pytest.raises(SetupError, match=r"overlay\.qcow2 is a qcow2 overlay of .*backing\.raw"):
        cloud_image(f"{mirror}/overlay.qcow2", sha, cache=tmp_path / "cache")
