"""Cloud images (Fedora Cloud, Ubuntu, CentOS Stream, Debian genericcloud, or one built
here): downloaded and verified by sha256 into the cache, checked to be one standalone qcow2
file, booted from their own disk by the firmware (UEFI: OVMF on q35), and configured through a
cloud-init NoCloud seed.

An image may travel over plain http only when its digest did not: the digest is given on the
command line (``--cloud-sha256``), or read from a checksum list its distribution signs, or
from one read over https or from a local file (harness.setup.cloud_providers). A downloaded
image is opened by nothing but ``qemu-img info -f qcow2`` (which opens neither a backing file
nor a data file, and probes no format) until it is known to stand alone: a qcow2 that names a
backing file or an external data file would have root's QEMU open that path (``/dev/sda``).

The seed (an ISO 9660 volume labelled ``cidata``, written with avocado's iso9660 utility on
pycdlib) gives root the run's ssh key, prepares hibernation to a swapfile on the root file
system as the guest profiles have it (prepare_swapfile.sh: the swapfile, its offset, the
initramfs regenerated), puts ``resume=``/``resume_offset=`` on the kernel command line through
the image's boot loader (set_resume.sh), and makes sure qemu-guest-agent runs; the harness
waits for cloud-init to finish, and boots the guest a second time for them to take effect
(harness.machines.cloud_ready), before it counts as ready.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError
from harness.setup.cloud_providers import is_spec, resolve, unsigned_sums
from harness.setup.downloads import digest_from_sums, fetch
from harness.setup.image import DEFAULT_CACHE, GuestImage

DOWNLOADS = DEFAULT_CACHE / "downloads"
SUMS_NAME = "SHA256SUMS"
# cloud-init's own wait ends early once a module has failed (status "error"): the boot jobs
# (cloud-final, which runs runcmd, among them) are waited for as well.
SETTLE_COMMAND = (
    "command -v cloud-init >/dev/null && cloud-init status --wait >/dev/null; "
    "systemctl is-system-running --wait >/dev/null; true"
)

SET_RESUME_SH = Path(__file__).with_name("set_resume.sh")
PREPARE_SWAPFILE_SH = Path(__file__).with_name("prepare_swapfile.sh")
RESUME_SCRIPT = "/usr/local/sbin/s3s4-set-resume"  # where the seed installs it in the guest
SWAPFILE_SCRIPT = "/usr/local/sbin/s3s4-prepare-swapfile"
RESUME_METHOD_FILE = "/var/lib/s3s4/resume-method"
RESUME_ARGS_FILE = "/var/lib/s3s4/resume-args"  # the arguments set_resume.sh put in place
SWAPFILE_FILE = "/var/lib/s3s4/swapfile"  # what prepare_swapfile.sh made
# What the harness reads once cloud-init is done: is each resume argument the seed's script
# set (resume= where it set none) on the running kernel's command line, and what did the
# script do about it (see set_resume.sh).
RESUME_STATUS_COMMAND = (
    "read -r c < /proc/cmdline; on=on; "
    f"for a in $(cat {RESUME_ARGS_FILE} 2>/dev/null || echo resume=); do "
    'case "$a" in *=) p=" $a";; *) p=" $a ";; esac; '
    'case " $c " in *"$p"*) ;; *) on=off;; esac; done; echo $on; '
    f"cat {RESUME_METHOD_FILE} 2>/dev/null || echo 'none: the seed script never ran'"
)
AGENT_COMMAND = """command -v qemu-ga >/dev/null ||
  apt-get install -y qemu-guest-agent || dnf install -y qemu-guest-agent
"""
# Images that ship the agent start it from a udev rule on its virtio port, also at the next
# boot; only an agent that is not running yet (installed just now) needs enabling. (Enabling
# one that has an init script too runs systemd-sysv-install: seconds of perl under TCG.)
AGENT_START_COMMAND = (
    "systemctl is-active -q qemu-guest-agent || systemctl enable --now qemu-guest-agent"
)
# Host keys cloud-init generates at the first boot: RSA (3072 bits) alone takes seconds under
# TCG, and the harness's client takes any type.
SSH_KEY_TYPES = ["ed25519", "ecdsa"]
META_DATA = "instance-id: {instance}\nlocal-hostname: guest\n"


@dataclass(frozen=True)
class ResumeStatus:
    """Whether the running kernel was given resume=, and how the seed's script set it."""

    on_cmdline: bool
    method: str

    @property
    def needs_reboot(self) -> bool:
        return not self.on_cmdline and not self.method.startswith("none")

    @classmethod
    def parse(cls, stdout: str) -> ResumeStatus:
        first, _, rest = stdout.strip().partition("\n")
        return cls(first.strip() == "on", rest.strip() or "none: nothing reported")


def user_data(ssh_public_line: str) -> str:
    """cloud-config (as JSON, which YAML reads): root's key, a swapfile with the initramfs
    and the boot loader's resume=/resume_offset= prepared for hibernation to it, the guest
    agent running."""
    config = {
        "disable_root": False,
        "ssh_pwauth": False,
        "locale": "C.UTF-8",
        "ssh_authorized_keys": [ssh_public_line],
        "write_files": [
            {"path": script, "permissions": "0755", "content": source.read_text()}
            for script, source in (
                (SWAPFILE_SCRIPT, PREPARE_SWAPFILE_SH),
                (RESUME_SCRIPT, SET_RESUME_SH),
            )
        ],
        "runcmd": [[SWAPFILE_SCRIPT, RESUME_SCRIPT], AGENT_COMMAND, AGENT_START_COMMAND],
        "ssh_genkeytypes": SSH_KEY_TYPES,
    }
    return "#cloud-config\n" + json.dumps(config, indent=1) + "\n"


def cloud_image(
    url: str,
    sha256: str | None = None,
    sums_url: str | None = None,
    mirror: str | None = None,
    cache: Path | None = None,
) -> GuestImage:
    """The image at ``url`` (a URL, a local path, or a distribution's ``name:version``
    found upstream or under ``mirror``), verified against ``sha256`` or the checksum list
    ``sums_url`` (default: SHA256SUMS beside the image, or what the distribution publishes),
    and refused unless it is one standalone qcow2 file."""
    if is_spec(url):
        ref = resolve(url, mirror, sha256)
        url, sha256 = ref.url, ref.digest
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if sha256 is None:
        if sums_url is None:
            folder, _, _ = url.rstrip("/").rpartition("/")
            sums_url = f"{folder}/{SUMS_NAME}" if folder else SUMS_NAME
        sha256 = digest_from_sums(unsigned_sums(sums_url), name)
    disk = fetch(url, sha256, cache or DOWNLOADS)
    check_standalone_qcow2(disk)
    disk.chmod(0o444)  # a base image: guests run on overlays of it
    stem = name.removesuffix(".qcow2").removesuffix(".img")
    return GuestImage(
        name=f"cloud-{stem}",
        key=sha256[:16],
        disk=disk,
        kernel=None,
        initrd=None,
        kernel_release=f"cloud-{stem}",
        cmdline="",
        packages={},
        cloud=True,
    )


def write_seed(path: Path, instance_id: str, ssh_public_line: str) -> Path:
    """A NoCloud seed for one run's guests."""
    from avocado.utils import iso9660  # imported here: only cloud runs need pycdlib

    seed = iso9660.iso9660(str(path), ["create", "write"])
    if seed is None:
        raise SetupError("cannot write the cloud-init seed: pycdlib is missing (./run setup)")
    seed.create(flags={"interchange_level": 3, "joliet": 3, "vol_ident": "cidata"})
    seed.write("/meta-data", META_DATA.format(instance=instance_id).encode())
    seed.write("/user-data", user_data(ssh_public_line).encode())
    seed.close()
    return path


def check_standalone_qcow2(disk: Path) -> None:
    """Refuse ``disk`` unless it is a qcow2 image that reads no other file: no backing file,
    no external data file. The format is given, never probed: a probed VMDK descriptor, for
    one, has ``qemu-img info`` open the extent files it names."""
    try:
        result = subprocess.run(
            ["qemu-img", "info", "--output=json", "-f", "qcow2", str(disk)],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise SetupError("qemu-img not found: run ./run setup (installs qemu-utils)") from exc
    if result.returncode != 0:
        problem = result.stderr.strip().splitlines()[-1:] or ["no reason given"]
        raise SetupError(
            f"{disk} is not a qcow2 image qemu-img can read ({problem[0]}): use the qcow2 build "
            "of the image"
        )
    info = json.loads(result.stdout)
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    data_file = info.get("format-specific", {}).get("data", {}).get("data-file")
    if info.get("format") != "qcow2":
        raise SetupError(f"{disk} is a {info.get('format')} image: use the qcow2 build of it")
    if backing:
        raise SetupError(
            f"{disk} is a qcow2 overlay of {backing}, which QEMU would open as root: refused; "
            "use a standalone image (qemu-img convert -O qcow2 it into one you trust)"
        )
    if data_file:
        raise SetupError(
            f"{disk} keeps its data in the external file {data_file}, which QEMU would open as "
            "root: refused; use a standalone image (qemu-img convert -O qcow2 it)"
        )
