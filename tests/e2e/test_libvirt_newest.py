"""The newest libvirt as the harness's own daemon (``--libvirt-stack sid``): sid's libvirtd and
the QEMU built for it, from a root built into the cache once (minutes the first time) and run
from there, drive dompmsuspend mem and disk and save/restore through the same cases as the
host's libvirt. results.json names the daemon's own version (not the client library's), the
stack's QEMU and SeaBIOS as the guest saw them, and the stack's packages; the cell id names
that libvirt; nothing of the stack outlives the run, and the host's libvirt configuration is
left as it was."""

import os
import shutil
import subprocess
from typing import Any

import pytest

from tests.e2e.pytest_run import ROOT, run_pytest
from tests.e2e.test_libvirt_private import HOST_CONFIG, digests, processes_naming

pytestmark = [pytest.mark.selftest, pytest.mark.libvirt]

STACK = os.environ.get("S3S4_E2E_LIBVIRT_STACK", "sid")
CASES = ("dompmsuspend-mem", "dompmsuspend-disk", "save-restore")
# The stack's root is built on first use (mmdebstrap: a few minutes from a near mirror), then
# one guest boots under the stack's QEMU and three cases run on it.
RUN_TIMEOUT_S = 2700.0


def host_libvirt_version() -> str:
    out = subprocess.run(
        ["libvirtd", "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    return out.split()[-1] if out.strip() else ""


def cycles(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        cycle
        for test in results["tests"]
        for series in test.get("series", [])
        for cycle in series["cycles"]
    ]


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any], int]:
    """One pytest run of the three cases on the stack: its output, results and pid."""
    if os.geteuid() != 0:
        pytest.skip("a libvirt stack runs as the harness's own privileged daemon: needs root")
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap not installed: ./run setup installs it")
    reports = tmp_path_factory.mktemp("newest") / "reports"
    args = [str(ROOT / "testcases" / "test_libvirt.py"), "-k", " or ".join(CASES)]
    before = digests(HOST_CONFIG) if HOST_CONFIG.is_dir() else {}
    run = run_pytest([*args, "--libvirt-stack", STACK], reports, RUN_TIMEOUT_S)
    output = run.output
    assert run.returncode == 0 and f"{len(CASES)} passed" in output, output[-3000:]
    assert (digests(HOST_CONFIG) if HOST_CONFIG.is_dir() else {}) == before
    return output, run.results(), run.pid


def test_the_cases_ran_on_the_stacks_daemon_and_qemu_not_the_hosts(
    stack_run: tuple[str, dict[str, Any], int],
) -> None:
    _, results, _ = stack_run
    [cell] = results["cells"]
    assert cell["backend"] == "libvirt" and cell["libvirt"], cell
    assert cell["id"].endswith(f"-libvirt{cell['libvirt']}"), cell
    ran = [cycle["combination"] for cycle in cycles(results)]
    assert len(ran) >= len(CASES), results["tests"]
    for combination in ran:
        assert combination["libvirt_stack"] == STACK
        assert combination["libvirt_daemon"] == "private, started by the harness"
        # The daemon answers getLibVersion with its own version; the client stays the host's.
        assert combination["libvirt_version"] == cell["libvirt"], combination
        assert combination["libvirt_client_version"] != combination["libvirt_version"]
        assert combination["libvirt_version"] != host_libvirt_version()
        # QMP query-version of the running QEMU: the stack's, as the cell id says.
        assert combination["qemu_version"] == cell["qemu"], combination
        # The guest's DMI names the SeaBIOS the cell id names: the stack's own.
        assert cell["firmware"] == "seabios" + combination["bios_version"].split("-")[0]
        packages = combination["libvirt_stack_packages"]
        assert packages["libvirt-daemon"]["version"].startswith(cell["libvirt"])
        assert len(packages["libvirt-daemon"]["sha256"]) == 64
        assert packages["qemu-system-x86"]["version"].split(":")[-1].startswith(cell["qemu"])


def test_each_case_passed_with_its_own_events(stack_run: tuple[str, dict[str, Any], int]) -> None:
    _, results, _ = stack_run
    names = {test["test"].split("[")[-1].rstrip("]") for test in results["tests"]}
    for case in CASES:
        assert any(name.endswith(case) for name in names), names
    for test in results["tests"]:
        assert test["verdicts"] == ["PASS"], test["test"]


def test_nothing_of_the_stack_outlives_the_run(stack_run: tuple[str, dict[str, Any], int]) -> None:
    _, results, pid = stack_run
    assert processes_naming(f"/s3s4-harness/{pid}-") == [], "its libvirtd or QEMU outlived it"
    root = cycles(results)[0]["combination"]["libvirt_stack_root"]
    assert processes_naming(root) == [], "a program of the stack outlived the run"
