"""The libvirt backend touches nothing that is not its own: a libvirt run leaves the host's
/etc/libvirt byte-for-byte as it was (the daemon the harness starts reads a private copy),
and the sweep of dead harnesses' domains leaves a domain it cannot prove its own, whatever
its name."""

import contextlib
import hashlib
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import libvirt
import pytest

from harness.machines.libvirt.host import LibvirtHost, remove_domain
from harness.machines.libvirt.owner import OWNER_NS, OWNER_PREFIX, Owner
from harness.process import process_alive
from harness.session import HarnessSession

pytestmark = [pytest.mark.selftest, pytest.mark.libvirt]

ROOT = Path(__file__).resolve().parents[2]
HOST_CONFIG = Path("/etc/libvirt")
RUN_TIMEOUT_S = 1200.0
FOREIGN = "s3s4-99999-x"  # a harness's naming, but no owner record: someone else's


def digests(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``, by path."""
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def processes_naming(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and marker.encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_a_libvirt_run_leaves_the_hosts_libvirt_configuration_unchanged(tmp_path: Path) -> None:
    qemu_conf = HOST_CONFIG / "qemu.conf"
    if not qemu_conf.is_file():
        pytest.skip(f"{qemu_conf} does not exist: libvirt-daemon-system is not installed")
    before = digests(HOST_CONFIG)
    report_dir = tmp_path / "reports"
    argv = [sys.executable, "-m", "pytest", str(ROOT / "testcases" / "test_libvirt.py")]
    argv += ["-k", "dompmsuspend-mem", "-p", "no:cacheprovider", "--report-dir", str(report_dir)]
    run = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = run.communicate(timeout=RUN_TIMEOUT_S)[0]
    assert run.returncode == 0 and "1 passed" in output, output[-3000:]
    after = digests(HOST_CONFIG)
    assert after[str(qemu_conf)] == before[str(qemu_conf)], "the host's qemu.conf was changed"
    assert after == before
    results = (report_dir / "latest" / "results.json").read_text()
    if "private, started by the harness" in results:  # not where a host daemon answered
        assert processes_naming(f"/s3s4-harness/{run.pid}-") == [], "its libvirtd outlived it"


def minimal_domain(name: str, owner: Owner | None) -> str:
    ET.register_namespace(OWNER_PREFIX, OWNER_NS)
    domain = ET.Element("domain", type="qemu")
    ET.SubElement(domain, "name").text = name
    if owner is not None:
        ET.SubElement(domain, "metadata").append(owner.element())
    ET.SubElement(domain, "memory", unit="MiB").text = "32"
    ET.SubElement(ET.SubElement(domain, "os"), "type", arch="x86_64").text = "hvm"
    return ET.tostring(domain, encoding="unicode")


def test_the_sweep_removes_only_domains_of_a_dead_harness_of_this_host(
    harness_session: HarnessSession, tmp_path: Path
) -> None:
    """Defined on the session's daemon: a foreign domain named like a dead harness's, one whose
    record names a dead harness of this host (its pid since reused: the start time differs)
    and one of this very process. A second connection's sweep removes only the second."""
    assert not process_alive(99999), "pid 99999 runs: the foreign name would not look stale"
    host = harness_session.libvirt_host()
    me = host.owner
    dead = replace(me, pid=99998, start_time=me.start_time + 1)
    names = {FOREIGN: None, "s3s4-99998-dead": dead, f"s3s4-{me.pid}-mine": me}
    for name, owner in names.items():
        host.conn.defineXML(minimal_domain(name, owner))
    try:
        sweeper = LibvirtHost(host.uri, tmp_path / "logs", 30.0, state_dir=tmp_path / "unused")
        sweeper.conn  # noqa: B018 - opening sweeps
        assert sweeper.daemon is None  # the same daemon, reached by its URI
        sweeper.close()
        left = {dom.name() for dom in host.conn.listAllDomains(0)}
        assert FOREIGN in left, "a domain without an owner record was swept"
        assert f"s3s4-{me.pid}-mine" in left
        assert "s3s4-99998-dead" not in left
        assert host.owns(host.conn.lookupByName(f"s3s4-{me.pid}-mine"))
        assert not host.owns(host.conn.lookupByName(FOREIGN))
    finally:
        for name in names:
            with contextlib.suppress(libvirt.libvirtError):  # already swept
                remove_domain(host.conn.lookupByName(name))
