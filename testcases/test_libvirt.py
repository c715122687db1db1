"""Guests driven through a real libvirt daemon: the in-guest paths through the libvirt backend,
and the host-side paths only libvirt has, each followed by the full checks. The domain's
events (lifecycle, PM, agent) and its state after every host step are in the report."""

import pytest

from harness.checks.verdict import CycleSeries
from harness.machines.protocol import Machine
from harness.plugin import PowerCycle, expect_pass
from harness.transitions import host as host_paths
from harness.transitions.catalogue import S3_SYSTEMCTL
from harness.transitions.parts import Transition

pytestmark = pytest.mark.libvirt


def states(series: CycleSeries) -> list[tuple[str, str]]:
    """The (step, libvirt state) pairs the host paths recorded, in order."""
    return [
        (e["data"]["after"], e["data"]["state"])
        for outcome in series.outcomes
        for e in outcome.evidence.events
        if e["event"] == "STATE"
    ]


def event_names(series: CycleSeries) -> list[str]:
    return [e["event"] for e in series.outcomes[0].evidence.events]


def test_in_guest_path_through_libvirt(power_cycle: PowerCycle, libvirt_guest: Machine) -> None:
    """The same transition and checks as on the direct QEMU backend, judged on libvirt's
    events instead of QMP's (S4 through libvirt: dompmsuspend-disk; every case: --backend
    libvirt)."""
    series = power_cycle(S3_SYSTEMCTL, machine=libvirt_guest)
    expect_pass(series)
    assert series.last.combination["backend"] == "libvirt"


@pytest.mark.parametrize(
    "transition",
    [host_paths.DOMPM_MEM, host_paths.DOMPM_DISK, host_paths.DOMPM_HYBRID],
    ids=lambda t: t.id,
)
def test_dompmsuspend(
    power_cycle: PowerCycle, libvirt_guest: Machine, transition: Transition
) -> None:
    """virsh dompmsuspend --target mem|disk|hybrid; woken by dompmwakeup, or started again
    for disk."""
    expect_pass(power_cycle(transition, machine=libvirt_guest))


@pytest.mark.parametrize(
    ("transition", "saved", "restored"),
    [
        pytest.param(t, saved, restored, id=t.id)
        for t, saved, restored in (
            (host_paths.SAVE_RESTORE, "STOPPED/SAVED", "STARTED/RESTORED"),
            (host_paths.MANAGEDSAVE_START, "STOPPED/SAVED", "STARTED/RESTORED"),
            (host_paths.SNAPSHOT_HALT_REVERT, "STOPPED/FROM_SNAPSHOT", "STARTED/FROM_SNAPSHOT"),
        )
    ],
)
def test_host_save_paths(
    power_cycle: PowerCycle,
    libvirt_guest: Machine,
    transition: Transition,
    saved: str,
    restored: str,
) -> None:
    """save/restore, managedsave/start, snapshot-create --halt/revert: the guest's memory is
    kept by the host, so it must come back exactly where it was (same boot, same processes)."""
    series = power_cycle(transition, machine=libvirt_guest)
    expect_pass(series)
    names = event_names(series)
    assert names.index(saved) < names.index(restored), names
    assert states(series)[-1][1].startswith("running"), states(series)
    lag = float(series.last.evidence.after["clock.step_before_resync_s"])
    assert lag < 0, f"a guest kept off for seconds should come back with its clock behind: {lag}"


def test_save_image_restored_twice_with_disks_reverted(
    power_cycle: PowerCycle, libvirt_guest: Machine
) -> None:
    """A save image may be restored more than once only if storage is reverted to the point of
    the save: the disks are snapshotted at save time, and the guest is consistent after each
    restore (same boot, sentinel, data written before the save)."""
    series = power_cycle(host_paths.SAVE_RESTORE_TWICE, machine=libvirt_guest)
    expect_pass(series)
    assert [o.verdict.value for o in series.outcomes] == ["PASS", "PASS"], series.reason
    first, second = series.outcomes
    assert first.evidence.before == second.evidence.before  # one reference: the save point
    assert first.evidence.after["guest.boot_id"] == second.evidence.after["guest.boot_id"]


# QEMU 9.0 and later keep a suspended guest's run state across a migration, and so across
# libvirt's save and restore (QEMU's "migration: preserve suspended runstate"); before 9.0,
# QEMU woke the guest as the migration started.
KEEPS_S3_ACROSS_SAVE_SINCE = (9, 0)


def keeps_s3_across_save(qemu_version: str) -> bool:
    major, minor = (int(part) for part in qemu_version.split(".")[:2])
    return (major, minor) >= KEEPS_S3_ACROSS_SAVE_SINCE


@pytest.mark.crossed
@pytest.mark.parametrize(
    "transition", [host_paths.S3_THEN_SAVE, host_paths.S3_THEN_MANAGEDSAVE], ids=lambda t: t.id
)
def test_guest_in_s3_then_saved(
    power_cycle: PowerCycle, libvirt_guest: Machine, transition: Transition
) -> None:
    """Each QEMU judged by what it promises. Before 9.0 (measured on 7.2 under libvirt 9.0) the
    guest is woken (PMWAKEUP) as the save starts, and the image comes back PAUSED, awake, and
    needs a resume (libvirt-guests does not resume it). From 9.0 (measured on 11.1 under
    libvirt 12.8) it is saved asleep and restored asleep: it comes back PAUSED, and once
    resumed it still sleeps until woken (dompmwakeup), although libvirt, which learns of S3
    only from QEMU's SUSPEND event, may call it running."""
    series = power_cycle(transition, machine=libvirt_guest)
    names = event_names(series)
    steps = dict(states(series))
    if "dompmsuspend" not in steps:
        expect_pass(series)  # it ended before libvirt had it in S3: the cycle's own verdict
    assert steps["dompmsuspend"].startswith("pmsuspended"), steps
    qemu = str(series.last.combination["qemu_version"])
    saved = names.index("STOPPED/SAVED")
    restart = "restore" if transition is host_paths.S3_THEN_SAVE else "start"
    if keeps_s3_across_save(qemu):
        assert "PMWAKEUP" not in names[:saved], (
            f"QEMU {qemu} keeps a guest in S3 across a save (since 9.0), yet it woke before "
            f"the save: {names}"
        )
        assert "dompmwakeup" in steps and "PMWAKEUP" in names[saved:], (
            f"QEMU {qemu} restores a guest saved in S3 still in S3, yet it needed no wake-up: "
            f"{steps}, {names}"
        )
    else:
        assert "PMWAKEUP" in names[:saved], (
            f"QEMU {qemu} wakes a guest in S3 as its save starts (before 9.0), yet it did not: "
            f"{names}"
        )
        assert steps[restart].startswith("paused") and "resume" in steps, steps
    expect_pass(series)


@pytest.mark.crossed
def test_guest_in_s3_cannot_be_snapshotted(power_cycle: PowerCycle, libvirt_guest: Machine) -> None:
    """snapshot-create --halt of a guest in S3 is refused by libvirt: UNSUPPORTED with libvirt's
    own text, and the guest is woken and left usable."""
    series = power_cycle(host_paths.S3_THEN_SNAPSHOT, machine=libvirt_guest)
    assert series.verdict.value == "UNSUPPORTED", series.reason
    assert "snapshots of PMSUSPENDED guests" in series.reason
    assert "PMWAKEUP" in event_names(series)
    assert libvirt_guest.run("true").ok
