"""Cloud images: only a standalone qcow2 is taken, its digest never trusted from plain http;
the seed a cloud-init NoCloud datasource reads, and the firmware boot."""

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar

import pycdlib
import pytest
from ruamel.yaml import YAML

from harness.errors import SetupError
from harness.machines.config import QemuConfig
from harness.machines.qemu.cmdline import RunPaths, build_argv
from harness.setup.cloud import (
    RESUME_ARGS_FILE,
    RESUME_SCRIPT,
    RESUME_STATUS_COMMAND,
    SET_RESUME_SH,
    SWAPFILE_SCRIPT,
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


def seed_user_data(tmp_path: Path) -> dict[str, Any]:
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
    user: dict[str, Any] = YAML(typ="safe").load(user_text)
    return user


def test_seed_is_a_cidata_volume_with_the_key_swapfile_and_agent(tmp_path: Path) -> None:
    user = seed_user_data(tmp_path)
    assert user["ssh_authorized_keys"] == ["ssh-ed25519 AAAAkey s3s4"]
    assert user["disable_root"] is False
    # The swapfile first; it hands its resume arguments to the boot loader's script.
    assert user["runcmd"][0] == [SWAPFILE_SCRIPT, RESUME_SCRIPT]
    assert "systemctl enable --now qemu-guest-agent" in user["runcmd"][-1]  # unless it runs
    assert "rsa" not in user["ssh_genkeytypes"]  # seconds of keygen under TCG
    assert [(f["path"], f["permissions"]) for f in user["write_files"]] == [
        (SWAPFILE_SCRIPT, "0755"),
        (RESUME_SCRIPT, "0755"),
    ]
    assert all(f["content"].startswith("#!/bin/sh\n") for f in user["write_files"])


# Tools the seed's scripts use that are safe to run for real on a test's root.
REAL_TOOLS = ("awk", "sed", "head", "grep", "mkdir", "chmod", "stat", "cat", "cp", "cmp", "uname")
FILEFRAG_EXT4 = """Filesystem type is: ef53
File size of /swapfile is 1073741824 (262144 blocks of 4096 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..   32767:      34816..     67583:  32768:             unwritten
   1:    32768..   65535:      98304..    131071:  32768:      67584: unwritten,eof
"""


def stub(folder: Path, tool: str, body: str = "") -> None:
    """A stand-in for ``tool`` that appends its arguments to ``<tool>.args`` beside
    ``folder``, then runs ``body``."""
    path = folder / tool
    path.write_text(f'#!/bin/sh\necho "$@" >> {folder.parent}/{tool}.args\n{body}\n')
    path.chmod(0o755)


def guest_tools(tmp_path: Path, fs: str, uuid: str, *distribution_tools: str) -> Path:
    """A PATH of stand-ins for a guest whose root is ``fs`` (UUID ``uuid``), 4 GiB free, no
    swap active, and the real tools that only touch files."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for real in REAL_TOOLS:
        found = shutil.which(real)
        assert found, real
        (tools / real).symlink_to(found)
    stub(tools, "findmnt", f'case "$*" in *FSTYPE*) echo {fs};; *UUID*) echo {uuid};; esac')
    stub(tools, "getconf", "echo 4096")
    stub(tools, "df", "echo 'Filesystem 1M-blocks Used Available Use% Mounted'; "
                      "echo '/dev/vda1 8000 4000 4000 50% /'")  # fmt: skip
    stub(tools, "swapon")
    stub(tools, "lsblk")
    for tool in distribution_tools:
        stub(tools, tool)
    return tools


def run_seed_scripts(tmp_path: Path, tools: Path, cmdline: str) -> Path:
    """The seed's runcmd swapfile line, its scripts as the seed writes them, on a root under
    tmp_path (1 GiB of RAM) with ``tools`` as PATH; the root."""
    user = seed_user_data(tmp_path)
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "cmdline").write_text(cmdline + "\n")
    (root / "proc" / "meminfo").write_text("MemTotal:        1048576 kB\n")
    (root / "etc").mkdir(exist_ok=True)
    installed = {}
    for written in user["write_files"]:
        path = tmp_path / "sbin" / Path(written["path"]).name
        path.parent.mkdir(exist_ok=True)
        path.write_text(written["content"])
        path.chmod(0o755)
        installed[written["path"]] = str(path)
    argv = [installed.get(arg, arg) for arg in user["runcmd"][0]]
    env = {"PATH": str(tools), "S3S4_ROOT": str(root)}
    subprocess.run(["/bin/sh", *argv], env=env, check=True, timeout=30)
    return root


def args_of(tmp_path: Path, tool: str) -> list[str]:
    return (tmp_path / f"{tool}.args").read_text().splitlines()


def test_the_seed_prepares_a_btrfs_swapfile_dracut_and_grubby_on_fedora(tmp_path: Path) -> None:
    tools = guest_tools(tmp_path, "btrfs", "f00d-b7f5", "grubby", "dracut")
    stub(tools, "lsinitrd", "printf 'base\\nsystemd\\nbtrfs\\n'")  # a cloud build: no resume
    stub(tools, "chcon")
    (tmp_path / "root/sys/fs/selinux").mkdir(parents=True)
    (tmp_path / "root/sys/fs/selinux/enforce").write_text("1\n")  # SELinux on, as on Fedora
    stub(
        tools,
        "btrfs",
        'case "$1 $2" in "subvolume create") mkdir "$3";; "filesystem mkswapfile") : > "$5";; '
        '"inspect-internal map-swapfile") echo 198656;; esac',
    )
    root = run_seed_scripts(tmp_path, tools, "BOOT_IMAGE=(hd0,gpt3)/vmlinuz root=UUID=f00d-b7f5")
    assert args_of(tmp_path, "btrfs") == [
        f"subvolume create {root}/swap",
        f"filesystem mkswapfile --size 1024m {root}/swap/swapfile",
        f"inspect-internal map-swapfile -r {root}/swap/swapfile",
    ]
    assert args_of(tmp_path, "chcon") == [f"-t swapfile_t {root}/swap/swapfile"]
    assert f"{root}/swap/swapfile" in args_of(tmp_path, "swapon")
    assert (root / "etc/fstab").read_text() == "/swap/swapfile none swap sw,nofail 0 0\n"
    assert args_of(tmp_path, "dracut") == ["-f --regenerate-all"]
    assert "resume" in (root / "etc/dracut.conf.d/90-s3s4-resume.conf").read_text()
    assert args_of(tmp_path, "grubby") == [
        "--update-kernel=ALL --args=resume=UUID=f00d-b7f5 resume_offset=198656"
    ]
    state = root / "var/lib/s3s4"
    assert (state / "resume-method").read_text() == "grubby\n"
    assert (state / "swapfile").read_text() == (
        "path=/swap/swapfile fs=btrfs size_mib=1024 resume_offset=198656 initramfs=dracut\n"
    )


def test_the_seed_prepares_an_ext4_swapfile_initramfs_tools_and_grub_on_debian(
    tmp_path: Path,
) -> None:
    tools = guest_tools(tmp_path, "ext4", "e4e4-0001", "mkswap", "update-initramfs", "update-grub")
    stub(tools, "fallocate", ': > "$3"')
    stub(tools, "filefrag", f"cat <<'EOF'\n{FILEFRAG_EXT4}EOF")
    (tmp_path / "root/etc/default/grub.d").mkdir(parents=True)
    root = run_seed_scripts(tmp_path, tools, "BOOT_IMAGE=/vmlinuz root=LABEL=cloudimg-rootfs")
    assert args_of(tmp_path, "fallocate") == [f"-l 1024MiB {root}/swapfile"]
    assert args_of(tmp_path, "mkswap") == [f"-L s3s4-swap {root}/swapfile"]
    assert oct((root / "swapfile").stat().st_mode & 0o777) == "0o600"
    assert (root / "etc/fstab").read_text() == "/swapfile none swap sw,nofail 0 0\n"
    # filefrag's first physical block, in 4 KiB blocks: 4 KiB pages.
    assert (root / "etc/initramfs-tools/conf.d/zz-s3s4-resume").read_text() == (
        "RESUME=UUID=e4e4-0001\n"
    )
    assert args_of(tmp_path, "update-initramfs") == ["-u"]
    assert (tmp_path / "update-grub.args").exists()
    sourced = subprocess.run(
        ["sh", "-c", f'GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"; . {root}/etc/default/grub.d/'
         '99-s3s4-resume.cfg; echo "$GRUB_CMDLINE_LINUX_DEFAULT"'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert sourced.stdout.strip() == "console=ttyS0 resume=UUID=e4e4-0001 resume_offset=34816"
    state = root / "var/lib/s3s4"
    assert (state / "resume-method").read_text() == "update-grub\n"
    assert (state / "resume-args").read_text() == "resume=UUID=e4e4-0001 resume_offset=34816\n"


def test_an_initramfs_that_can_resume_is_kept(tmp_path: Path) -> None:
    tools = guest_tools(tmp_path, "ext4", "e4e4-0001", "mkswap", "update-initramfs", "update-grub")
    stub(tools, "fallocate", ': > "$3"')
    stub(tools, "filefrag", f"cat <<'EOF'\n{FILEFRAG_EXT4}EOF")
    stub(tools, "lsinitramfs", "echo usr/lib/modules; echo scripts/local-premount/resume")
    (tmp_path / "root/etc/default/grub.d").mkdir(parents=True)
    root = run_seed_scripts(tmp_path, tools, "BOOT_IMAGE=/vmlinuz root=LABEL=cloudimg-rootfs")
    assert not (tmp_path / "update-initramfs.args").exists()
    assert (root / "etc/initramfs-tools/conf.d/zz-s3s4-resume").exists()  # for later builds
    assert (
        (root / "var/lib/s3s4/swapfile")
        .read_text()
        .endswith("resume_offset=34816 initramfs=kept:initramfs-tools\n")
    )


def test_a_swapfile_on_another_file_system_is_named(tmp_path: Path) -> None:
    tools = guest_tools(tmp_path, "f2fs", "x")
    with pytest.raises(subprocess.CalledProcessError):
        run_seed_scripts(tmp_path, tools, "root=/dev/vda1")
    method = (tmp_path / "root/var/lib/s3s4/resume-method").read_text().strip()
    assert method == "none: swapfile: a swapfile on f2fs is not prepared (btrfs, ext4 or xfs)"
    assert not ResumeStatus.parse(f"off\n{method}\n").needs_reboot  # named, not rebooted for


def resume_status(tmp_path: Path, cmdline: str, args: str | None) -> str:
    """RESUME_STATUS_COMMAND's first line, on a guest's command line and resume-args file."""
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    command = RESUME_STATUS_COMMAND.replace("/proc/cmdline", str(tmp_path / "cmdline"))
    command = command.replace(RESUME_ARGS_FILE, str(tmp_path / "resume-args"))
    (tmp_path / "resume-args").unlink(missing_ok=True)
    if args is not None:
        (tmp_path / "resume-args").write_text(args + "\n")
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10)
    return result.stdout.splitlines()[0]


def test_resume_status_wants_every_argument_the_seed_set(tmp_path: Path) -> None:
    args = "resume=UUID=e4 resume_offset=34816"
    assert resume_status(tmp_path, "root=x resume=UUID=e4 resume_offset=34816 ro", args) == "on"
    assert resume_status(tmp_path, "root=x resume=UUID=e4 resume_offset=348", args) == "off"
    assert resume_status(tmp_path, "root=x resume=UUID=e4", args) == "off"
    assert resume_status(tmp_path, "root=x resume=/dev/vdb", None) == "on"  # no file: resume=
    assert resume_status(tmp_path, "root=x", None) == "off"


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
    subprocess.run(
        ["sh", str(script), "resume=UUID=abc", "resume_offset=7"], env=env, check=True, timeout=30
    )
    return (root / "var/lib/s3s4/resume-method").read_text().strip(), root


def test_set_resume_leaves_a_command_line_that_has_it(tmp_path: Path) -> None:
    cmdline = "root=/dev/vda1 resume=UUID=abc resume_offset=7 quiet"
    method, _ = set_resume(tmp_path, cmdline, "grubby")
    assert method == "cmdline" and not (tmp_path / "grubby.args").exists()


def test_set_resume_replaces_a_resume_without_its_offset(tmp_path: Path) -> None:
    method, _ = set_resume(tmp_path, "root=/dev/vda1 resume=UUID=abc quiet", "grubby")
    assert method == "grubby"


def test_set_resume_through_grubby_on_fedora_and_centos(tmp_path: Path) -> None:
    method, _ = set_resume(tmp_path, "root=UUID=x ro", "grubby")
    assert method == "grubby"
    assert (tmp_path / "grubby.args").read_text().split() == [
        "--update-kernel=ALL",
        "--args=resume=UUID=abc",
        "resume_offset=7",
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
    assert sourced.stdout.strip() == "console=ttyS0 resume=UUID=abc resume_offset=7", drop_in


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
