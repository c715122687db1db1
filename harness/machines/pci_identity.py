"""What a PCI device the guest kernel names by its bus id (``0000:00:09.0``) is, read from
QEMU's own list of its PCI devices (HMP ``info pci``): QEMU's id for it, its class and, for a
virtio device, its virtio type and the guest driver that binds it. The guest names a virtio
device by its transport's driver (virtio-pci) only; its type is in the PCI device id."""

from __future__ import annotations

import re

VIRTIO_VENDOR = "1af4"

# The virtio device types QEMU offers, by number (the virtio specification's device ids),
# with the Linux driver that binds each.
VIRTIO_TYPES = {
    1: ("net", "virtio_net"),
    2: ("block", "virtio_blk"),
    3: ("console", "virtio_console"),
    4: ("entropy", "virtio_rng"),
    5: ("balloon", "virtio_balloon"),
    8: ("scsi", "virtio_scsi"),
    9: ("9p", "9pnet_virtio"),
    16: ("gpu", "virtio_gpu"),
    18: ("input", "virtio_input"),
    19: ("vsock", "vmw_vsock_virtio_transport"),
    20: ("crypto", "virtio_crypto"),
    23: ("iommu", "virtio_iommu"),
    24: ("mem", "virtio_mem"),
    25: ("sound", "virtio_snd"),
    26: ("fs", "virtiofs"),
    27: ("pmem", "virtio_pmem"),
}
# Transitional (legacy-capable) virtio PCI devices have ids 0x1000-0x103f and carry their
# type in the PCI subsystem id; modern ones have 0x1040 plus their type.
MODERN_BASE = 0x1040
TRANSITIONAL = range(0x1000, 0x1040)

BUS_ID = re.compile(r"^(?:[0-9a-f]{4}:)?(?P<bus>[0-9a-f]{2}):(?P<slot>[0-9a-f]{2})\.(?P<fn>[0-7])$")
DEVICE_HEADER = re.compile(r"^\s*Bus\s+(\d+), device\s+(\d+), function (\d+):", re.M)
CLASS_LINE = re.compile(
    r"^\s*(?P<kind>[^:\n]+): PCI device (?P<vendor>\w{4}):(?P<device>\w{4})", re.M
)
SUBSYSTEM_LINE = re.compile(r"PCI subsystem \w{4}:(?P<subsystem>\w{4})")
QEMU_ID = re.compile(r'id "(?P<id>[^"]*)"')


def _virtio_type(device: int, subsystem: int | None) -> int | None:
    if device >= MODERN_BASE:
        return device - MODERN_BASE
    if device in TRANSITIONAL:
        return subsystem
    return None


def pci_identity(info_pci: str, bus_id: str) -> str:
    """``a virtio fs device, guest driver virtiofs, QEMU id 'share'`` for the device at
    ``bus_id`` in ``info_pci`` (QEMU's HMP ``info pci``); "" when it is not there."""
    where = BUS_ID.match(bus_id.lower())
    if where is None:
        return ""
    wanted = (int(where["bus"], 16), int(where["slot"], 16), int(where["fn"]))
    headers = list(DEVICE_HEADER.finditer(info_pci))
    for at, header in enumerate(headers):
        if tuple(int(part) for part in header.groups()) != wanted:
            continue
        end = headers[at + 1].start() if at + 1 < len(headers) else len(info_pci)
        return _describe(info_pci[header.end() : end])
    return ""


def _describe(block: str) -> str:
    kind = CLASS_LINE.search(block)
    qemu_id = QEMU_ID.search(block)
    parts = []
    if kind is not None:
        vendor, device = kind["vendor"].lower(), int(kind["device"], 16)
        subsystem = SUBSYSTEM_LINE.search(block)
        virtio = (
            _virtio_type(device, int(subsystem["subsystem"], 16) if subsystem else None)
            if vendor == VIRTIO_VENDOR
            else None
        )
        if virtio is not None and virtio in VIRTIO_TYPES:
            name, driver = VIRTIO_TYPES[virtio]
            parts += [f"a virtio {name} device", f"guest driver {driver}"]
        else:
            parts.append(f"{kind['kind'].strip()} {kind['vendor']}:{kind['device']}")
    if qemu_id and qemu_id["id"]:
        parts.append(f"QEMU id '{qemu_id['id']}'")
    return ", ".join(parts)
