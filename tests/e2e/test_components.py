"""Components from Debian's archive, run from the cache beside the host's own: a QEMU from
bookworm-backports and another SeaBIOS, detected as such by the running system."""

import subprocess
from pathlib import Path

import pytest

from harness.components import DebianArchive, provision_qemu, upstream
from harness.cycle import run_cycle
from harness.errors import SetupError
from harness.image import DEFAULT_CACHE
from harness.qemu.machine import QemuMachine
from harness.session import HarnessSession, Settings
from harness.transitions import S3_AGENT
from harness.verdict import Verdict

pytestmark = pytest.mark.selftest

SEABIOS = "1.16.3"


def _offered(package: str, marker: str) -> str:
    """The archive's build of ``package`` whose version carries ``marker`` (``bpo12``:
    bookworm-backports, ``deb13``: trixie), whatever its number is today."""
    for version in DebianArchive().versions(package):
        if marker in version and (marker != "deb13" or "bpo" not in version):
            return version
    pytest.skip(f"Debian's archive offers no {marker} build of {package}")


def _host_package(name: str) -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, check=False
    ).stdout


def test_s3_cycle_on_qemu_and_seabios_from_the_archive(tmp_path: Path) -> None:
    host_qemu = _host_package("qemu-system-x86")
    backports = _offered("qemu-system-x86", "bpo12")
    session = HarnessSession(Settings(qemu=backports, seabios=SEABIOS), tmp_path / "guests", print)
    try:
        assert session.cell.qemu == upstream(backports), session.cell
        assert session.cell.firmware == "seabios1.16.3", session.cell
        machine = session.fresh_guest("s3-on-archive-components")
        assert isinstance(machine, QemuMachine)
        machine.boot()
        outcome = run_cycle(machine, S3_AGENT)
        assert outcome.verdict is Verdict.PASS, outcome.reason
        # What the running system says, not what was asked for.
        facts = machine.platform_facts()
        assert facts["qemu_version"] == upstream(backports), facts
        assert outcome.evidence.after["guest.bios_version"].startswith("1.16.3"), outcome.evidence
        assert session.qemu_build.binary.is_relative_to(DEFAULT_CACHE), session.qemu_build
    finally:
        session.close()
    assert _host_package("qemu-system-x86") == host_qemu, "the host's QEMU package was touched"


def test_a_build_for_another_release_is_a_one_line_error() -> None:
    # trixie's QEMU needs libraries bookworm does not have.
    with pytest.raises(SetupError) as caught:
        provision_qemu(_offered("qemu-system-x86", "deb13"))
    message = str(caught.value)
    assert "cannot run on this host" in message and "bookworm-backports" in message, message
    assert "\n" not in message
