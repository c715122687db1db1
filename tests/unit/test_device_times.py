"""Per-device suspend and resume times: the guest-side script run by the host's own shell and
awk on a trace in the kernel's format, its facts read back as seconds per callback, and shown
with each cycle's timings in the report."""

import json
import subprocess
from pathlib import Path

from harness.checks.probes import DEVICE_PM
from harness.results.device_times import cycle_device_times, device_times
from harness.results.html import evidence_index

TRACE = """\
# tracer: nop
#
   kworker/u4:1-58   [001] .....    90.000100: device_pm_callback_start: i8042 i8042, \
parent: platform, driver [suspend]
   kworker/u4:1-58   [001] .....    90.900100: device_pm_callback_end: i8042 i8042, err=0
   sh-200            [000] .....    99.000000: tracing_mark_write: s3s4-harness: device pm mark
   kworker/u4:1-58   [001] .....   100.000100: device_pm_callback_start: virtio-pci \
0000:00:03.0, parent: pci0000:00, bus [suspend]
   kworker/u4:2-59   [000] .....   100.000200: device_pm_callback_start: i8042 i8042, \
parent: platform, driver [suspend]
   kworker/u4:1-58   [001] .....   100.002100: device_pm_callback_end: virtio-pci \
0000:00:03.0, err=0
   kworker/u4:2-59   [000] .....   100.300200: device_pm_callback_end: i8042 i8042, err=0
   systemd-sleep-300 [000] .....   101.000000: device_pm_callback_start: e1000 \
0000:00:02.0, parent: pci0000:00, bus [resume]
   systemd-sleep-300 [000] .....   101.000500: device_pm_callback_end: e1000 0000:00:02.0, err=0
   systemd-sleep-300 [000] .....   101.100000: device_pm_callback_start: virtio-pci \
0000:00:03.0, parent: pci0000:00, noirq bus [resume]
   systemd-sleep-300 [000] .....   101.150000: device_pm_callback_end: virtio-pci \
0000:00:03.0, err=0
"""


def run_script(script: str, tracefs: Path, top: int = 20) -> str:
    """A probe's script with its tracefs folder pointed at ``tracefs``."""
    script = script.replace("/sys/kernel/tracing", str(tracefs))
    script = script.replace("DEVPM_TOP=20", f"DEVPM_TOP={top}")
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


def fake_tracefs(root: Path, enabled: str = "0") -> Path:
    events = root / "events" / "power"
    for name in ("device_pm_callback_start", "device_pm_callback_end"):
        (events / name).mkdir(parents=True)
        (events / name / "enable").write_text(f"{enabled}\n")
    for name in ("trace_marker", "buffer_size_kb", "tracing_on"):
        (root / name).write_text("")
    return events


def test_arming_turns_the_events_on_once_and_marks_each_cycle(tmp_path: Path) -> None:
    events = fake_tracefs(tmp_path)
    assert run_script(DEVICE_PM.before, tmp_path) == f"devpm.armed={tmp_path}\n"
    assert (events / "device_pm_callback_end" / "enable").read_text() == "1\n"
    assert (tmp_path / "buffer_size_kb").read_text() == "512\n"
    (tmp_path / "buffer_size_kb").write_text("untouched\n")
    run_script(DEVICE_PM.before, tmp_path)
    assert (tmp_path / "buffer_size_kb").read_text() == "untouched\n"  # once a boot
    assert (tmp_path / "trace_marker").read_text() == "s3s4-harness: device pm mark\n"


def test_the_slowest_callbacks_since_the_mark_are_paired_and_ranked(tmp_path: Path) -> None:
    fake_tracefs(tmp_path, enabled="1")
    (tmp_path / "trace").write_text(TRACE)
    assert run_script(DEVICE_PM.after, tmp_path, top=3).splitlines() == [
        "devpm.callbacks=4",
        "devpm.slow.1=300000 suspend i8042 i8042",
        "devpm.slow.2=50000 resume_noirq virtio-pci 0000:00:03.0",
        "devpm.slow.3=2000 suspend virtio-pci 0000:00:03.0",
    ]


def test_a_guest_without_tracefs_prints_nothing(tmp_path: Path) -> None:
    assert run_script(DEVICE_PM.after, tmp_path / "none") == ""


def test_facts_become_seconds_per_callback() -> None:
    after = {
        "devpm.callbacks": "4",
        "devpm.slow.1": "300000 suspend i8042 i8042",
        "devpm.slow.2": "50000 resume_noirq virtio-pci 0000:00:03.0",
        "devpm.slow.3": "garbled",
        "guest.kernel": "6.1.0",
    }
    assert device_times(after) == {
        "device suspend i8042 i8042": 0.3,
        "device resume_noirq virtio-pci 0000:00:03.0": 0.05,
    }
    assert cycle_device_times({"evidence": {"after": after}}) == device_times(after)


def test_the_report_shows_each_cycles_slowest_callbacks(tmp_path: Path) -> None:
    cycle = {
        "verdict": "PASS",
        "evidence": {
            "timings": {"request_to_entry": 1.234},
            "after": {"devpm.slow.1": "37263 resume virtio-pci 0000:00:03.0"},
        },
    }
    record = {"test": "t.py::test_s3[cellA-s3-agent]", "cell": "cellA", "series": [
        {"cycles": [cycle]}]}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps({"tests": [record], "cells": []}))
    (entry,) = evidence_index([tmp_path]).values()
    assert entry["cycles"][0]["timings"] == {
        "request_to_entry": 1.23,
        "device resume virtio-pci 0000:00:03.0": 0.037,
    }
