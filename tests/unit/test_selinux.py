"""SELinux under libvirt (harness.setup.selinux): on a stand-in Fedora host with SELinux
enforcing, the domain asks libvirt for sVirt, names no disk exempt from relabelling, lets
libvirt create the agent socket, and the harness labels only what the XML does not name; on a
host without SELinux (this Debian one) nothing runs and the XML is as it was."""

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.errors import SetupError
from harness.machines.config import QemuConfig
from harness.machines.libvirt.domain_xml import AGENT_CHANNEL, DomainFiles, build_domain_xml
from harness.setup.selinux import (
    ENFORCING,
    OFF,
    PERMISSIVE,
    SelinuxHost,
    label_commands,
    offers_selinux,
    plan,
    svirt_for_domain,
)
from harness.tools import doctor

FILES = DomainFiles(
    Path("/r/root.qcow2"),
    Path("/r/swap.qcow2"),
    Path("/r/data.qcow2"),
    Path("/r/console.sock"),
)
CONFIG = QemuConfig(
    binary="qemu-system-x86_64",
    kernel=Path("/i/vmlinuz"),
    initrd=Path("/i/initrd.img"),
    append="root=/dev/vda",
    data_dir=Path("/cache/qemu-9.2/share"),
)
CAPABILITIES_SELINUX = """<capabilities><host>
  <secmodel><model>selinux</model><doi>0</doi>
    <baselabel type='kvm'>system_u:system_r:svirt_t:s0</baselabel>
    <baselabel type='qemu'>system_u:system_r:svirt_tcg_t:s0</baselabel></secmodel>
  <secmodel><model>dac</model><doi>0</doi></secmodel>
</host></capabilities>"""
CAPABILITIES_DAC_ONLY = (
    "<capabilities><host><secmodel><model>dac</model></secmodel></host></capabilities>"
)


class Recorder:
    def __init__(self, returncode: int = 0, stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.returncode = returncode
        self.stderr = stderr

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), self.returncode, "", self.stderr)


def fedora_root(tmp_path: Path, enforce: str | None) -> Path:
    if enforce is not None:
        (tmp_path / "sys/fs/selinux").mkdir(parents=True)
        (tmp_path / "sys/fs/selinux/enforce").write_text(enforce)
    return tmp_path


def asked(caps: str, calls: list[str]) -> str:
    calls.append("capabilities")
    return caps


def test_the_mode_is_read_from_selinuxfs(tmp_path: Path) -> None:
    assert SelinuxHost(fedora_root(tmp_path / "a", "1")).mode() == ENFORCING
    assert SelinuxHost(fedora_root(tmp_path / "b", "0")).mode() == PERMISSIVE
    assert SelinuxHost(fedora_root(tmp_path / "c", None)).mode() == OFF


def test_enforcing_labels_what_the_xml_does_not_name_and_asks_for_svirt(tmp_path: Path) -> None:
    run = Recorder()
    host = SelinuxHost(fedora_root(tmp_path, "1"), run)
    calls: list[str] = []
    svirt = svirt_for_domain(
        lambda: asked(CAPABILITIES_SELINUX, calls), [CONFIG.data_dir or Path()], host
    )
    assert svirt is True
    assert run.calls == [["chcon", "-R", "-t", "virt_content_t", "/cache/qemu-9.2/share"]]

    domain = ET.fromstring(build_domain_xml("s3s4-1-g", CONFIG, FILES, svirt=svirt))
    labels = {s.get("model"): s.attrib for s in domain.findall("seclabel")}
    assert labels["selinux"] == {"type": "dynamic", "model": "selinux", "relabel": "yes"}
    assert labels["dac"]["relabel"] == "no"  # DAC only: QEMU runs as the harness's own user
    for disk in domain.findall("devices/disk"):
        assert disk.find("source/seclabel") is None  # no disk is exempt from relabelling
    # The agent socket: no path, so libvirt creates it in its own (labelled) channel dir.
    channel = domain.find("devices/channel")
    assert channel is not None and channel.find("target").get("name") == AGENT_CHANNEL  # type: ignore[union-attr]
    assert channel.find("source") is None
    # The console socket QEMU connects to: libvirt labels a connect-mode socket itself.
    serial = domain.find("devices/serial/source")
    assert serial is not None and serial.attrib == {"mode": "connect", "path": "/r/console.sock"}


def test_permissive_does_the_same(tmp_path: Path) -> None:
    run = Recorder()
    host = SelinuxHost(fedora_root(tmp_path, "0"), run)
    assert svirt_for_domain(lambda: CAPABILITIES_SELINUX, [Path("/q")], host) is True
    assert run.calls == [["chcon", "-R", "-t", "virt_content_t", "/q"]]


def test_no_selinux_asks_libvirt_nothing_runs_nothing_and_the_xml_stays(tmp_path: Path) -> None:
    run = Recorder()
    calls: list[str] = []
    host = SelinuxHost(fedora_root(tmp_path, None), run)
    svirt = svirt_for_domain(lambda: asked(CAPABILITIES_SELINUX, calls), [Path("/q")], host)
    assert (svirt, run.calls, calls) == (False, [], [])
    assert build_domain_xml("d", CONFIG, FILES, svirt=svirt) == build_domain_xml("d", CONFIG, FILES)
    assert 'model="selinux"' not in build_domain_xml("d", CONFIG, FILES)


def test_a_libvirt_without_the_selinux_driver_gets_no_selinux_seclabel(tmp_path: Path) -> None:
    run = Recorder()
    host = SelinuxHost(fedora_root(tmp_path, "1"), run)
    assert svirt_for_domain(lambda: CAPABILITIES_DAC_ONLY, [Path("/q")], host) is False
    assert run.calls == []
    assert offers_selinux(CAPABILITIES_SELINUX) and not offers_selinux("not xml")


def test_a_failed_relabel_is_one_line_naming_the_command(tmp_path: Path) -> None:
    run = Recorder(1, "chcon: failed to change context of '/q': Operation not permitted\n")
    host = SelinuxHost(fedora_root(tmp_path, "1"), run)
    with pytest.raises(SetupError) as raised:
        svirt_for_domain(lambda: CAPABILITIES_SELINUX, [Path("/q")], host)
    assert "\n" not in str(raised.value)
    assert str(raised.value).startswith("chcon -R -t virt_content_t /q failed (chcon: failed")


def test_label_commands_and_the_plan_by_mode() -> None:
    assert label_commands([Path("/q")], OFF) == []
    assert plan(OFF) == "nothing to label"
    assert "sVirt" in plan(ENFORCING) and "virt_content_t" in plan(ENFORCING)


def test_doctor_says_what_the_harness_does_about_selinux(tmp_path: Path) -> None:
    enforcing = doctor.security(doctor.Host(root=fedora_root(tmp_path / "e", "1")))
    assert enforcing.status == doctor.NOTE
    assert enforcing.text.startswith("SELinux enforcing, AppArmor off: libvirt domains ask")
    assert "not run on an SELinux host yet" in enforcing.text
    off = doctor.security(doctor.Host(root=fedora_root(tmp_path / "o", None)))
    assert (off.status, off.text) == (doctor.OK, "SELinux off, AppArmor off: nothing to label")
