"""libvirt's modular daemon as Fedora runs it: ``--libvirt-daemon virtqemud`` on this Debian
host, where no suite ships a ``virtqemud``, so the harness builds one from the host's own
libvirt source package first (into the image cache, once) and runs it as its private daemon
with its own ``virtlogd``. One case (dompmsuspend to RAM and the PM wake) passes on it; the
result names the daemon that ran and where it came from; the host's /etc/libvirt is left as it
was, and neither daemon outlives the run. The same guest carries the libvirt backend's device
profile, as virt-manager gives a guest: an e1000e NIC and its data disk on SATA (AHCI), so
that one boot also proves the domain XML's NIC model and disk bus (the checks ran on the
``e1000e`` and ``ahci`` drivers, read from the guest). The link-down fault on libvirt +
e1000e is run by hand (docs/libvirt.md); the disk check's EIO fault under AHCI needs the
direct QEMU backend's blkdebug and runs in the platform matrix. The other libvirt cases run
on virtqemud by hand (docs/hosts.md): their checks are the daemon's clients, the same code as
on libvirtd, which CI runs every case on.

It runs wherever a virtqemud can be had: installed on the host (Fedora's), already built into
the image cache, or built by the inner run's setup (root, dpkg and apt, Debian's libvirt
installed), as on CI's clean clone, where the build is part of this test's time. It skips only
where none can be had, with the reason (harness.setup.libvirt_modular.unavailable_reason)."""

import os
from pathlib import Path

import pytest

from harness.setup import libvirt_modular
from tests.e2e.pytest_run import ROOT, run_pytest
from tests.e2e.test_libvirt_private import HOST_CONFIG, digests, processes_naming

pytestmark = [pytest.mark.selftest, pytest.mark.libvirt]

# The first run builds virtqemud (installing its build dependencies, fetching the source,
# configuring and compiling the QEMU driver: minutes on two cores) before its guest boots.
RUN_TIMEOUT_S = 1800.0
# The libvirt backend's device profile: the NIC model and the data disk's bus.
DEVICES = ("--nic", "e1000e", "--disk", "ahci")


def test_a_libvirt_case_passes_on_a_private_virtqemud(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the private daemon and the build of virtqemud need root")
    reason = libvirt_modular.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    before = digests(HOST_CONFIG)
    args = [str(ROOT / "testcases" / "test_libvirt.py"), "-k", "dompmsuspend-mem"]
    args += ["--libvirt-daemon", "virtqemud", *DEVICES]
    run = run_pytest(args, tmp_path / "reports", RUN_TIMEOUT_S)
    assert run.returncode == 0 and "1 passed" in run.output, run.output[-4000:]
    (test,) = run.results()["tests"]
    assert test["verdicts"] == ["PASS"], test
    combination = test["series"][-1]["cycles"][-1]["combination"]
    assert combination["libvirt_daemon_program"] == "virtqemud", combination
    assert combination["libvirt_daemon_origin"], combination
    after = test["series"][-1]["cycles"][-1]["evidence"]["after"]
    drivers = (after.get("net.driver"), after.get("blk.disk_driver"))
    assert drivers == ("e1000e", "ahci"), f"the checks ran on {drivers}, not the profile's"
    assert digests(HOST_CONFIG) == before, "the host's /etc/libvirt was changed"
    assert processes_naming(f"/s3s4-harness/{run.pid}-") == [], "a daemon or QEMU outlived it"
