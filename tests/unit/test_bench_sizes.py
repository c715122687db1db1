"""The sizes benchmark's pure parts: the kernel's hibernation records, the host disk probe,
QEMU's counters read from /proc, and the tables."""

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.tools import bench_s4, bench_sizes, bench_sleep_cost
from harness.tools.bench_sleep_cost import Counters

S4_CONSOLE = """\
[   44.093693] PM: hibernation: hibernation entry
[   44.479782] PM: hibernation: Allocated 203284 kbytes in 0.30 seconds (677.61 MB/s)
[   50.688147] PM: hibernation: Wrote 193760 kbytes in 5.80 seconds (33.40 MB/s)
[    0.000000] Linux version 6.1.0-57-amd64
[   14.864761] PM: Image loading done
[   14.865172] PM: hibernation: Read 193760 kbytes in 8.55 seconds (22.66 MB/s)
[   45.001860] PM: hibernation: hibernation exit
""".splitlines()


def test_image_size_and_throughputs_come_from_the_kernels_records() -> None:
    transfer = bench_s4.image_transfer(S4_CONSOLE)
    assert transfer == bench_s4.ImageTransfer(193760, 5.80, 193760, 8.55)
    # The kernel's own MB/s, to its rounding: MB is 1000 KiB.
    assert transfer.write_mb_s == pytest.approx(33.40, abs=0.01)
    assert transfer.read_mb_s == pytest.approx(22.66, abs=0.01)


def test_older_wording_is_read_too() -> None:
    lines = ["PM: Wrote 1000 kbytes in 1.00 seconds (1.00 MB/s)", "PM: Read 500 kbytes in 0.50 s"]
    assert bench_s4.image_transfer(lines) is None  # "s" is not the kernel's "seconds"
    lines[1] = "PM: Read 500 kbytes in 0.50 seconds (1.00 MB/s)"
    assert bench_s4.image_transfer(lines) == bench_s4.ImageTransfer(1000, 1.0, 500, 0.5)


def test_a_read_before_the_write_or_none_at_all_gives_no_transfer() -> None:
    read, wrote = S4_CONSOLE[5], S4_CONSOLE[2]
    assert bench_s4.image_transfer([read, wrote]) is None
    assert bench_s4.image_transfer(S4_CONSOLE[:5]) is None
    assert bench_s4.image_transfer([]) is None


def _row(
    gib: int, cycle: float, write: float, read: float, guest: float | None = None
) -> bench_s4.ScalingRow:
    transfer = bench_s4.ImageTransfer(gib * 100_000, write, gib * 100_000, read)
    return bench_s4.ScalingRow(gib, gib * 128, transfer, cycle, 1, guest)


def test_the_rest_is_the_cycle_less_the_guests_write_and_read() -> None:
    row = _row(4, cycle=60.0, write=20.0, read=25.0)
    assert row.rest_s == pytest.approx(15.0)
    assert row.as_json()["rest_s"] == pytest.approx(15.0)


def test_the_harness_share_is_the_cycle_less_all_the_guests_own_work() -> None:
    assert _row(4, cycle=60.0, write=20.0, read=25.0, guest=52.0).harness_s == pytest.approx(8.0)
    assert _row(4, cycle=60.0, write=20.0, read=25.0).as_json()["harness_s"] is None


def test_scaling_table_prints_a_line_per_cycle_and_the_host_disk() -> None:
    lines: list[str] = []
    disk = bench_s4.DiskThroughput("/run/x", 400.0, 150.0, 1300.0, "O_DIRECT")
    rows = [_row(1, 30, 5, 8), _row(8, 130, 40, 70, guest=120)]
    bench_s4.scaling_table(rows, disk, lines.append)
    assert lines[1].split()[:3] == ["1Gi", "128Mi", "100MB"]
    assert lines[1].split()[-3:] == ["17.0s", "-", "1.0s"]  # rest, harness (unknown), checks
    assert lines[2].split()[-3:] == ["20.0s", "10.0s", "1.0s"]
    assert "write+fsync 150 MB/s, read 1300 MB/s (O_DIRECT)" in lines[3]


def test_host_disk_probe_writes_reads_and_removes_its_file(tmp_path: Path) -> None:
    ticks = iter([0.0, 2.0, 10.0, 10.5])
    disk = bench_s4.host_disk_throughput(tmp_path, 1, clock=lambda: next(ticks))
    assert disk.size_mb == pytest.approx(4096 / 1000)  # rounded up to one 4 MiB chunk
    assert disk.write_mb_s == pytest.approx(4096 / 1000 / 2)
    assert disk.read_mb_s == pytest.approx(4096 / 1000 / 0.5)
    assert disk.read_method in ("O_DIRECT", "page cache dropped (posix_fadvise DONTNEED)")
    assert list(tmp_path.iterdir()) == []


def test_fill_command_counts_64_mib_blocks_and_single_mibs() -> None:
    command = bench_s4.fill_command(130)
    assert command.count("$(seq 2)") == 2  # two 64 MiB blocks, two more MiB
    assert bench_s4.FILL_PATH in command


STAT = "1234 (qemu-system-x86 x) S 1 1234 1234 0 -1 4194560 9 0 0 0 250 150 0 0 20 0 5 0"


def test_cpu_time_is_utime_plus_stime_counted_after_the_name() -> None:
    assert bench_sleep_cost.cpu_seconds(STAT, 100) == pytest.approx(4.0)


def test_wakeups_are_voluntary_plus_involuntary_switches() -> None:
    status = "Name:\tqemu\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n"
    assert bench_sleep_cost.context_switches(status) == 127


def _fake_proc(root: Path, pid: int, tasks: dict[int, int], cmdline: bytes) -> None:
    base = root / str(pid)
    (base / "task").mkdir(parents=True)
    (base / "stat").write_text(STAT)
    (base / "cmdline").write_bytes(cmdline)
    for tid, switches in tasks.items():
        (base / "task" / str(tid)).mkdir()
        (base / "task" / str(tid) / "status").write_text(
            f"voluntary_ctxt_switches:\t{switches}\nnonvoluntary_ctxt_switches:\t0\n"
        )


def test_counters_and_the_qemu_pid_are_read_from_proc(tmp_path: Path) -> None:
    socket = b"/run/s3s4/1-x/qemu-1/qmp.sock"
    _fake_proc(
        tmp_path, 1234, {1234: 10, 1240: 5}, b"/usr/bin/qemu-system-x86_64\0-chardev\0" + socket
    )
    _fake_proc(tmp_path, 99, {99: 1}, b"/usr/bin/python3\0" + socket)  # names it, not QEMU
    counters = bench_sleep_cost.read_counters(1234, tmp_path, clock=lambda: 7.0)
    assert counters.switches == {1234: 10, 1240: 5}
    assert counters.at == 7.0
    assert bench_sleep_cost.qemu_pid(Path(socket.decode()), tmp_path) == 1234
    with pytest.raises(HarnessError, match="no QEMU process names"):
        bench_sleep_cost.qemu_pid(Path("/elsewhere/qmp.sock"), tmp_path)


def test_cost_counts_new_threads_whole_and_ended_ones_not_at_all() -> None:
    before = Counters(0.0, 10.0, {1: 100, 2: 50, 3: 40})
    after = Counters(20.0, 10.5, {1: 140, 2: 50, 4: 20})  # 3 ended, 4 born
    cost = bench_sleep_cost.cost("S3", before, after)
    assert cost.cpu_percent == pytest.approx(2.5)
    assert cost.wakeups_per_s == pytest.approx((40 + 0 + 20) / 20)
    assert cost.threads == 3


def test_cost_table_compares_each_state_with_the_awake_guest() -> None:
    lines: list[str] = []
    costs = [
        bench_sleep_cost.StateCost("awake, idle", 20.0, 40.0, 900.0, 6),
        bench_sleep_cost.StateCost("S3", 20.0, 2.0, 50.0, 6),
    ]
    bench_sleep_cost.cost_table(costs, lines.append)
    assert lines[1].split()[-1] == "1.00x"
    assert lines[2].split()[-3:] == ["2.0%", "50", "0.05x"]


def test_sizes_parse_sorted_and_bad_lists_name_the_fix() -> None:
    assert bench_sizes.parse_sizes("8,1,4", "memory", range(1, 65)) == [1, 4, 8]
    for bad in ("", "0", "1,x", "65"):
        with pytest.raises(HarnessError, match=r"e\.g\. --memory 1,4,8"):
            bench_sizes.parse_sizes(bad, "memory", range(1, 65))


def test_report_prints_every_part_from_its_json() -> None:
    lines: list[str] = []
    row = _row(1, 30, 5, 8)
    payload = {
        "started": "2026-12-06T14:00:00+0000",
        "cell": "k6.1-tcg",
        "memory": [row.as_json()],
        "disk": None,
        "cpus": [
            {"cpus": 1, "s3_cycle_s": 4.0, "s3_guest_s": None, "s4_cycle_s": 30.0, "s4_guest_s": 20}
        ],
        "sleep_cost": [bench_sleep_cost.StateCost("S3", 20.0, 2.0, 50.0, 6).as_json()],
        "wall_s": 321.0,
    }
    bench_sizes.print_report(payload, lines.append)
    text = "\n".join(lines)
    assert "S4 against the guest's memory" in text
    assert "    1      4.0s         -     30.0s     20.0s" in text
    assert lines[-1] == "wall time 321 s"
