"""Who defined a domain: the harness process, recorded in the domain's ``<metadata>``.

A sweep removes a domain only when its owner is provably a harness of this host that has
died: same host name, same boot (a pid means nothing across boots), same pid namespace (a pid
means nothing across namespaces), and that pid is gone or is now another process (its start
time differs). A domain without the record, or recorded by another host, boot or namespace,
is not provably dead and is left alone, whatever its name.
"""

from __future__ import annotations

import os
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SetupError

OWNER_NS = "urn:s3s4-harness:owner:1"  # the <metadata> child libvirt keeps for us, by namespace
OWNER_PREFIX = "s3s4"
OWNER_TAG = f"{{{OWNER_NS}}}owner"
PROC = Path("/proc")


@dataclass(frozen=True)
class Owner:
    """One harness process, as identified across processes of the same kernel."""

    host: str
    boot_id: str
    pid_ns: str
    pid: int
    start_time: int  # clock ticks after boot, /proc/<pid>/stat field 22

    def element(self) -> ET.Element:
        """The ``<s3s4:owner .../>`` element that goes into the domain's ``<metadata>``."""
        return ET.Element(
            OWNER_TAG,
            {
                "host": self.host,
                "boot_id": self.boot_id,
                "pid_ns": self.pid_ns,
                "pid": str(self.pid),
                "start_time": str(self.start_time),
            },
        )

    def same_kernel_and_namespace(self, other: Owner) -> bool:
        return (self.host, self.boot_id, self.pid_ns) == (other.host, other.boot_id, other.pid_ns)


def owner_of(domain_xml: str) -> Owner | None:
    """The owner recorded in a domain's XML; None when there is none or it is malformed."""
    try:
        root = ET.fromstring(domain_xml)
    except ET.ParseError:
        return None
    element = root.find(f"./metadata/{OWNER_TAG}")
    if element is None:
        return None
    try:
        return Owner(
            host=element.attrib["host"],
            boot_id=element.attrib["boot_id"],
            pid_ns=element.attrib["pid_ns"],
            pid=int(element.attrib["pid"]),
            start_time=int(element.attrib["start_time"]),
        )
    except (KeyError, ValueError):
        return None


def is_dead_harness(
    owner: Owner | None, here: Owner, start_time_of: Callable[[int], int | None]
) -> bool:
    """True only when ``owner`` is provably a harness of ``here``'s host, boot and pid
    namespace that no longer runs (``start_time_of`` gives a live pid's start time, or None)."""
    if owner is None or not owner.same_kernel_and_namespace(here):
        return False
    return start_time_of(owner.pid) != owner.start_time


def start_time(pid: int, proc: Path = PROC) -> int | None:
    """A process's start time (field 22 of its stat), or None if there is no such process."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])  # field 22, counted from field 3 after the name


def current(proc: Path = PROC) -> Owner:
    """This process as an owner."""
    pid = os.getpid()
    started = start_time(pid, proc)
    if started is None:
        raise SetupError(f"{proc} is not mounted: the harness cannot name itself as an owner")
    return Owner(
        host=socket.gethostname(),
        boot_id=(proc / "sys/kernel/random/boot_id").read_text().strip(),
        pid_ns=os.readlink(proc / "self/ns/pid"),
        pid=pid,
        start_time=started,
    )


__all__ = ["OWNER_NS", "Owner", "current", "is_dead_harness", "owner_of", "start_time"]
