"""libvirt's modular daemon as Fedora runs it: ``--libvirt-daemon virtqemud`` on this Debian
host, where no suite ships a ``virtqemud``, so the harness builds one from the host's own
libvirt source package first (into the image cache, once) and runs it as its private daemon
with its own ``virtlogd``. One case (dompmsuspend to RAM and the PM wake) passes on it; the
result names the daemon that ran and where it came from; the host's /etc/libvirt is left as it
was, and neither daemon outlives the run. The other libvirt cases run on virtqemud by hand
(docs/hosts.md): their checks are the daemon's clients, the same code as on libvirtd, which
CI runs every case on.

It runs where a virtqemud is at hand: installed on the host (Fedora's), or already built into
the image cache. Building one first takes minutes on two cores, beyond CI's share of time, so
a clean clone skips it unless S3S4_E2E_VIRTQEMUD=build asks for the build."""

import os
import shutil
from pathlib import Path

import pytest

from harness.setup import libvirt_modular
from tests.e2e.pytest_run import ROOT, run_pytest
from tests.e2e.test_libvirt_private import HOST_CONFIG, digests, processes_naming

pytestmark = [pytest.mark.selftest, pytest.mark.libvirt]

# The first run builds virtqemud (fetching the source, configuring and compiling the QEMU
# driver: minutes on two cores) before its guest boots.
RUN_TIMEOUT_S = 1800.0


def test_a_libvirt_case_passes_on_a_private_virtqemud(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the private daemon and the build of virtqemud need root")
    if not virtqemud_at_hand() and os.environ.get("S3S4_E2E_VIRTQEMUD") != "build":
        pytest.skip("no virtqemud installed or built: S3S4_E2E_VIRTQEMUD=build builds one first")
    before = digests(HOST_CONFIG)
    args = [str(ROOT / "testcases" / "test_libvirt.py"), "-k", "dompmsuspend-mem"]
    run = run_pytest([*args, "--libvirt-daemon", "virtqemud"], tmp_path / "reports", RUN_TIMEOUT_S)
    assert run.returncode == 0 and "1 passed" in run.output, run.output[-4000:]
    (test,) = run.results()["tests"]
    assert test["verdicts"] == ["PASS"], test
    combination = test["series"][-1]["cycles"][-1]["combination"]
    assert combination["libvirt_daemon_program"] == "virtqemud", combination
    assert combination["libvirt_daemon_origin"], combination
    assert digests(HOST_CONFIG) == before, "the host's /etc/libvirt was changed"
    assert processes_naming(f"/s3s4-harness/{run.pid}-") == [], "a daemon or QEMU outlived it"


def virtqemud_at_hand() -> bool:
    """The host's own virtqemud, or a build of the host's libvirt already in the cache."""
    if shutil.which(libvirt_modular.VIRTQEMUD) and shutil.which(libvirt_modular.LOG_DAEMON):
        return True
    if shutil.which("dpkg-query") is None:
        return False
    version = libvirt_modular.host_libvirt_version()
    built = libvirt_modular.BUILDS_DIR / libvirt_modular.build_dir_name(version)
    return (built / libvirt_modular.MANIFEST).is_file()
