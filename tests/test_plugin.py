"""The pytest plugin, driven through real pytest runs (pytester)."""

import json

import pytest

from harness.plugin import workers_for

pytest_plugins = ("pytester",)


def test_options_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    for option in (
        "--accel",
        "--backend",
        "--libvirt-uri",
        "--qemu",
        "--seabios",
        "--ovmf",
        "--cold-boot",
        "--firmware",
        "--machine-type",
        "--kernel-package",
        "--report-dir",
        "--timeout-scale",
    ):
        result.stdout.fnmatch_lines([f"*{option}*"])


def test_report_directory_has_results_and_junit(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--report-dir", "out")
    result.assert_outcomes(passed=1)
    runs = [p for p in (pytester.path / "out").iterdir() if p.name != "latest"]
    assert len(runs) == 1
    data = json.loads((runs[0] / "results.json").read_text())
    assert data["schema"] == 1 and data["tests"][0]["outcome"] == "passed"
    assert (runs[0] / "junit.xml").is_file()
    assert "<table" in (runs[0] / "report.html").read_text()
    assert (pytester.path / "out" / "latest").resolve() == runs[0].resolve()
    result.stdout.fnmatch_lines(["*report: *results.json, junit.xml and report.html*"])


def test_a_cells_cases_stay_on_one_xdist_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        def _note(name, cell):
            with open(name, "w") as out:
                out.write(os.environ.get("PYTEST_XDIST_WORKER", "none") + " " + cell.id)

        def test_a(cell): _note("a", cell)
        def test_b(cell): _note("b", cell)
        def test_c(cell): _note("c", cell)
        def test_d(cell): _note("d", cell)
        """
    )
    result = pytester.runpytest("-n", "2", "--dist", "loadgroup", "--report-dir", "out")
    result.assert_outcomes(passed=4)
    notes = {(pytester.path / name).read_text() for name in "abcd"}
    assert len(notes) == 1, notes  # one worker ran the cell's four cases
    assert notes.pop().startswith("gw")


def test_workers_are_sized_by_memory_then_cpus() -> None:
    assert workers_for(available_mib=24_000, cpus=2, guest_mib=1024) == 2  # CPUs bound
    assert workers_for(available_mib=24_000, cpus=64, guest_mib=1024) == 9  # memory bound
    assert workers_for(available_mib=1_000, cpus=8, guest_mib=1024) == 1  # at least one


def test_n_auto_asks_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest("-n", "auto", "--guest-memory", "100000", "--report-dir", "out")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 worker*"])  # 100 GB guests: memory allows one worker
