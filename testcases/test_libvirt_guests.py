"""The libvirt-guests service, run for real (libvirt-guests.sh stop, then start) with a
configuration file the harness writes, on several guests at once; each guest must come back
to its state from before the host "shutdown", or stay off when the settings say so."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.checks.judges import AFTER_REBOOT_CHECKS, DEFAULT_CHECKS
from harness.checks.probes import AFTER_REBOOT_PROBES, DEFAULT_PROBES
from harness.machines.protocol import Machine
from harness.matrix.cell import Cell
from harness.plugin import GroupCycle, expect_pass
from harness.session import HarnessSession
from harness.transitions.guests_service import (
    GuestsService,
    GuestsServiceConfig,
    service_transition,
)

pytestmark = [pytest.mark.libvirt, pytest.mark.libvirt_guests]

SECOND_GUEST = "svc-b"
SERVICE_TIMEOUT_S = 600.0
VARIANTS: dict[str, dict[str, Any]] = {
    # What a host owner most often sets: save at shutdown, bring back at boot, clock synced.
    "suspend-start": dict(
        on_shutdown="suspend", on_boot="start", bypass_cache=True, sync_time=True, start_delay=1
    ),
    # Saved at shutdown, left off at boot: each stays off with its managed save, which the
    # harness then starts to prove it intact.
    "suspend-ignore": dict(on_shutdown="suspend", on_boot="ignore", parallel_shutdown=2),
    # Clean ACPI shutdown of both in parallel, then a fresh boot of each, START_DELAY apart as
    # a host owner sets it against a boot storm: TCG guests booting side by side, one per core,
    # each take several times as long as one booting alone, and TCG's timer stalls strike there.
    "shutdown-start": dict(
        on_shutdown="shutdown",
        on_boot="start",
        parallel_shutdown=2,
        shutdown_timeout=240,
        start_delay=20,
    ),
}


@pytest.fixture(scope="module")
def service_guests(harness_session: HarnessSession, cell: Cell) -> Iterator[list[Machine]]:
    """The cell's libvirt guest (from the checkpoint) and a second one (booted), shared by
    this module's cases: a boot costs more than any case here."""
    first = harness_session.libvirt_guest()
    second = harness_session.machine(SECOND_GUEST, backend="libvirt")
    second.boot()
    yield [first, second]
    first.stop()
    second.stop()


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_libvirt_guests_stop_start(
    group_cycle: GroupCycle,
    service_guests: list[Machine],
    harness_session: HarnessSession,
    tmp_path: Path,
    variant: str,
) -> None:
    host = harness_session.libvirt_host()
    foreign = host.foreign_active_domains()
    if foreign:
        pytest.skip(f"libvirt-guests would act on guests that are not the harness's: {foreign}")
    config = GuestsServiceConfig(uris=host.uri, **VARIANTS[variant])
    service = GuestsService(config, tmp_path / "service", SERVICE_TIMEOUT_S)
    shutdown = config.on_shutdown == "shutdown"
    series = group_cycle(
        service_transition(service),
        service_guests,
        checks=AFTER_REBOOT_CHECKS if shutdown else DEFAULT_CHECKS,
        probes=AFTER_REBOOT_PROBES if shutdown else DEFAULT_PROBES,
    )
    assert [run.action for run in service.runs] == ["stop", "start"]
    for one in series:
        steps = {
            e["data"]["after"]: e["data"]["state"]
            for e in one.last.evidence.events
            if e["event"] == "STATE"
        }
        assert steps["libvirt-guests stop"] == (
            "shutoff/shutdown" if shutdown else "shutoff/saved"
        ), steps
        if config.on_boot == "ignore":
            assert steps["libvirt-guests start"].startswith("shutoff"), steps
        else:
            assert steps["libvirt-guests start"].startswith("running"), steps
    for one in series:
        expect_pass(one)
