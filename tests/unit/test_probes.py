import hashlib
import os
import re
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from harness.checks import facts as fact
from harness.checks.guest_scripts import code
from harness.checks.live_probes import irq_count, judge_stream
from harness.checks.probes import (
    BLOCK,
    BOUNDED_WAIT,
    DEFAULT_PROBES,
    DISK,
    IDENTITY,
    INFLIGHT_MIB,
    INFLIGHT_PACE_S,
    INFLIGHT_STEPS,
    KERNEL_LOG,
    KERNEL_LOG_MARK,
    NET_SCRIPT,
    PATTERN_READY,
    PROBE_FILE,
    SENTINEL,
    STATE_DIR,
    STREAM_CHUNKS,
    STREAM_COMMAND,
    Probe,
    parse_facts,
    probe_seconds,
    script,
)
from harness.cycle import faults
from harness.guest.ssh import CommandResult


def test_facts_are_name_dot_key_lines_only() -> None:
    out = "guest.boot_id=abc\nnoise line\nsentinel.count=12\nbad key=1\n"
    facts = parse_facts(CommandResult("x", 0, out, ""))
    assert facts == {"guest.boot_id": "abc", "sentinel.count": "12"}


def test_one_script_per_phase_covers_every_probe() -> None:
    before, after = script(DEFAULT_PROBES, "before"), script(DEFAULT_PROBES, "after")
    for key in ("guest.boot_id", "sentinel.pid", "disk.written_sha"):
        assert key in before
    for key in ("guest.boot_id", "sentinel.count_later", "disk.reread_sha"):
        assert key in after
    assert "@STATE@" not in before + after and "@FILE@" not in before + after


def run_script(text: str, tmp_path: Path) -> tuple[dict[str, str], float]:
    started = time.monotonic()
    out = subprocess.run(
        ["sh", "-c", text.replace(STATE_DIR, str(tmp_path))], capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    return parse_facts(CommandResult("x", out.returncode, out.stdout, out.stderr)), elapsed


def test_each_probe_is_timed_by_the_guests_clock_and_the_marks_leave_the_facts(
    tmp_path: Path,
) -> None:
    probes = (Probe("quick", "echo quick.a=1", ""), Probe("slow", "sleep 0.3; echo slow.b=2", ""))
    facts, _ = run_script(script(probes, "before"), tmp_path)
    seconds = probe_seconds(facts)
    assert facts == {"quick.a": "1", "slow.b": "2"}
    assert set(seconds) == {"quick", "slow"}
    assert seconds["slow"] >= 0.25 and seconds["quick"] < 0.2


def test_probes_after_the_first_run_side_by_side_and_print_in_order(tmp_path: Path) -> None:
    probes = (
        Probe("first", "echo first.at=$(cat ORDER 2>/dev/null); echo first > ORDER", ""),
        Probe("b", "sleep 0.4; echo b.x=1; echo b.y=2", ""),
        Probe("c", "sleep 0.4; cat ORDER > /dev/null && echo c.saw_first=yes", ""),
    )
    text = script(probes, "before").replace("ORDER", str(tmp_path / "order"))
    facts, elapsed = run_script(text, tmp_path)
    assert set(probe_seconds(facts)) == {"first", "b", "c"}
    assert list(facts) == ["first.at", "b.x", "b.y", "c.saw_first"]  # grouped, in order
    assert facts["c.saw_first"] == "yes"  # the first probe ran before the others
    assert elapsed < 0.75, elapsed  # 0.4 s twice, side by side
    # Each probe's output file is left empty: never printed again by a later capture.
    left = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert left == {"order": "first\n", "facts.b": "", "facts.c": ""}


def test_a_probe_whose_output_file_is_not_written_prints_nothing_stale(tmp_path: Path) -> None:
    probes = (Probe("first", "echo first.x=1", ""), Probe("b", "echo b.x=$B", ""))
    text = script(probes, "before")
    assert run_script(text.replace("$B", "old"), tmp_path)[0]["b.x"] == "old"
    # The probe's subshell never runs (its output cannot be opened): no fact, not the old one.
    broken = text.replace('> "$STATE_DIR/facts.$_p"', '> "/nonexistent/dir/facts.$_p"')
    assert broken != text
    facts, _ = run_script(broken, tmp_path)
    probe_seconds(facts)
    assert facts == {"first.x": "1"}


def test_a_phase_without_fragments_has_no_marks() -> None:
    assert script((Probe("net", "echo net.x=1", ""),), "after").strip() == ""


def _paced_writer(tmp_path: Path) -> tuple[str, Path, Path]:
    """The block probe's before-fragment with the guest's paths pointed into ``tmp_path``:
    its suspend counter a file the test moves, /dev/vdc a file."""
    counter, disk = tmp_path / "success", tmp_path / "vdc"
    counter.write_text("0\n")
    disk.write_bytes(b"")
    (tmp_path / "pattern").write_bytes(os.urandom(INFLIGHT_MIB * 1048576))
    (tmp_path / "pattern.sha").write_text("x\n")
    text = (
        BLOCK.before.replace("/sys/power/suspend_stats/success", str(counter))
        .replace("/sys/block/$data_disk/stat", "/dev/null")
        .replace("/dev/$data_disk", str(disk))
        .replace("oflag=direct", "")
        .replace(STATE_DIR, str(tmp_path))
    )
    return text, counter, disk


def _wait_for(path: Path, limit: float = 20.0) -> str:
    deadline = time.monotonic() + limit
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path.name} never written"
        time.sleep(0.05)
    return path.read_text().strip()


def _start(text: str) -> None:
    subprocess.run(["bash", "-c", text], check=True, capture_output=True)


def _ended(tmp_path: Path, disk: Path, base: int = 0) -> tuple[int, str]:
    """The writer's status, then its steps and why its pacing ended; what it wrote is the
    pattern's head at its offset, and after a sleep one step more went at once."""
    assert _wait_for(tmp_path / "inflight.status") == "0"
    steps, why = _wait_for(tmp_path / "inflight.steps").split()
    written = int(_wait_for(tmp_path / "inflight.mib"))
    assert written == int(steps) + (why == "slept"), (written, steps, why)
    mib = 1048576
    on_disk = disk.read_bytes()
    assert on_disk[: base * mib] == bytes(base * mib)  # nothing before its offset
    assert on_disk[base * mib :] == (tmp_path / "pattern").read_bytes()[: written * mib]
    return int(steps), why


def test_the_in_flight_write_is_paced_until_the_suspend_counter_moves(tmp_path: Path) -> None:
    text, counter, disk = _paced_writer(tmp_path)
    _start(text)
    time.sleep(1.0)  # a few paced steps, as while the guest goes to sleep
    assert not (tmp_path / "inflight.status").read_text()  # still going on
    counter.write_text("1\n")  # the guest slept and woke
    steps, why = _ended(tmp_path, disk)
    assert why == "slept" and 1 <= steps < INFLIGHT_STEPS, (steps, why)


def test_the_in_flight_write_ends_its_pacing_when_the_boot_clock_jumps(tmp_path: Path) -> None:
    """Hibernation leaves the suspend counter alone; the boot clock counts the time away."""
    text, _, disk = _paced_writer(tmp_path)
    uptime = tmp_path / "uptime"
    uptime.write_text("100.00 50.00\n")
    _start(text.replace("/proc/uptime", str(uptime)))
    time.sleep(1.0)
    assert not (tmp_path / "inflight.status").read_text()
    uptime.write_text("115.07 51.00\n")  # 15 s away
    steps, why = _ended(tmp_path, disk)
    assert why == "slept" and 1 <= steps < INFLIGHT_STEPS, (steps, why)


def test_the_probe_after_the_transition_ends_the_pacing_of_a_guest_that_saw_no_sleep(
    tmp_path: Path,
) -> None:
    """A host save pauses the guest without its knowing: the probe after says it is over."""
    text, _, disk = _paced_writer(tmp_path)
    _start(text)
    time.sleep(1.0)
    after = BLOCK.after.replace(STATE_DIR, str(tmp_path)).split("\n")
    notify = f"STATE_DIR={tmp_path}\n" + next(line for line in after if "echo over" in line)
    subprocess.run(["sh", "-c", notify], check=True, timeout=5)
    steps, why = _ended(tmp_path, disk)
    assert why == "after" and 1 <= steps < INFLIGHT_STEPS, (steps, why)
    subprocess.run(["sh", "-c", notify], check=True, timeout=5)  # the writer gone: no block


def _block_after(tmp_path: Path, disk: Path) -> dict[str, str]:
    """The block probe's whole after-fragment on the files of _paced_writer."""
    pattern = (tmp_path / "pattern").read_bytes()
    sums = [hashlib.sha256(pattern[i << 20 : (i + 1) << 20]).hexdigest() for i in range(16)]
    (tmp_path / "slices.sha").write_text("\n".join(sums) + "\n")
    text = (
        BLOCK.after.replace("/sys/block/$data_disk/stat", "/dev/null")
        .replace("/dev/$data_disk", str(disk))
        .replace("iflag=direct", "")
        .replace("oflag=direct", "")
        .replace(STATE_DIR, str(tmp_path))
    )
    return run_script(text, tmp_path)[0]


def test_after_a_sleep_the_writers_step_at_the_wake_is_the_write_after_it(
    tmp_path: Path,
) -> None:
    text, counter, disk = _paced_writer(tmp_path)
    _start(text)
    time.sleep(1.0)
    counter.write_text("1\n")  # the guest slept and woke: the writer writes one step more
    _ended(tmp_path, disk)
    facts = _block_after(tmp_path, disk)
    assert facts["blk.inflight_sha"] == "x", facts  # the pattern's checksum: read back intact
    assert "blk.fresh_sha" not in facts and "blk.fresh_status" not in facts, facts


def test_a_guest_that_saw_no_sleep_writes_a_fresh_mib_after_it(tmp_path: Path) -> None:
    text, _, disk = _paced_writer(tmp_path)
    _start(text)
    time.sleep(1.0)
    facts = _block_after(tmp_path, disk)  # tells the writer it is over, as after a host save
    assert facts["blk.inflight_steps"].endswith(" after"), facts
    assert facts["blk.fresh_status"] == "0", facts
    assert facts["blk.fresh_reread_sha"] == facts["blk.fresh_sha"] != "", facts


def test_the_in_flight_write_paces_every_step_when_nothing_ends_it(tmp_path: Path) -> None:
    text, _, disk = _paced_writer(tmp_path)
    _start(_quick_pace(text))
    assert _ended(tmp_path, disk) == (INFLIGHT_STEPS, "paced")


def _quick_pace(text: str) -> str:
    """The in-flight writer's fragment paced every 0.02 s."""
    paced = text.replace(f"INFLIGHT_PACE_S={INFLIGHT_PACE_S}\n", "INFLIGHT_PACE_S=0.02\n")
    assert paced != text
    return paced


def _after_wait(tmp_path: Path) -> tuple[str, float]:
    """The block probe's after-fragment up to the writer's status: (status, seconds taken)."""
    lines = BLOCK.after.replace(STATE_DIR, str(tmp_path)).split("\n")
    end = next(i for i, line in enumerate(lines) if "blk.inflight_status=" in line)
    facts, elapsed = run_script("\n".join(lines[: end + 1]), tmp_path)
    return facts["blk.inflight_status"], elapsed


def test_the_probe_after_waits_for_a_writer_that_lives_and_not_for_one_that_is_gone(
    tmp_path: Path,
) -> None:
    """A guest that rebooted has no writer and no pid file (tmpfs); one whose writer died has
    a pid that no longer runs: neither may cost the 60 s bound."""
    status, elapsed = _after_wait(tmp_path)
    assert status == "unfinished" and elapsed < 2, (status, elapsed)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "blk.pid").write_text(f"{gone.pid}\n")
    status, elapsed = _after_wait(tmp_path)
    assert status == "unfinished" and elapsed < 2, (status, elapsed)
    writer = subprocess.Popen(
        ["sh", "-c", f"sleep 1; echo 0 > {tmp_path}/inflight.status"], start_new_session=True
    )
    (tmp_path / "blk.pid").write_text(f"{writer.pid}\n")
    status, elapsed = _after_wait(tmp_path)
    writer.wait()
    assert status == "0" and elapsed >= 0.8, (status, elapsed)


def test_the_stream_is_whole_and_paced_until_the_guest_has_slept(tmp_path: Path) -> None:
    """What the host receives is the announced checksum, then the bytes; paced by the guest's
    clock (0.15 s a chunk) while no suspend has been counted, the rest unpaced once one is."""
    counter = tmp_path / "success"
    text = STREAM_COMMAND.replace("/sys/power/suspend_stats/success", str(counter)).replace(
        STATE_DIR, str(tmp_path)
    )
    timings = []
    for sleeps_after in (None, 0.3):
        counter.write_text("0\n")
        started = time.monotonic()
        stream = subprocess.Popen(["sh", "-c", text], stdout=subprocess.PIPE)
        if sleeps_after is not None:
            time.sleep(sleeps_after)  # the guest slept and woke meanwhile
            counter.write_text("1\n")
        out, _ = stream.communicate(timeout=30)
        timings.append(time.monotonic() - started)
        assert judge_stream(out) == "ok"
    assert timings[0] >= STREAM_CHUNKS * 0.15 * 0.9, timings
    assert timings[1] < timings[0] * 0.75, timings


def _local(text: str, tmp_path: Path) -> str:
    """A guest fragment pointed into ``tmp_path`` (no O_DIRECT there: tmpfs refuses it)."""
    return (
        text.replace(PROBE_FILE, str(tmp_path / "probe.bin"))
        .replace(STATE_DIR, str(tmp_path))
        .replace("iflag=direct", "")
        .replace("oflag=direct", "")
    )


def _round(tmp_path: Path) -> str:
    """The identity probe's count of captures, moved as it does, without its other facts."""
    lines = IDENTITY.before.split("\n")
    return f"STATE_DIR={tmp_path}\n" + next(line for line in lines if "/round" in line)


def test_the_pattern_is_made_once_with_each_mibs_checksum(tmp_path: Path) -> None:
    run_script(_local(PATTERN_READY, tmp_path), tmp_path)
    pattern = (tmp_path / "pattern").read_bytes()
    sums = (tmp_path / "slices.sha").read_text().split()
    assert len(pattern) == INFLIGHT_MIB << 20
    assert sums == [
        hashlib.sha256(pattern[i << 20 : (i + 1) << 20]).hexdigest() for i in range(INFLIGHT_MIB)
    ]
    assert (tmp_path / "pattern.sha").read_text().strip() == hashlib.sha256(pattern).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pattern", "pattern.sha", "slices.sha"]
    made = (tmp_path / "pattern").stat().st_mtime_ns
    run_script(_local(PATTERN_READY, tmp_path), tmp_path)
    assert (tmp_path / "pattern").stat().st_mtime_ns == made  # kept: the checkpoint holds it


def test_the_disk_probe_writes_a_different_mib_each_capture_and_names_a_lost_write(
    tmp_path: Path,
) -> None:
    run_script(_local(PATTERN_READY, tmp_path), tmp_path)
    captures = []
    for _ in range(2):
        run_script(_round(tmp_path), tmp_path)
        before, _ = run_script(_local(DISK.before, tmp_path), tmp_path)
        run_script(_round(tmp_path), tmp_path)
        after, _ = run_script(_local(DISK.after, tmp_path), tmp_path)
        assert before["disk.written_sha"] == after["disk.reread_sha"], (before, after)
        assert after["disk.fresh_sha"] == after["disk.fresh_reread_sha"], after
        assert after["disk.fresh_write_status"] == "0"
        captures.append((before, after))
    (first_before, first_after), (second_before, _) = captures
    assert second_before["disk.written_sha"] != first_before["disk.written_sha"]
    assert first_after["disk.fresh_sha"] not in (first_before["disk.written_sha"], "")
    # The file written before a third sleep never reached the disk: the second one's is there.
    kept = (tmp_path / "probe.bin").read_bytes()
    run_script(_round(tmp_path), tmp_path)
    before, _ = run_script(_local(DISK.before, tmp_path), tmp_path)
    (tmp_path / "probe.bin").write_bytes(kept)
    run_script(_round(tmp_path), tmp_path)
    after, _ = run_script(_local(DISK.after, tmp_path), tmp_path)
    assert after["disk.reread_sha"] != before["disk.written_sha"]


def test_the_disk_probe_reads_back_across_a_reboot_by_checksum(tmp_path: Path) -> None:
    """After a reboot tmpfs is new: another pattern, no note of the MiB written. The file
    is then hashed; its checksum must still be the one written before."""
    run_script(_local(PATTERN_READY, tmp_path), tmp_path)
    run_script(_round(tmp_path), tmp_path)
    before, _ = run_script(_local(DISK.before, tmp_path), tmp_path)
    assert (tmp_path / "disk.slice").read_text().strip().isdigit()
    for name in ("pattern", "pattern.sha", "slices.sha", "disk.slice", "round"):
        (tmp_path / name).unlink()
    run_script(_local(PATTERN_READY, tmp_path), tmp_path)
    run_script(_round(tmp_path), tmp_path)
    after, _ = run_script(_local(DISK.after, tmp_path), tmp_path)
    assert after["disk.reread_sha"] == before["disk.written_sha"] != "", (before, after)


def _disk_cycle(tmp_path: Path, after_hook: str = "") -> tuple[dict[str, str], dict[str, str]]:
    """The disk probe's capture before a sleep and after it; ``after_hook`` runs in the
    capture after, right after the fresh write (``$1`` is the probe's file)."""
    run_script(_round(tmp_path), tmp_path)
    before, _ = run_script(_local(DISK.before, tmp_path), tmp_path)
    run_script(_round(tmp_path), tmp_path)
    after_text = _local(DISK.after, tmp_path).replace(
        'echo "disk.fresh_write_status=$?"',
        f'echo "disk.fresh_write_status=$?"; set -- {tmp_path / "probe.bin"}; {after_hook}',
    )
    return before, run_script(after_text, tmp_path)[0]


def _flip(offset: int) -> str:
    return f'printf x | dd of="$1" bs=1 seek={offset} conv=notrunc 2>/dev/null'


@pytest.mark.parametrize(
    ("offset", "named"),
    [((1 << 20) + 4242, "disk.fresh_reread_sha"), (4242, "disk.reread_sha")],
    ids=["the fresh MiB", "the MiB written before"],
)
def test_one_changed_byte_is_named_in_the_mib_it_changed(
    tmp_path: Path, offset: int, named: str
) -> None:
    """Both MiBs are read back together and compared with the pattern byte for byte (no
    checksum of what came back); when they differ each is compared alone, to name which."""
    run_script(_local(PATTERN_READY, tmp_path), tmp_path)
    before, after = _disk_cycle(tmp_path, _flip(offset))
    intact = {
        "disk.reread_sha": before["disk.written_sha"],
        "disk.fresh_reread_sha": after["disk.fresh_sha"],
    }
    intact[named] = "differs from the pattern"
    assert after["disk.fresh_write_status"] == "0"
    assert {key: after[key] for key in intact} == intact
    assert "" not in (before["disk.written_sha"], after["disk.fresh_sha"])


def test_a_fresh_write_that_never_reached_the_disk_reads_back_short(tmp_path: Path) -> None:
    run_script(_local(PATTERN_READY, tmp_path), tmp_path)
    lost = 'dd if=/dev/null of="$1" bs=1M seek=1 2>/dev/null'  # truncated to the MiB before
    before, after = _disk_cycle(tmp_path, lost)
    assert after["disk.reread_sha"] == before["disk.written_sha"] != ""
    assert after["disk.fresh_reread_sha"] == "differs from the pattern"


def test_after_the_patterns_last_mib_the_fresh_one_is_another(tmp_path: Path) -> None:
    """The MiB after the pattern's last does not exist: the fresh one is then picked by the
    count of captures and the two are read back apart."""
    run_script(_local(PATTERN_READY, tmp_path), tmp_path)
    (tmp_path / "round").write_text(f"{INFLIGHT_MIB - 2}\n")  # the next capture is the last MiB
    before, after = _disk_cycle(tmp_path)
    assert (tmp_path / "disk.slice").read_text().strip() == str(INFLIGHT_MIB - 1)
    assert after["disk.reread_sha"] == before["disk.written_sha"] != ""
    assert after["disk.fresh_reread_sha"] == after["disk.fresh_sha"] != ""
    assert after["disk.fresh_sha"] != before["disk.written_sha"]


def test_a_file_gone_since_the_sleep_reads_back_as_nothing(tmp_path: Path) -> None:
    run_script(_local(PATTERN_READY, tmp_path), tmp_path)
    run_script(_round(tmp_path), tmp_path)
    before, _ = run_script(_local(DISK.before, tmp_path), tmp_path)
    (tmp_path / "probe.bin").unlink()
    run_script(_round(tmp_path), tmp_path)
    after, _ = run_script(_local(DISK.after, tmp_path), tmp_path)
    assert before["disk.written_sha"] != ""
    assert after["disk.reread_sha"] == ""
    assert after["disk.fresh_reread_sha"] == after["disk.fresh_sha"] != ""


def _sysfs(tmp_path: Path, virtio: bool = True) -> Path:
    """/sys/class/net as the guest has it: lo (no device), a virtio NIC, an e1000 NIC."""
    root = tmp_path / "sys"
    for name, device, driver in (
        ("eth1", "devices/pci0000:00/0000:00:04.0", "bus/pci/drivers/e1000"),
        ("ens3", "devices/pci0000:00/0000:00:03.0/virtio0", "bus/virtio/drivers/virtio_net"),
    ):
        if name == "ens3" and not virtio:
            continue
        (root / device).mkdir(parents=True)
        (root / driver).mkdir(parents=True, exist_ok=True)
        (root / device / "driver").symlink_to(root / driver)
        nic = root / "class/net" / name
        nic.mkdir(parents=True)
        (nic / "device").symlink_to(root / device)
        (nic / "operstate").write_text("up\n")
        (nic / "carrier").write_text("1\n")
    (root / "class/net/lo").mkdir(parents=True)
    (tmp_path / "interrupts").write_text(
        "           CPU0       CPU1\n"
        " 24:         10          5   PCI-MSI 49152-edge      virtio0-config\n"
        " 25:        100         50   PCI-MSI 49153-edge      virtio0-input.0\n"
        " 26:         70         30   PCI-MSI 49154-edge      virtio0-output.0\n"
        " 27:          3          4   PCI-MSI 65536-edge      virtio1-req.0\n"
    )
    return root


def _net_facts(tmp_path: Path, root: Path) -> dict[str, str]:
    return run_script(NET_SCRIPT.replace("/sys/", f"{root}/"), tmp_path)[0]


def test_the_network_facts_find_the_virtio_nic_without_starting_readlink(tmp_path: Path) -> None:
    facts = _net_facts(tmp_path, _sysfs(tmp_path))
    assert facts == {
        "net.iface": "ens3",
        "net.driver": "virtio_net",
        "net.operstate": "up",
        "net.carrier": "1",
        "net.device": "virtio0",
    }
    assert "$(readlink" not in NET_SCRIPT and "awk" not in NET_SCRIPT


def test_the_nics_interrupts_are_its_queues_on_every_cpu(tmp_path: Path) -> None:
    """Counted on the host from /proc/interrupts read through the agent (no awk in the guest)."""
    _sysfs(tmp_path)
    interrupts = (tmp_path / "interrupts").read_text()
    assert irq_count(interrupts, "virtio0") == 265  # both CPUs, not virtio1's
    assert irq_count(interrupts, "virtio1") == 7
    assert irq_count(interrupts, "virtio2") == irq_count("", "virtio0") == 0


def test_the_network_facts_follow_a_nic_of_another_model(tmp_path: Path) -> None:
    """Not virtio's: its interrupts are named after the interface (eth1-rx-0, eth1)."""
    facts = _net_facts(tmp_path, _sysfs(tmp_path, virtio=False))
    assert facts["net.iface"] == "eth1" and facts["net.driver"] == "e1000", facts
    assert facts["net.device"] == "eth1" and facts["net.carrier"] == "1", facts
    interrupts = (
        "           CPU0       CPU1\n"
        " 30:          4          2   PCI-MSI 65536-edge      eth1-rx-0\n"
        " 31:          3          1   PCI-MSI 65537-edge      eth1-tx-0\n"
        " 32:          1          0   PCI-MSI 65538-edge      eth1\n"
        " 33:          9          9   PCI-MSI 65539-edge      eth10\n"
    )
    assert irq_count(interrupts, "eth1") == 11


def _kernel_log_before(tmp_path: Path, devkmsg: str, third: str = "c") -> dict[str, str]:
    """The kernel probe before the sleep, its /dev/kmsg and printk_devkmsg files in
    ``tmp_path``, and a dmesg of three lines, one of them ACPI's, ``third`` the last."""
    (tmp_path / "printk_devkmsg").write_text(devkmsg + "\n")
    (tmp_path / "round").write_text("4\n")
    dmesg = f"dmesg() {{ printf 'a\\nACPI: PM: (supports S0 S3 S4 S5)\\n{third}\\n'; }}\n"
    text = dmesg + KERNEL_LOG.before.replace("/dev/kmsg", str(tmp_path / "kmsg")).replace(
        "/proc/sys/kernel/printk_devkmsg", str(tmp_path / "printk_devkmsg")
    )
    return run_script(text, tmp_path)[0]


def test_the_kernel_log_is_marked_before_the_sleep_without_a_program(tmp_path: Path) -> None:
    facts = _kernel_log_before(tmp_path, "ratelimit")
    assert facts == {
        "guest.acpi_states": "S0 S3 S4 S5",
        "guest.log_mark": f"{KERNEL_LOG_MARK} 4",
    }, facts
    assert (tmp_path / "kmsg").read_text() == f"<6>{KERNEL_LOG_MARK} 4\n"
    # ACPI's states are read from the log once per boot, then from tmpfs.
    (tmp_path / "acpi_states").write_text("S0 S5\n")
    assert _kernel_log_before(tmp_path, "on")["guest.acpi_states"] == "S0 S5"


def test_a_locked_down_kernel_s_word_on_hibernation_is_kept(tmp_path: Path) -> None:
    """Under secure boot the kernel says why it offers no hibernation; the probe keeps it."""
    said = "Lockdown: swapper/0: hibernation is restricted; see man kernel_lockdown.7"
    facts = _kernel_log_before(tmp_path, "on", f"[    3.347406] {said}")
    assert facts["guest.lockdown_said"] == said, facts


def test_a_kernel_that_takes_no_lines_from_userspace_has_its_log_counted(tmp_path: Path) -> None:
    facts = _kernel_log_before(tmp_path, "off")
    assert facts["guest.dmesg_lines"] == "3" and "guest.log_mark" not in facts, facts
    assert not (tmp_path / "kmsg").exists()


def _sentinel(tmp_path: Path, phase: str) -> dict[str, str]:
    return run_script(getattr(SENTINEL, phase).replace(STATE_DIR, str(tmp_path)), tmp_path)[0]


def test_the_sentinel_carries_on_across_captures_and_is_started_again_once_gone(
    tmp_path: Path,
) -> None:
    """Started once (the ready checkpoint holds one), it is the same process at every capture
    of a boot, so a capture does not pay for starting one; a killed one is replaced."""
    try:
        first = _sentinel(tmp_path, "before")
        after = _sentinel(tmp_path, "after")
        assert after["sentinel.pid"] == first["sentinel.pid"] and after["sentinel.alive"] == "yes"
        assert int(after["sentinel.count_later"]) > int(after["sentinel.count"]), after
        again = _sentinel(tmp_path, "before")
        assert again["sentinel.pid"] == first["sentinel.pid"], (first, again)
        assert int(again["sentinel.count"]) >= int(after["sentinel.count_later"])
        # Gone, as after a kill -9 in the guest (whose init reaps it): its pid runs no more.
        subprocess.run(["kill", "-9", first["sentinel.pid"]], check=False)
        dead = subprocess.Popen(["true"])
        dead.wait()
        (tmp_path / "sentinel.pid").write_text(f"{dead.pid}\n")
        gone = _sentinel(tmp_path, "after")
        assert gone["sentinel.alive"] == "no", gone
        assert gone["sentinel.count_later"] == gone["sentinel.count"], gone
        new = _sentinel(tmp_path, "before")
        assert new["sentinel.pid"] not in ("", first["sentinel.pid"], str(dead.pid)), new
        assert new["sentinel.count"], new
    finally:
        pid = (tmp_path / "sentinel.pid").read_text().strip()
        if pid:
            subprocess.run(["kill", "-9", pid], check=False)


def test_a_lost_in_flight_write_reads_back_as_another_cycles_data(tmp_path: Path) -> None:
    """Each capture writes at another offset: a write the disk lost leaves there what an
    earlier cycle wrote, which is another part of the pattern, so it is named."""
    text, _, disk = _paced_writer(tmp_path)
    after = _local(BLOCK.after, tmp_path).replace("/sys/block/$data_disk/stat", "/dev/null")
    after = after.replace("/dev/$data_disk", str(disk))
    _start(_quick_pace(text))  # round 0: offset 0
    assert _ended(tmp_path, disk) == (INFLIGHT_STEPS, "paced")
    facts, _ = run_script(after, tmp_path)
    pattern_sha = (tmp_path / "pattern.sha").read_text().strip()
    assert facts["blk.inflight_sha"] == pattern_sha and facts["blk.inflight_mib"] == "16", facts
    # The next cycle (round 1, offset 1 MiB) says it wrote 3 MiB; none reached the disk.
    (tmp_path / "round").write_text("1\n")
    (tmp_path / "inflight.base").write_text("1\n")
    (tmp_path / "inflight.mib").write_text("3\n")
    facts, _ = run_script(after, tmp_path)
    assert facts["blk.inflight_sha"] == "differs from the pattern", facts


def test_the_stream_goes_unpaced_once_the_boot_clock_jumps(tmp_path: Path) -> None:
    """Hybrid sleep counts no suspend: a boot clock that jumped (tasks were frozen while the
    image was written) says the guest slept."""
    counter, uptime = tmp_path / "success", tmp_path / "uptime"
    counter.write_text("0\n")
    text = (
        STREAM_COMMAND.replace("/sys/power/suspend_stats/success", str(counter))
        .replace("/proc/uptime", str(uptime))
        .replace(STATE_DIR, str(tmp_path))
    )
    timings = []
    for jump in (False, True):
        uptime.write_text("100.00 50.00\n")
        received = tmp_path / "received"
        started = time.monotonic()
        with received.open("wb") as out:  # read as it comes, as the host does
            stream = subprocess.Popen(["sh", "-c", text], stdout=out)
            if jump:
                time.sleep(0.3)
                uptime.write_text("103.50 51.00\n")  # 3.5 s asleep, as the guest's clock says
            stream.wait(timeout=30)
        timings.append(time.monotonic() - started)
        assert judge_stream(received.read_bytes()) == "ok"
    assert timings[0] >= STREAM_CHUNKS * 0.15 * 0.9, timings
    assert timings[1] < timings[0] * 0.75, timings


@pytest.mark.parametrize(
    ("until", "later", "low", "high"),
    [
        ("[ -e DONE ]", "", 0.0, 0.5),  # true once something writes DONE, below
        ("[ -e NEVER ]", "", 1.0, 3.0),  # never: gives up after its bound (2 s, bash's $SECONDS)
        ('[ "$0" = yes ]', "yes", 0.0, 0.5),  # its argument as $0
    ],
)
def test_the_bounded_wait_ends_when_its_test_holds_or_its_time_is_up(
    tmp_path: Path, until: str, later: str, low: float, high: float
) -> None:
    fifo = tmp_path / "wait"
    os.mkfifo(fifo)
    (tmp_path / "DONE").touch()
    until = until.replace("DONE", str(tmp_path / "DONE")).replace("NEVER", str(tmp_path / "never"))
    started = time.monotonic()
    # (its status on giving up is the last pause's, as the facts scripts ignore it)
    subprocess.run(["bash", "-c", BOUNDED_WAIT, later, str(fifo), "2", "0.02", until])
    assert low <= time.monotonic() - started < high


SCRIPTS = {
    package: sorted(
        (Path(__file__).resolve().parents[2] / package.replace(".", "/")).glob("scripts/*.sh")
    )
    for package in ("harness.checks", "harness.cycle")
}
ALL_SCRIPTS = [(package, path) for package, paths in SCRIPTS.items() for path in paths]


def _parsed(text: str) -> str:
    """``text`` as bash parses it: the body of a function that holds it, printed by bash,
    which leaves out comments and keeps here-documents and quoted strings as they are."""
    done = subprocess.run(
        ["bash", "-c", f"f() {{\n{text}\n}}\ndeclare -f f"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(("package", "path"), ALL_SCRIPTS, ids=[p.name for _, p in ALL_SCRIPTS])
def test_a_script_sent_without_its_comments_is_the_same_program(package: str, path: Path) -> None:
    """The loader drops comment lines: none may be inside a here-document or a string."""
    sent = code(path.name, package)
    assert _parsed(sent) == _parsed(path.read_text())
    assert "\n\n" not in sent and sent.endswith("\n")


@pytest.mark.parametrize(("package", "path"), ALL_SCRIPTS, ids=[p.name for _, p in ALL_SCRIPTS])
def test_each_script_names_its_shell_and_says_what_it_does(package: str, path: Path) -> None:
    first, second, *_ = path.read_text().splitlines()
    assert first in ("#!/bin/sh", "#!/bin/bash"), first
    assert second.startswith("# ") and len(second) > 20, second


def test_the_scripts_are_package_data() -> None:
    """Installed (not only run from the tree), the loader finds every script."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]
    for package, paths in SCRIPTS.items():
        assert paths, package
        assert "scripts/*.sh" in data.get(package, []), (package, data)


GUEST_WRITTEN = {
    name: key
    for name, key in vars(fact).items()
    if name.isupper() and isinstance(key, str) and key not in fact.HOST_MADE
}
GUEST_WRITTEN.pop("TIME_MARK_PREFIX")
SCRIPT_TEXT = "\n".join(path.read_text() for _, path in ALL_SCRIPTS)
FACT_KEY = r"(?:guest|blk|disk|sentinel|net|clock|tcp)\.[a-z_]+"


def test_each_fact_constant_is_named_after_its_key() -> None:
    for name, key in vars(fact).items():
        if name.isupper() and isinstance(key, str) and name != "TIME_MARK_PREFIX":
            assert name == key.upper().replace(".", "_"), (name, key)


@pytest.mark.parametrize("name", sorted(GUEST_WRITTEN))
def test_each_fact_the_checks_read_is_written_by_a_guest_script(name: str) -> None:
    """Renaming a key on one side only (the script's ``KEY=`` or the constant) fails here."""
    key = GUEST_WRITTEN[name]
    assert re.search(rf"(?<![\w.]){re.escape(key)}=", SCRIPT_TEXT), f"no script writes {key}="
    assert key not in fact.HOST_MADE


def test_each_fact_a_guest_script_writes_is_named_in_the_facts_module() -> None:
    written = set(re.findall(rf"(?<![\w.$])({FACT_KEY})=", SCRIPT_TEXT))
    assert written, "no fact found in the scripts"
    assert written <= set(GUEST_WRITTEN.values()), written - set(GUEST_WRITTEN.values())
    assert not written & fact.HOST_MADE
    assert f'"{fact.TIME_MARK_PREFIX}$1.$2=' in SCRIPT_TEXT  # capture.sh's marks


def test_a_fact_read_by_its_key_anywhere_in_the_harness_is_a_named_one() -> None:
    """Modules that still spell a key out (``facts.get("guest.swaps")``) spell a real one."""
    known = {key for name, key in vars(fact).items() if name.isupper() and isinstance(key, str)}
    harness = Path(__file__).resolve().parents[2] / "harness"
    spelled = {
        (path.relative_to(harness).as_posix(), key)
        for path in harness.rglob("*.py")
        for key in re.findall(rf"""(?:\.get\(|\[)\s*["']({FACT_KEY})["']""", path.read_text())
    }
    assert {(path, key) for path, key in spelled if key not in known} == set()


def test_the_stall_on_wake_fault_writes_its_hook_and_its_stall_whole(tmp_path: Path) -> None:
    """The hook needs its #! line to be run by systemd-sleep; the stall lets the agent go."""
    stall, hook = tmp_path / "stall", tmp_path / "hook"
    text = (
        faults.STALL_ON_WAKE_SCRIPT.replace("/usr/local/sbin/s3s4-cpu-stall", str(stall))
        .replace(faults.STALL_ON_WAKE_HOOK, str(hook))
        .replace("pkill -STOP", ": pkill -STOP")
    )
    subprocess.run(["sh", "-c", text], check=True)
    assert hook.read_text().startswith("#!/bin/sh\n") and os.access(hook, os.X_OK)
    assert f"sh {stall}" in hook.read_text()
    assert stall.read_text().strip().endswith("\npkill -CONT -x qemu-ga")
    assert "chrt -f 99 taskset -c 1 bash -c 'while [ $SECONDS -lt 15 ]" in stall.read_text()
