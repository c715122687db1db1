"""The guest's own suspend and hibernation times, read from console timestamps."""

import pytest

from harness.machines.events import RecordedEvent
from harness.tools.bench import Figures, guest_s4_seconds, guest_sleep_seconds, s3_host_clock_split

S3_CONSOLE = """\
guest login: [   36.817921] PM: suspend entry (deep)
[   36.866393] Freezing user space processes
[   36.911709] smpboot: CPU 1 is now offline
[   36.918439] ACPI: PM: Low-level resume complete
[   37.529639] ACPI: PM: Waking up from system sleep state S3
[   37.601670] PM: suspend exit
""".splitlines()

# Hibernating kernel (56.5-60.3), resume kernel from 0 (to 10.83), restored kernel (57.2-).
S4_CONSOLE = """\
[   56.563241] PM: hibernation: hibernation entry
[   57.292048] ACPI: PM: Waking up from system sleep state S4
[   60.198752] PM: Image saving done
[   60.342337] smpboot: CPU 1 is now offline
[    0.000000] Linux version 6.1.0-56-amd64
[   10.679084] PM: Image loading done
[   10.829579] smpboot: CPU 1 is now offline
[   57.214258] ACPI: PM: Restoring platform NVS memory
[   57.572406] Restarting tasks ... done.
[   57.612000] PM: hibernation: hibernation exit
""".splitlines()


def test_s3_guest_time_is_entry_to_exit_on_the_kernel_clock() -> None:
    assert guest_sleep_seconds(S3_CONSOLE) == pytest.approx(37.601670 - 36.817921)


def test_s3_without_exit_has_no_figure() -> None:
    assert guest_sleep_seconds(S3_CONSOLE[:-1]) is None


def test_s4_spans_are_measured_each_on_its_own_clock() -> None:
    own = guest_s4_seconds(S4_CONSOLE)
    assert own == pytest.approx(
        {"write": 60.342337 - 56.563241, "load": 10.829579, "resume": 57.612 - 57.214258}
    )


def test_s4_that_never_loaded_has_no_figure() -> None:
    assert guest_s4_seconds([line for line in S4_CONSOLE if "loading" not in line]) is None


def test_figures_summarise_median_min_max() -> None:
    figures = Figures()
    for value in (3.0, 1.0, 2.0):
        figures.add("x", value)
    figures.add("x", None)
    assert figures.summary()["x"] == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}


def test_s3_waits_split_on_the_host_clock_by_when_lines_and_events_arrived() -> None:
    """Request at 100.0 (SUSPEND seen 0.7 s later), wake at 200.0 (agent 1.4 s later)."""
    console = [(100.5, "[ 36.8] PM: suspend entry (deep)"), (200.6, "[ 37.6] PM: suspend exit")]
    events = [RecordedEvent("SUSPEND", received=100.7), RecordedEvent("WAKEUP", received=200.0)]
    timings = {"request_to_entry": 0.7, "resume_agent": 1.4, "resume_ssh": 1.6}
    assert s3_host_clock_split(console, events, timings) == pytest.approx(
        {
            "user space down": 0.5,
            "kernel down": 0.2,
            "firmware and kernel up": 0.6,
            "user space up to the agent": 0.8,
            "agent to ssh": 0.2,
        }
    )
    assert s3_host_clock_split(console[:1], events, timings) is None
