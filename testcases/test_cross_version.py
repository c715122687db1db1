"""Across versions, as a host upgrade takes a guest: saved by this run's (stable) libvirt and
QEMU, restored by a newer libvirt stack; or asleep in S3 and migrated from this run's QEMU to
a newer one (and back), then woken. Each with the full checks (it really slept or was saved,
it resumed rather than rebooted, its processes carried on, its network and disks work) and
the machine type pinned as a management layer pins it, the same versioned type on both
sides. Opt-in: ``--newer-stack SUITE`` for the libvirt cases, ``--newer-qemu VERSION`` for
the migrations; without them these cases are skipped.

Each case's id ends with its version pair, older side first, then the pinned machine type
(``...-libvirt9.0.0-q7.2.22-to-libvirt12.8.0-q11.1.3-pc-i440fx-7.2``); results.json has it
as ``crossing`` in each cycle's combination, beside ``crossed`` (what the hand-over said)
and, for a guest in S3, ``s3_across`` (which of the versions' promises it showed)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from harness.checks.verdict import CycleSeries
from harness.cross_version import (
    NewerStack,
    Side,
    pair_id,
    pinned_machine_type,
    qemu_side,
    stable_side,
    stack_side,
)
from harness.errors import HarnessError
from harness.machines.protocol import Machine
from harness.machines.qemu.machine import QemuMachine
from harness.plugin import PowerCycle, expect_pass
from harness.plugin.options import settings_from
from harness.session import HarnessSession
from harness.transitions.cross_version import (
    CROSSED,
    keeps_s3_across_migration,
    managedsave_across,
    s3_migrated_across,
    s3_then_save_across,
)

pytestmark = pytest.mark.cross_version
log = logging.getLogger(__name__)

# The fixture each kind of case takes its version pair from, and the option that asks for it.
PAIRS = {"libvirt_pair": "newer_stack", "qemu_pair": "newer_qemu"}
FLAGS = {"newer_stack": "--newer-stack SUITE", "newer_qemu": "--newer-qemu VERSION"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture, option in PAIRS.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, [_pair_param(metafunc.config, option)], scope="module")


def _pair_param(config: pytest.Config, option: str) -> Any:
    """The case's version pair as its id; skipped where the option is not given, and an
    error in the case (not at collection) where a side cannot be found."""
    wanted = config.getoption(option)
    if not wanted:
        reason = f"cross-version case: {FLAGS[option]} names the newer side to cross to"
        return pytest.param(
            None, id=f"no-{option.replace('_', '-')}", marks=pytest.mark.skip(reason=reason)
        )
    settings = settings_from(config)
    try:
        if option == "newer_stack":
            older = stable_side(settings, log.info, with_libvirt=True)
            newer = stack_side(wanted, log.info)
        else:
            older = stable_side(settings, log.info, with_libvirt=False)
            newer = qemu_side(wanted, settings.offline)
        pinned = pinned_machine_type(settings)
    except HarnessError as exc:
        return pytest.param(exc, id=f"{option.replace('_', '-')}-{wanted}-unresolved")
    if older == newer:
        reason = f"the newer side runs the same versions as this run ({older.label})"
        return pytest.param(
            None, id=pair_id(older, newer, pinned), marks=pytest.mark.skip(reason=reason)
        )
    return pytest.param((older, newer, pinned), id=pair_id(older, newer, pinned))


Pair = tuple[Side, Side, str]


def _resolved(pair: Pair | HarnessError) -> Pair:
    if isinstance(pair, HarnessError):
        raise pair
    return pair


@pytest.fixture(scope="module")
def newer(request: pytest.FixtureRequest, harness_session: HarnessSession) -> Iterator[NewerStack]:
    """The newer libvirt stack and QEMU this module's guests cross to."""
    stack = NewerStack(
        harness_session,
        request.config.getoption("newer_stack"),
        request.config.getoption("newer_qemu"),
        log.info,
    )
    yield stack
    stack.close()


@pytest.fixture
def crossing_domain(libvirt_guest: Machine, newer: NewerStack) -> Iterator[Machine]:
    """The stable session's libvirt domain, handed back to the stable daemon after the case."""
    yield libvirt_guest
    newer.hand_back(libvirt_guest)


def crossed(series: CycleSeries) -> dict[str, Any]:
    """What the last hand-over said (its CROSSED event)."""
    found = [
        e["data"]
        for outcome in series.outcomes
        for e in outcome.evidence.events
        if e["event"] == CROSSED
    ]
    assert found, f"the guest never crossed: {series.reason}"
    return dict(found[-1])


def event_names(series: CycleSeries) -> list[str]:
    return [e["event"] for e in series.outcomes[-1].evidence.events]


def annotate(series: CycleSeries, pair: Pair, **facts: Any) -> None:
    """The version pair (and what crossed) in every cycle's combination in results.json."""
    older, newer, pinned = pair
    for outcome in series.outcomes:
        outcome.combination["crossing"] = pair_id(older, newer, pinned)
        outcome.combination["crossed"] = next(
            (e["data"] for e in outcome.evidence.events if e["event"] == CROSSED), {}
        )
        outcome.combination.update(facts)


@pytest.mark.libvirt
def test_managedsave_restored_by_newer_libvirt(
    power_cycle: PowerCycle, crossing_domain: Machine, newer: NewerStack, libvirt_pair: Any
) -> None:
    """libvirt-guests across a host upgrade: managedsave on the stable daemon; its image put
    in the newer daemon's save directory, the definition (its pinned machine type) defined
    there; ``start`` on the newer daemon restores it, and it carries on."""
    pair = _resolved(libvirt_pair)
    series = power_cycle(managedsave_across(newer.hand_over), machine=crossing_domain)
    annotate(series, pair)
    expect_pass(series)
    handed = crossed(series)
    older, newest, pinned = pair
    assert handed["machine_type"] == pinned, handed
    assert (handed["from_libvirt"], handed["to_libvirt"]) == (older.libvirt, newest.libvirt)
    assert handed["managed_save_moved_to"], handed
    names = event_names(series)
    assert names.index("STOPPED/SAVED") < names.index(CROSSED) < names.index("STARTED/RESTORED")
    assert series.last.combination["qemu_version"] == newest.qemu, series.last.combination


@pytest.mark.libvirt
def test_guest_in_s3_saved_then_restored_by_newer_libvirt(
    power_cycle: PowerCycle, crossing_domain: Machine, newer: NewerStack, libvirt_pair: Any
) -> None:
    """A guest in S3 (dompmsuspend mem) saved by the stable stack, restored and woken by the
    newer one. The saving QEMU decides what the image holds: before 9.0 it wakes the guest as
    the save starts (the image is of a guest awake; the newer stack restores it paused and
    resumes it); from 9.0 the image holds it asleep, and the newer stack must wake it
    (dompmwakeup) after the restore."""
    pair = _resolved(libvirt_pair)
    series = power_cycle(s3_then_save_across(newer.hand_over), machine=crossing_domain)
    names = event_names(series)
    kept, promise = s3_promise(
        pair[0].qemu, " and woken after the restore", "as the save started; restored awake"
    )
    annotate(series, pair, s3_across=promise)
    if CROSSED not in names:
        expect_pass(series)  # it ended before the hand-over: the cycle's own verdict
    saved = names.index("STOPPED/SAVED")
    woken = ("PMWAKEUP" in names[:saved], "PMWAKEUP" in names[saved:])
    assert woken == (not kept, kept), f"expected: {promise}; events: {names}"
    expect_pass(series)


def s3_promise(sender: str, kept_then: str, woken_when: str) -> tuple[bool, str]:
    """Whether QEMU ``sender`` keeps a guest in S3 across a save or migration (from 9.0), and
    that promise in words: kept (``kept_then``), or woken (``woken_when``)."""
    if keeps_s3_across_migration(sender):
        return True, f"kept in S3 by QEMU {sender} (>= 9.0){kept_then}"
    return False, f"woken by QEMU {sender} (< 9.0) {woken_when}"


def _migrated(
    power_cycle: PowerCycle, machine: Machine, cross: Any, transition_id: str
) -> CycleSeries:
    return power_cycle(s3_migrated_across(cross, transition_id), machine=machine)


def _judge_migration(series: CycleSeries, pair: Pair, source: str) -> None:
    """The QEMU that sends the guest decides: before 9.0 it wakes it as the migration
    completes (WAKEUP before the crossing, the destination runs it); from 9.0 the stream
    holds it asleep and it is woken on the destination (WAKEUP after the crossing)."""
    names = event_names(series)
    kept, promise = s3_promise(
        source,
        ", woken by system_wakeup after the load",
        "as the migration completed; arrived awake",
    )
    annotate(series, pair, s3_across=promise)
    if CROSSED not in names:
        expect_pass(series)
    handed = crossed(series)
    at = names.index(CROSSED)
    suspended = names.index("SUSPEND")
    run_state = "suspended" if kept else "running"
    assert handed["run_state_after_load"] == run_state, f"expected: {promise}; {handed}"
    assert ("WAKEUP" in names[suspended:at]) is not kept, f"expected: {promise}; events: {names}"
    expect_pass(series)


@pytest.fixture
def pinned_guest(request: pytest.FixtureRequest, newer: NewerStack) -> Iterator[QemuMachine]:
    """A direct-QEMU guest of the stable QEMU on the pinned machine type, restored from the
    run's ready checkpoint; discarded after the case."""
    machine = newer.pinned_qemu_guest(request.node.name.split("[")[0])
    try:
        machine.boot()
        yield machine
    finally:
        newer.stable.discard(machine)


def test_guest_in_s3_migrated_to_newer_qemu(
    power_cycle: PowerCycle, pinned_guest: QemuMachine, newer: NewerStack, qemu_pair: Any
) -> None:
    """A guest in S3 (guest-suspend-ram) migrated from the stable QEMU to the newer one on
    the same pinned machine type, woken there where it still sleeps, then checked."""
    pair = _resolved(qemu_pair)
    target = newer.newer_config(pinned_guest)
    series = _migrated(
        power_cycle,
        pinned_guest,
        lambda machine: newer.migrate(machine, target),
        "s3-migrated-to-newer",
    )
    assert target.machine == pair[2], (target.machine, pair)
    _judge_migration(series, pair, pair[0].qemu)


def test_guest_in_s3_migrated_back_to_stable_qemu(
    power_cycle: PowerCycle, pinned_guest: QemuMachine, newer: NewerStack, qemu_pair: Any
) -> None:
    """And back, as QEMU's migration compatibility rules promise for the same machine type in
    both directions (docs/devel/migration/compatibility.rst, newer to older): the guest
    migrated to the newer QEMU (the forward case, which must pass), put in S3 there,
    migrated back to the stable QEMU, woken there, then checked."""
    older, newest, pinned = _resolved(qemu_pair)
    stable_config = pinned_guest.config
    target = newer.newer_config(pinned_guest)
    forward = _migrated(
        power_cycle, pinned_guest, lambda m: newer.migrate(m, target), "s3-migrated-to-newer"
    )
    annotate(forward, (older, newest, pinned))
    if forward.verdict.value != "PASS":
        pytest.fail(f"the forward leg did not pass, so there is no way back: {forward.reason}")
    back = _migrated(
        power_cycle, pinned_guest, lambda m: newer.migrate(m, stable_config), "s3-migrated-back"
    )
    _judge_migration(back, (newest, older, pinned), newest.qemu)
