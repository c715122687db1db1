"""A saved libvirt domain handed from one libvirt daemon to another, as a host upgrade hands
it over: libvirt-guests saved it on the old daemon (``managedsave``, or ``save`` to a file),
the host came back with a newer libvirt and QEMU, and the new daemon starts it from what the
old one left: the domain's persistent definition and its saved state.

The definition moves as the old daemon wrote it (``XMLDesc`` of the inactive domain: the same
UUID, and the machine type pinned to the versioned type the old daemon expanded its alias
to, e.g. ``pc-i440fx-7.2``). A managed save image moves into the new daemon's own save
directory (``<its /var/lib/libvirt>/qemu/save/<domain>.save``), where its ``start`` looks for
one; a save file stays where it is (``restore`` takes a path). The machine object stays the
guest's own: disks, console, event log; only the daemon under it changes.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from harness.errors import HarnessError, SetupError
from harness.machines.libvirt import events as lv_events
from harness.machines.libvirt.errors import call
from harness.machines.libvirt.host import LibvirtHost, remove_domain
from harness.machines.libvirt.machine import LibvirtMachine

HOST_SAVE_DIR = Path("/var/lib/libvirt/qemu/save")  # a daemon's own, where it runs as the host's


@dataclass(frozen=True)
class Handed:
    """One hand-over: which daemon and QEMU the domain left and which took it, the machine
    type its definition pins, and where its managed save image went (if it had one)."""

    from_libvirt: str
    to_libvirt: str
    from_qemu: str
    machine_type: str
    managed_save: str  # the image's path under the new daemon, or ""
    xml: str  # the definition as the old daemon wrote it

    def facts(self) -> dict[str, Any]:
        return {
            "from_libvirt": self.from_libvirt,
            "to_libvirt": self.to_libvirt,
            "from_qemu": self.from_qemu,
            "machine_type": self.machine_type,
            "managed_save_moved_to": self.managed_save,
        }


def save_dir(host: LibvirtHost) -> Path:
    """Where ``host``'s daemon keeps managed save images, as the harness sees that path."""
    if host.daemon is not None:  # its /var/lib/libvirt is bound from its state directory
        return host.daemon.state_dir / "lib" / "qemu" / "save"
    return HOST_SAVE_DIR


def pinned_machine_type(xml: str) -> str:
    """The machine type a domain definition names (``os/type@machine``)."""
    found = ET.fromstring(xml).find("./os/type")
    return "" if found is None else found.get("machine", "")


def hand_over(machine: LibvirtMachine, newer: LibvirtHost) -> Handed:
    """Move ``machine``'s saved, shut-off domain from its daemon to ``newer``'s."""
    if machine.running:
        raise HarnessError(f"{machine.name}: only a saved, shut-off domain is handed over")
    older = machine.host
    dom = machine.dom
    xml = call(
        "dumpxml --inactive",
        lambda: dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE),
    )
    from_libvirt = str(older.facts().get("libvirt_version", ""))
    from_qemu = str(machine.platform_facts().get("qemu_version", ""))
    image = save_dir(older) / f"{machine.domain_name}.save"
    moved = ""
    if image.is_file():
        if newer.daemon is None:
            raise SetupError("a managed save image is handed only to the harness's own daemon")
        target = save_dir(newer) / image.name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _link_or_copy(image, target)  # the old daemon deletes its own as it undefines
        moved = str(target)
    _redefine(machine, newer, xml)
    return Handed(
        from_libvirt=from_libvirt,
        to_libvirt=str(newer.facts().get("libvirt_version", "")),
        from_qemu=from_qemu,
        machine_type=pinned_machine_type(xml),
        managed_save=moved,
        xml=xml,
    )


def hand_back(machine: LibvirtMachine, older: LibvirtHost, handed: Handed) -> None:
    """Stop the domain on the newer daemon and define it again, as it was, on ``older``."""
    machine.stop()
    _redefine(machine, older, handed.xml)


def _redefine(machine: LibvirtMachine, host: LibvirtHost, xml: str) -> None:
    """Undefine the domain where it is (with its managed save image), define ``xml`` on
    ``host`` and follow its events there."""
    lv_events.unsubscribe(machine.host.conn, machine._callbacks)
    remove_domain(machine.dom)
    conn = host.conn
    dom = call("defineXML", lambda: conn.defineXML(xml))
    machine.host = host
    machine._dom = dom
    machine._callbacks = lv_events.subscribe(conn, dom, machine.events)
    machine._forwarded_id = None  # the next QEMU needs its own ssh forward


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


__all__ = ["Handed", "hand_back", "hand_over", "pinned_machine_type", "save_dir"]
