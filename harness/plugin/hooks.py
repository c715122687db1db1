"""The pytest hooks and fixtures: options, the cell parameter, guest fixtures, verdict records
and reports. Exported whole by ``harness.plugin``, the entry point."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from harness import progress
from harness.checks.judges import DEFAULT_CHECKS, Check
from harness.checks.probes import DEFAULT_PROBES, Probe
from harness.checks.verdict import CycleOutcome, CycleSeries, Verdict
from harness.cycle.faults import Fault
from harness.cycle.localise import localise, pm_test_state
from harness.cycle.run import CycleOptions, run_group_cycle, run_series
from harness.errors import HarnessError
from harness.interrupts import received, take_termination_as_interrupt
from harness.machines.protocol import Machine, PlatformRecords
from harness.matrix.cell import Cell, follow_guest_firmware
from harness.plugin.options import add_options, settings_from
from harness.results import known_issues, run_page
from harness.results.run_report import RunReport, new_run_id
from harness.session import HarnessSession
from harness.transitions.parts import Transition

__all__ = [
    "GroupCycle",
    "PowerCycle",
    "expect_judged",
    "expect_pass",
    "group_cycle",
    "guest",
    "guest_factory",
    "harness_session",
    "libvirt_guest",
    "power_cycle",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_runtest_makereport",
    "pytest_runtest_protocol",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_unconfigure",
    "pytest_xdist_auto_num_workers",
    "workers_for",
]

SESSION_KEY = pytest.StashKey[HarnessSession]()
REPORT_KEY = pytest.StashKey[RunReport]()
SERIES_KEY = pytest.StashKey[list[CycleSeries]]()
SETUP_ERROR_KEY = pytest.StashKey[str]()
PROGRESS_KEY = pytest.StashKey[tuple[progress.Writer, progress.Writer | None]]()


class PowerCycle(Protocol):
    """The ``power_cycle`` fixture: run ``transition`` on ``machine`` (default: the case's
    ``guest``) for ``cycles`` cycles (default: ``--cycles``, else the ``cycles`` marker, else
    one), with ``faults`` injected; ``resync_clock`` overrides ``--clock-resync``. Every cycle
    is recorded for the report."""

    def __call__(
        self,
        transition: Transition,
        *,
        machine: Machine | None = None,
        faults: Sequence[Fault] = (),
        cycles: int | None = None,
        resync_clock: bool | None = None,
    ) -> CycleSeries: ...


class GroupCycle(Protocol):
    """The ``group_cycle`` fixture: run one ``transition`` that acts on all ``machines`` at
    once (a host service), judged with ``checks`` on ``probes``; one series per machine."""

    def __call__(
        self,
        transition: Transition,
        machines: Sequence[Machine],
        *,
        checks: Sequence[Check] = DEFAULT_CHECKS,
        probes: tuple[Probe, ...] = DEFAULT_PROBES,
    ) -> list[CycleSeries]: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    run_id = new_run_id()
    directory = Path(config.getoption("report_dir"))
    if not directory.is_absolute():
        directory = config.rootpath / directory
    report = RunReport(directory / run_id, run_id)
    config.stash[REPORT_KEY] = report
    take_termination_as_interrupt()
    if not config.option.xmlpath:
        config.option.xmlpath = str(report.directory / "junit.xml")
    # Long waits, as plain lines; the writers before this run's are put back when it ends (a
    # pytest run inside another, as the plugin's own tests make, must not leave its closed
    # terminal writer to the outer run).
    config.stash[PROGRESS_KEY] = progress.use(_progress_writer(config, prefix=""))


def _session(config: pytest.Config) -> HarnessSession:
    if SESSION_KEY not in config.stash:
        settings = settings_from(config)
        config.stash[SESSION_KEY] = HarnessSession(
            settings, config.stash[REPORT_KEY].directory / "guests", _progress_writer(config)
        )
    return config.stash[SESSION_KEY]


def _progress_writer(config: pytest.Config, prefix: str = "[image] ") -> Callable[[str], None]:
    """Progress lines that reach the terminal even while pytest captures output."""

    def write(line: str) -> None:
        capture = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if capture is None or reporter is None:
            print(f"{prefix}{line}", flush=True)
            return
        try:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"{prefix}{line}")
        except (OSError, ValueError):  # the run's terminal writer is closed: say it plainly
            print(f"{prefix}{line}", file=sys.__stderr__, flush=True)

    return write


# Per xdist worker: the guest's RAM for its QEMU, as much again for a checkpoint's restore
# and the page cache its disk copies use, and QEMU's own overhead.
WORKER_OVERHEAD_MIB = 512


def workers_for(available_mib: int, cpus: int, guest_mib: int) -> int:
    """As many workers as memory holds guests, at most one per CPU, at least one."""
    per_worker = 2 * guest_mib + WORKER_OVERHEAD_MIB
    return max(1, min(cpus, available_mib // per_worker))


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: workers sized by the host's available memory, not only its CPUs."""
    available_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemAvailable:")
    )
    return workers_for(available_kib // 1024, os.cpu_count() or 1, config.getoption("guest_memory"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" in metafunc.fixturenames:
        if SETUP_ERROR_KEY in metafunc.config.stash:
            # Resolved once, failed once: every later function would fail the same way, each
            # after the same work (an image lookup asks apt, about half a second each).
            metafunc.parametrize("cell", [pytest.param(None, id="unresolved")], scope="session")
            return
        try:
            cell = _session(metafunc.config).cell
        except HarnessError as exc:
            # Reported once, in one line, when collection ends (not an error per module).
            metafunc.config.stash[SETUP_ERROR_KEY] = str(exc)
            metafunc.parametrize("cell", [pytest.param(None, id="unresolved")], scope="session")
            return
        # Under pytest-xdist (-n N --dist loadgroup) a cell's cases stay on one worker, which
        # then builds that cell's image and ready checkpoint once.
        param = pytest.param(cell, marks=pytest.mark.xdist_group(cell.id), id=cell.id)
        metafunc.parametrize("cell", [param], scope="session")


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture scope
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The libvirt cases run last, a module's together: the libvirt domain and a module's
    shared guests then never sit idle through other cases (an idle guest still costs CPU
    under TCG), and a module's guests are booted once."""
    if SETUP_ERROR_KEY in config.stash:
        # Exit 2 as collection errors have: a bisect step skips a build that is not there.
        pytest.exit(f"error: {config.stash[SETUP_ERROR_KEY]}", pytest.ExitCode.INTERRUPTED)

    def libvirt_last(item: pytest.Item) -> tuple[bool, str]:
        libvirt = item.get_closest_marker("libvirt") is not None
        return libvirt, item.nodeid.split("::")[0] if libvirt else ""

    items.sort(key=libvirt_last)


def pytest_unconfigure(config: pytest.Config) -> None:
    if SESSION_KEY in config.stash:
        config.stash[SESSION_KEY].close()
    if PROGRESS_KEY in config.stash:
        progress.use(*config.stash[PROGRESS_KEY])


@pytest.fixture(scope="session")
def harness_session(request: pytest.FixtureRequest) -> HarnessSession:
    return _session(request.config)


@pytest.fixture
def guest(
    request: pytest.FixtureRequest, harness_session: HarnessSession, cell: Cell
) -> Iterator[Machine]:
    """The case's own guest of the cell: restored from the ready checkpoint (direct QEMU), so
    that no case inherits what an earlier one did to its guest; ``--cold-boot`` boots it."""
    machine = harness_session.fresh_guest(_case_label(request.node.name, cell))
    machine.boot()
    yield machine
    harness_session.discard(machine)


def _case_label(test_name: str, cell: Cell) -> str:
    """The test's name without the cell id (the cell is already the evidence folder)."""
    return test_name.replace(f"[{cell.id}]", "").replace(f"[{cell.id}-", "[")


@pytest.fixture
def libvirt_guest(harness_session: HarnessSession, cell: Cell) -> Iterator[Machine]:
    """The cell's guest as a libvirt domain, restored for each case from the run's libvirt
    checkpoint (``--cold-boot``: booted), and shut off after it."""
    machine = harness_session.libvirt_guest()
    yield machine
    machine.stop()


@pytest.fixture
def guest_factory(harness_session: HarnessSession, cell: Cell) -> Iterator[Callable[..., Machine]]:
    """Variant guests of the cell (e.g. S3 disabled), booted on first use, stopped after the
    test: an idle guest under TCG still costs CPU."""
    made: list[Machine] = []

    def make(name: str, extra_args: Sequence[str] = (), backend: str | None = None) -> Machine:
        if (backend or harness_session.settings.backend) == "qemu":
            machine = harness_session.fresh_guest(name, tuple(extra_args))
        else:
            machine = harness_session.machine(name, tuple(extra_args), backend)
        made.append(machine)
        return machine

    yield make
    for machine in made:
        machine.stop()
        harness_session.discard(machine)


@pytest.fixture
def power_cycle(request: pytest.FixtureRequest, cell: Cell) -> PowerCycle:
    """Run a transition on the case's guest unless ``machine=`` is given (see PowerCycle)."""
    series_list = request.node.stash.setdefault(SERIES_KEY, [])
    report = request.config.stash[REPORT_KEY]
    marker = request.node.get_closest_marker("cycles")
    default_cycles = request.config.getoption("cycles") or (marker.args[0] if marker else 1)
    localise_failures = request.config.getoption("pm_test_on_failure")
    options = CycleOptions(
        clock_tolerance_s=request.config.getoption("clock_tolerance"),
        resync_clock=request.config.getoption("clock_resync"),
    )

    def run(
        transition: Transition,
        *,
        machine: Machine | None = None,
        faults: Sequence[Fault] = (),
        cycles: int | None = None,
        resync_clock: bool | None = None,
    ) -> CycleSeries:
        target = machine or request.getfixturevalue("guest")
        count = cycles or default_cycles
        chosen = options if resync_clock is None else replace(options, resync_clock=resync_clock)
        outcomes = run_series(target, transition, count, faults, chosen)
        # Each cycle is followed by its rewakes (a save image restored again), each judged.
        series = CycleSeries(transition.id, count * (1 + len(transition.then)), outcomes)
        if localise_failures and series.verdict is Verdict.FAIL:
            series.localisation = localise(target, pm_test_state(transition.needs.power_states))
        for outcome in series.outcomes:
            _annotate(outcome, target, report.directory)
        series_list.append(series)
        return series

    return run


@pytest.fixture
def group_cycle(request: pytest.FixtureRequest, cell: Cell) -> GroupCycle:
    """Run one transition that acts on several guests at once (a host service); one recorded
    series per guest."""
    series_list = request.node.stash.setdefault(SERIES_KEY, [])
    report = request.config.stash[REPORT_KEY]
    options = CycleOptions(clock_tolerance_s=request.config.getoption("clock_tolerance"))

    def run(
        transition: Transition,
        machines: Sequence[Machine],
        *,
        checks: Sequence[Check] = DEFAULT_CHECKS,
        probes: tuple[Probe, ...] = DEFAULT_PROBES,
    ) -> list[CycleSeries]:
        outcomes = run_group_cycle(
            machines, transition, checks=checks, probes=probes, options=options
        )
        made = []
        for machine, outcome in zip(machines, outcomes, strict=True):
            outcome.evidence.transition = f"{transition.id}@{machine.name}"
            _annotate(outcome, machine, report.directory)
            made.append(CycleSeries(transition.id, 1, [outcome]))
        series_list.extend(made)
        return made

    return run


def _annotate(outcome: CycleOutcome, machine: PlatformRecords, report_dir: Path) -> None:
    facts = outcome.evidence.after or outcome.evidence.before
    outcome.combination = {
        "kernel": facts.get("guest.kernel"),
        "bios_version": facts.get("guest.bios_version"),
        **machine.platform_facts(),
    }
    evidence_dir = machine.serial_log.parent
    found: dict[str, Path | str | None] = {
        **outcome.artifacts,  # e.g. the screendump of a guest that did not come back
        "serial_log": machine.serial_log,
        "events_log": machine.events.path,
        "qemu_argv": evidence_dir / "qemu-argv.txt",
        "qemu_output": evidence_dir / "qemu-output.log",
    }
    outcome.artifacts = {
        name: os.path.relpath(path, report_dir)
        for name, path in found.items()
        if path is not None and Path(path).is_file()
    }


def expect_pass(series: CycleSeries) -> None:
    """Turn a verdict into the pytest outcome a user expects from a test case: PASS passes,
    UNSUPPORTED skips, a FAIL that is a known issue xfails, anything else fails."""
    if series.verdict is Verdict.PASS:
        return
    if series.verdict is Verdict.UNSUPPORTED:
        pytest.skip(f"UNSUPPORTED: {series.reason}")
    if series.verdict is Verdict.FAIL and (issue := _known_issue(series)) is not None:
        series.known_issue = issue.text
        pytest.xfail(f"KNOWN ISSUE: {issue.text} -- {series.reason}")
    pytest.fail(f"{series.verdict.value}: {series.reason}", pytrace=False)


def expect_judged(series: CycleSeries) -> None:
    """For a case that injects a fault and asserts which check names it: a cycle that failed
    before any check ran, at a known issue, cannot judge the fault, so the case xfails with
    that issue; anything else is left to the case's own assertions."""
    last = series.last
    if last.verdict is Verdict.FAIL and not last.checks:
        issue = _known_issue(series)
        if issue is not None:
            series.known_issue = issue.text
            pytest.xfail(f"KNOWN ISSUE: {issue.text} -- the fault was not judged: {series.reason}")


def _known_issue(series: CycleSeries) -> known_issues.KnownIssue | None:
    combination = series.last.combination
    return known_issues.find(
        known_issues.load(),
        series.transition,
        str(combination.get("kernel") or ""),
        series.reason,
        str(combination.get("qemu_version") or ""),
        str(combination.get("accel") or ""),
        cause=series.cause,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    test_report = yield
    if test_report.when == "call" or (test_report.when == "setup" and test_report.failed):
        _record(item, test_report)
    return test_report


def _record(item: pytest.Item, test_report: pytest.TestReport) -> None:
    series_list = item.stash.get(SERIES_KEY, [])
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    cell = params.get("cell")
    verdicts = [series.verdict.value for series in series_list]
    if cell is not None:
        item.user_properties.append(("cell", cell.id))
    for verdict in verdicts:
        item.user_properties.append(("verdict", verdict))
    report_dir = item.config.stash[REPORT_KEY].directory
    attachments = {
        str((report_dir / path).resolve())
        for series in series_list
        for outcome in series.outcomes
        for path in outcome.artifacts.values()
    }
    for path in sorted(attachments):  # JUnit consumers (Jenkins, GitLab) link these
        item.user_properties.append(("attachment", path))
    item.config.stash[REPORT_KEY].add(
        {
            "test": item.nodeid,
            "cell": cell.id if cell is not None else None,
            "outcome": test_report.outcome,
            "when": test_report.when,
            "duration_s": round(test_report.duration, 2),
            "verdicts": verdicts,
            "series": [series.to_json() for series in series_list],
            "error": test_report.longreprtext[-2000:] if test_report.failed else "",
        }
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """The test under way, named in results.json if the run is interrupted during it (an
    interrupt skips the line after ``yield``)."""
    report = item.config.stash[REPORT_KEY]
    report.in_progress = item.nodeid
    result = yield
    report.in_progress = None
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    report = session.config.stash[REPORT_KEY]
    if SESSION_KEY in session.config.stash:
        cell = session.config.stash[SESSION_KEY].resolved_cell
        if cell is not None:
            report.add_cell(follow_guest_firmware(cell, report.records))
    interrupted_by = received() or (
        "KeyboardInterrupt" if exitstatus == pytest.ExitCode.INTERRUPTED else None
    )
    path = report.write(int(exitstatus), interrupted_by)
    run_page.write(path)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash[REPORT_KEY]
    counts: dict[str, int] = {}
    for record in report.records:
        for verdict in record["verdicts"]:
            counts[verdict] = counts.get(verdict, 0) + 1
    terminalreporter.write_sep("-", "s3s4 harness")
    if counts:
        terminalreporter.write_line(
            "verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        )
    terminalreporter.write_line(
        f"report: {report.directory}/results.json, junit.xml and report.html"
    )
