"""SELinux on the host, and what the libvirt backend does about it.

Where SELinux is enabled, libvirt's selinux security driver (sVirt) runs each QEMU confined
(``svirt_t``, or ``svirt_tcg_t`` under TCG) with categories of its own, and relabels for that
QEMU every file the domain XML names: the disks and their backing chain, the kernel and initrd,
the NVRAM, and a unix socket QEMU connects to (the harness's console socket, which libvirt
labels because the serial source is in connect mode). The agent channel names no path, so
libvirt creates that socket itself in its own channel directory, labelled. The domain asks for
this explicitly, ``<seclabel type='dynamic' model='selinux' relabel='yes'/>``, but only where
SELinux is enabled and libvirt's capabilities offer the selinux model: a libvirt without that
driver refuses a domain that names it. No disk carries a seclabel of its own, so none is
exempt from relabelling.

What the domain XML does not name, libvirt does not label: a provisioned QEMU's data directory
passed on ``<qemu:commandline>`` (``-L``). The harness labels such paths ``virt_content_t``
(read-only content any confined QEMU may read) with ``chcon`` before the domain is defined.

Where SELinux is off (no selinuxfs, as on Debian), nothing here runs and the domain XML is as
it always was. The mode is read from ``/sys/fs/selinux/enforce``, the file ``getenforce``
itself reads; without selinuxfs SELinux is disabled."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError

ENFORCING, PERMISSIVE, OFF = "enforcing", "permissive", "off"
ENFORCE_FILE = "sys/fs/selinux/enforce"
SVIRT_SECLABEL = {"type": "dynamic", "model": "selinux", "relabel": "yes"}
QEMU_CONTENT_TYPE = "virt_content_t"  # what a confined QEMU may read, whatever its categories
CHCON_TIMEOUT_S = 60.0  # a recursive relabel of a QEMU data directory: thousands of files

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_chcon(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, check=False, timeout=CHCON_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


@dataclass(frozen=True)
class SelinuxHost:
    """Where the mode is read (below ``root``) and how labels are set."""

    root: Path = Path("/")
    run: Runner = run_chcon

    def mode(self) -> str:
        """``enforcing``, ``permissive`` or ``off``."""
        try:
            value = (self.root / ENFORCE_FILE).read_text().strip()
        except OSError:
            return OFF
        return {"1": ENFORCING, "0": PERMISSIVE}.get(value, OFF)


def offers_selinux(capabilities_xml: str) -> bool:
    """libvirt's capabilities list the selinux security model (its driver is active)."""
    try:
        host = ET.fromstring(capabilities_xml).find("host")
    except ET.ParseError:
        return False
    models = [] if host is None else host.findall("secmodel/model")
    return any((m.text or "").strip() == "selinux" for m in models)


def label_commands(paths: Sequence[Path], mode: str) -> list[list[str]]:
    """The commands that let a confined QEMU read ``paths`` (files the domain XML does not
    name); none where SELinux is off."""
    if mode == OFF:
        return []
    return [["chcon", "-R", "-t", QEMU_CONTENT_TYPE, str(p)] for p in paths]


def svirt_for_domain(
    capabilities: Callable[[], str],
    unnamed: Sequence[Path] = (),
    host: SelinuxHost | None = None,
) -> bool:
    """Whether the domain XML asks libvirt for sVirt; where it does, ``unnamed`` (paths QEMU
    reads that the XML does not name) are labelled first. Where SELinux is off this asks
    libvirt nothing and runs nothing."""
    host = host or SelinuxHost()
    mode = host.mode()
    if mode == OFF or not offers_selinux(capabilities()):
        return False
    for argv in label_commands(unnamed, mode):
        result = host.run(argv)
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().splitlines()
            raise SetupError(
                f"{' '.join(argv)} failed ({said[-1] if said else result.returncode}): a "
                "confined QEMU cannot read it; run as root, or label it yourself"
            )
    return True


def plan(mode: str) -> str:
    """What the harness does about ``mode``, in one line (``./run doctor``)."""
    if mode == OFF:
        return "nothing to label"
    return (
        "libvirt domains ask for sVirt (seclabel dynamic, relabel=yes: libvirt labels their "
        f"disks, kernel, NVRAM and console socket), a provisioned QEMU's -L directory gets "
        f"{QEMU_CONTENT_TYPE} (chcon); the direct backend's QEMU runs in the harness's own "
        "context"
    )
