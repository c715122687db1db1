"""The plugin's command-line options (pytest group "s3s4"), and the Settings they make."""

from __future__ import annotations

import argparse
import os

import pytest

from harness.errors import SetupError
from harness.machines.devices import DEFAULT_DISK, DEFAULT_NIC, DISKS, DISPLAYS, NICS, SHARES
from harness.session import BACKENDS, DEFAULT_LIBVIRT_URI, Settings
from harness.setup import default_guest
from harness.setup.accel import ACCELS
from harness.setup.guest_profiles import profile_named
from harness.setup.libvirt_modular import DAEMONS, LIBVIRTD, check_with_stack
from harness.setup.libvirt_stack import HOST as HOST_STACK

FIRMWARE_KINDS = ("seabios", "ovmf", "ovmf-secure")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("s3s4", "guest suspend (S3) and hibernate (S4) harness")
    group.addoption(
        "--accel",
        choices=ACCELS,
        default=os.environ.get("S3S4_ACCEL", "auto"),
        help="kvm, tcg, or auto: kvm only with kvm_intel/kvm_amd (default: auto)",
    )
    group.addoption(
        "--backend",
        choices=BACKENDS,
        default=os.environ.get("S3S4_BACKEND", "qemu"),
        help="how guests are run: qemu (direct) or libvirt (default: qemu; the libvirt-only "
        "cases always use libvirt)",
    )
    group.addoption(
        "--libvirt-uri",
        default=os.environ.get("S3S4_LIBVIRT_URI", DEFAULT_LIBVIRT_URI),
        help="libvirt connection; where qemu:///system does not answer and the harness runs "
        f"as root, it starts its own libvirtd (default: {DEFAULT_LIBVIRT_URI})",
    )
    group.addoption(
        "--libvirt-stack",
        default=os.environ.get("S3S4_LIBVIRT_STACK", HOST_STACK),
        metavar="host|SUITE",
        help="whose libvirt and QEMU run the guests: the host's, or a Debian suite's (sid, "
        "trixie-backports ...: its libvirtd, virtlogd, QEMU, SeaBIOS and OVMF, built once "
        "into the cache and run as the harness's own daemon, as root; implies --backend "
        f"libvirt) (default: {HOST_STACK})",
    )
    group.addoption(
        "--libvirt-daemon",
        type=lambda value: choice_option("--libvirt-daemon", value, DAEMONS),
        metavar="|".join(DAEMONS),
        default=os.environ.get("S3S4_LIBVIRT_DAEMON", LIBVIRTD),
        help="the libvirt daemon that runs the guests: the monolithic libvirtd, or the modular "
        "virtqemud with its virtlogd (the host's, else built once from the host's libvirt "
        "source into the cache); virtqemud always runs as the harness's own daemon, as root; "
        f"implies --backend libvirt (default: {LIBVIRTD})",
    )
    group.addoption(
        "--newer-stack",
        default=os.environ.get("S3S4_NEWER_STACK"),
        metavar="SUITE",
        help="the cross-version cases (testcases/test_cross_version.py): a guest saved by "
        "this run's libvirt and QEMU is restored by this Debian suite's libvirt stack (sid, "
        "trixie-backports ...; built once into the cache, run as the harness's own daemon, "
        "as root); without it those cases are skipped",
    )
    group.addoption(
        "--newer-qemu",
        default=os.environ.get("S3S4_NEWER_QEMU"),
        metavar="VERSION|PATH",
        help="the cross-version migration cases: a guest in S3 migrated from this run's QEMU "
        "to this one (a Debian version such as 11.1, or a path) and back; without it those "
        "cases are skipped",
    )
    group.addoption(
        "--qemu",
        default=os.environ.get("S3S4_QEMU", "qemu-system-x86_64"),
        metavar="VERSION|PATH",
        help="QEMU to test: a Debian version (e.g. 10.0: fetched from Debian's archive into "
        "the cache and run from there, the host's packages untouched), a path to a build, "
        "or a command on PATH (default: qemu-system-x86_64)",
    )
    group.addoption(
        "--seabios",
        default=os.environ.get("S3S4_SEABIOS"),
        metavar="VERSION|PATH",
        help="SeaBIOS: a Debian version of package seabios (e.g. 1.16.3) or a bios.bin "
        "(default: QEMU's own)",
    )
    group.addoption(
        "--ovmf",
        default=os.environ.get("S3S4_OVMF"),
        metavar="VERSION|DIR",
        help="OVMF (with --firmware ovmf): a Debian version of package ovmf (e.g. 2025.02) or "
        "a folder holding OVMF_CODE_4M.fd and OVMF_VARS_4M.fd (default: the host's)",
    )
    group.addoption(
        "--machine-type",
        choices=("pc", "q35"),
        default="pc",
        help="QEMU machine type (default: pc)",
    )
    group.addoption(
        "--firmware",
        type=firmware_option,
        default="seabios",
        metavar="seabios|ovmf[:VERSION|:PATH]",
        help="guest firmware; ovmf:2026.08 is --firmware ovmf --ovmf 2026.08, and so for "
        "seabios (default: seabios)",
    )
    group.addoption(
        "--offline",
        action="store_true",
        default=os.environ.get("S3S4_OFFLINE") == "1",
        help="provision QEMU and firmware from the cache only: nothing is downloaded, and "
        "what the cache lacks is named in a one-line error",
    )
    group.addoption(
        "--guest-memory",
        type=int,
        default=1024,
        metavar="MiB",
        help="guest RAM in MiB (default: 1024)",
    )
    group.addoption("--guest-cpus", type=int, default=2, help="guest vCPUs (default: 2)")
    group.addoption(
        "--image-recipe",
        default="debian",
        help="guest image recipe under images/ (default: debian)",
    )
    group.addoption(
        "--kernel-package",
        default=None,
        help="Debian package of the guest kernel (default: the recipe's)",
    )
    group.addoption(
        "--guest-suite",
        default=os.environ.get("S3S4_GUEST_SUITE"),
        metavar="SUITE",
        help="Debian suite of the built-in guest: trixie, sid ...; trixie-backports or "
        "experimental: trixie or sid with that suite's kernel (default: the recipe's, bookworm)",
    )
    group.addoption(
        "--guest-profile",
        type=guest_profile_option,
        default=os.environ.get("S3S4_GUEST_PROFILE"),
        metavar="PROFILE",
        help="swap and resume layout of the built-in guest, built into an image of its own: "
        "partition (swap disk /dev/vdb, resume=/dev/vdb) or swapfile-ext4 (a swapfile on the "
        "ext4 root, resume_offset from filefrag); see docs/guest-profiles.md "
        "(default: partition)",
    )
    group.addoption(
        "--nic",
        type=lambda value: choice_option("--nic", value, NICS),
        metavar="|".join(NICS),
        default=os.environ.get("S3S4_NIC", DEFAULT_NIC),
        help="the guest's NIC model; e1000e boots the devices guest profile's image, which "
        "keeps its driver; see docs/devices.md (default: virtio-net)",
    )
    group.addoption(
        "--disk",
        type=lambda value: choice_option("--disk", value, DISKS),
        metavar="|".join(DISKS),
        default=os.environ.get("S3S4_DISK", DEFAULT_DISK),
        help="the controller of the guest's data disk, the one the block checks write through "
        "a sleep (root and swap stay on virtio-blk); virtio-scsi and ahci boot the devices "
        "guest profile's image (default: virtio-blk)",
    )
    group.addoption(
        "--usb",
        action="store_true",
        default=os.environ.get("S3S4_USB") == "1",
        help="give the guest a qemu-xhci controller with a usb-tablet and a usb-kbd, checked "
        "across each sleep (enumerated, bound, an input event reaching the guest); boots the "
        "devices guest profile's image; see docs/devices.md",
    )
    group.addoption(
        "--display",
        type=lambda value: choice_option("--display", value, DISPLAYS),
        metavar="|".join(DISPLAYS),
        default=os.environ.get("S3S4_DISPLAY") or None,
        help="the guest's display adapter, checked across each sleep (the screen shows what the "
        "guest draws); boots the devices guest profile's image (default: the machine's std "
        "VGA, unchecked)",
    )
    group.addoption(
        "--balloon",
        action="store_true",
        default=os.environ.get("S3S4_BALLOON") == "1",
        help="give the guest a virtio-balloon-pci whose statistics must keep updating after "
        "each wake",
    )
    group.addoption(
        "--tpm",
        action="store_true",
        default=os.environ.get("S3S4_TPM") == "1",
        help="give the guest a TPM 2.0 (tpm-crb) on an swtpm of its own, checked across each "
        "sleep (PCRs kept across S3, the TPM answering after S4); see docs/devices.md",
    )
    group.addoption(
        "--share",
        type=lambda value: choice_option("--share", value, SHARES),
        metavar="|".join(SHARES),
        default=os.environ.get("S3S4_SHARE") or None,
        help="share a host folder into the guest (virtiofs through virtiofsd, or 9p), checked "
        "across each sleep (a file written before read back, a new one written); virtiofs "
        "guests cold boot every case (default: none)",
    )
    group.addoption(
        "--kernel",
        default=os.environ.get("S3S4_KERNEL"),
        metavar="BZIMAGE",
        help="boot this kernel (arch/x86/boot/bzImage) on the image instead of its own; it "
        "needs virtio (pci, blk, net, console) and ext4 built in, or an --initrd that loads them",
    )
    group.addoption(
        "--initrd",
        default=os.environ.get("S3S4_INITRD"),
        metavar="PATH",
        help="with --kernel: its initrd (default: none)",
    )
    group.addoption(
        "--cloud-image",
        default=os.environ.get("S3S4_CLOUD_IMAGE"),
        metavar="URL|PATH|NAME:VERSION",
        help="boot this cloud image (qcow2, UEFI: with --firmware ovmf --machine-type q35) "
        "instead of the recipe's, configured by a cloud-init NoCloud seed; downloaded into "
        "the cache and verified by its checksum; NAME:VERSION is fedora:41, ubuntu:24.04, "
        "centos-stream:9 or debian:12, found upstream or under --cloud-mirror",
    )
    group.addoption(
        "--cloud-mirror",
        default=os.environ.get("S3S4_CLOUD_MIRROR"),
        metavar="URL",
        help="with --cloud-image NAME:VERSION: a mirror keeping the upstream paths",
    )
    group.addoption(
        "--cloud-sha256",
        default=os.environ.get("S3S4_CLOUD_SHA256"),
        metavar="HEX",
        help="the cloud image's sha256 (default: from --cloud-sums)",
    )
    group.addoption(
        "--cloud-sums",
        default=os.environ.get("S3S4_CLOUD_SUMS"),
        metavar="URL|PATH",
        help="checksum list naming the cloud image (default: SHA256SUMS beside it)",
    )
    group.addoption(
        "--cold-boot",
        action="store_true",
        default=os.environ.get("S3S4_COLD_BOOT") == "1",
        help="cold boot every case's guest instead of restoring the ready checkpoint "
        "(a booted guest frozen once per run)",
    )
    group.addoption(
        "--timeout-scale",
        type=float,
        default=1.0,
        help="multiply every stage timeout (default: 1.0)",
    )
    group.addoption(
        "--cycles",
        type=int,
        default=None,
        metavar="N",
        help="cycles per case on one boot (default: 1, or the case's cycles marker)",
    )
    group.addoption(
        "--pm-test-on-failure",
        action="store_true",
        help="after a failure, rerun through /sys/power/pm_test levels and report the "
        "first level that fails",
    )
    group.addoption(
        "--clock-tolerance",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="largest guest wall-clock step after resume that passes (default: 2; after a "
        "power-off at least 3.5, the RTC being read in whole seconds at both ends)",
    )
    group.addoption(
        "--clock-resync",
        action="store_true",
        help="set the guest clock from the host through the agent after resume, as "
        "libvirt-guests' SYNC_TIME does",
    )
    group.addoption(
        "--report-dir",
        default="reports",
        help="where reports/<run-id>/ is written (default: reports)",
    )


def settings_from(config: pytest.Config) -> Settings:
    """The session's Settings from the options given."""
    stack = config.getoption("libvirt_stack")
    daemon = config.getoption("libvirt_daemon")
    check_with_stack(daemon, stack, HOST_STACK)
    own_daemon = stack != HOST_STACK or daemon != LIBVIRTD
    firmware, _, version = config.getoption("firmware").partition(":")
    given = {firmware: version} if version else {}  # the colon form wins over --seabios/--ovmf
    return Settings(
        accel=config.getoption("accel"),
        qemu=config.getoption("qemu"),
        seabios=given.get("seabios") or config.getoption("seabios"),
        ovmf=given.get("ovmf") or config.getoption("ovmf"),
        machine_type=config.getoption("machine_type"),
        firmware=firmware,
        memory_mib=config.getoption("guest_memory"),
        cpus=config.getoption("guest_cpus"),
        recipe=config.getoption("image_recipe"),
        kernel_package=config.getoption("kernel_package"),
        guest_suite=config.getoption("guest_suite"),
        guest_profile=config.getoption("guest_profile"),
        nic=config.getoption("nic"),
        disk=config.getoption("disk"),
        usb=config.getoption("usb"),
        display=config.getoption("display") or "",
        balloon=config.getoption("balloon"),
        tpm=config.getoption("tpm"),
        share=config.getoption("share") or "",
        kernel=config.getoption("kernel"),
        initrd=config.getoption("initrd"),
        cloud_image=default_guest.from_options(config.getoption),
        cloud_sha256=config.getoption("cloud_sha256"),
        cloud_sums=config.getoption("cloud_sums"),
        cloud_mirror=config.getoption("cloud_mirror"),
        timeout_scale=config.getoption("timeout_scale"),
        # Every guest runs on a chosen stack or daemon: the direct backend has no daemon.
        backend="libvirt" if own_daemon else config.getoption("backend"),
        libvirt_uri=config.getoption("libvirt_uri"),
        libvirt_stack=stack,
        libvirt_daemon=daemon,
        cold_boot=config.getoption("cold_boot"),
        offline=config.getoption("offline"),
    )


def choice_option(option: str, value: str, known: tuple[str, ...]) -> str:
    """One of ``known``; also checks a default taken from the environment, which argparse's
    ``choices`` would not."""
    if value not in known:
        raise argparse.ArgumentTypeError(f"{option} {value!r}: use one of {', '.join(known)}")
    return value


def guest_profile_option(value: str) -> str:
    """A guest profile's name (harness.setup.guest_profiles)."""
    try:
        profile_named(value)
    except SetupError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def firmware_option(value: str) -> str:
    """``seabios`` or ``ovmf``, optionally with ``:VERSION`` or ``:PATH``."""
    if value.partition(":")[0] not in FIRMWARE_KINDS:
        raise argparse.ArgumentTypeError(
            f"{value!r}: one of {', '.join(FIRMWARE_KINDS)}, optionally :VERSION or :PATH"
        )
    return value
