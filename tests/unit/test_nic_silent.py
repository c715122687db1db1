"""A NIC whose link reads up but that receives nothing: named from its rx_packets, read through
the agent before and after the echo over ssh, without waiting out ssh's bound."""

from pathlib import Path

from harness.checks import live_probes
from harness.checks.judges import virtio_net_healthy
from harness.checks.verdict import CycleEvidence
from tests.unit.fake_machine import FakeMachine

UP = {
    "net.iface": "ens3",
    "net.driver": "e1000e",
    "net.operstate": "up",
    "net.carrier": "1",
    "net.rx_packets": "1000",  # what FakeMachine's NIC always reads: it receives nothing
}


def test_an_echo_lost_on_a_nic_that_received_nothing_names_the_nic(tmp_path: Path) -> None:
    after = {**UP, "tcp.echo": "got b''"}
    silent = live_probes.nic_silent(FakeMachine(tmp_path), after, 30.0)  # type: ignore[arg-type]
    assert silent == (
        "the NIC e1000e ens3 received nothing while the echo over ssh waited (rx_packets "
        "stayed at 1000), though its link reads up (carrier 1)"
    )
    assert after["net.rx_after_echo"] == "1000"
    detail = virtio_net_healthy(CycleEvidence("s3-agent", before=UP, after=after)).detail
    assert detail.startswith("e1000e ens3: link up but received nothing while the echo"), detail


def test_packets_that_arrived_make_it_a_slow_guest_not_a_dead_link(tmp_path: Path) -> None:
    after = {**UP, "net.rx_packets": "990", "tcp.echo": "got b''"}
    machine = FakeMachine(tmp_path)
    assert live_probes.nic_silent(machine, after, 30.0) == ""  # type: ignore[arg-type]
    assert after["net.rx_after_echo"] == "1000"
    detail = virtio_net_healthy(CycleEvidence("s3-agent", before=UP, after=after)).detail
    assert "received nothing" not in detail, detail


def test_an_echo_that_came_back_none_or_one_cut_short_reads_nothing_more(
    tmp_path: Path,
) -> None:
    """An echo that ended at once (its channel closed) sent nothing to wait for."""
    machine = FakeMachine(tmp_path)
    lost = {**UP, "tcp.echo": "got b''"}
    for after, waited in (({**UP, "tcp.echo": "ok"}, 30.0), (dict(UP), 30.0), (lost, 0.1)):
        assert live_probes.nic_silent(machine, after, waited) == ""  # type: ignore[arg-type]
        assert "net.rx_after_echo" not in after
    assert machine.open_files == []
