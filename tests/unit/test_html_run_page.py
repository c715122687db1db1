"""The run's report.html over a real run's results.json (tests/data/report-run/, cut from a run
of an S3 and an S4 cycle that passed and an S3 cycle whose sentinel was killed, on the built-in
guest): each cycle's timeline from what it recorded, the page's order and links, and the page
in Debian's headless chromium, its DOM and a screenshot."""

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.results import run_page
from harness.results.timeline import cycle_timeline
from harness.results.timeline_svg import render as timeline_svg
from tests.chromium import chromium_dom, chromium_screenshot, png_rows

RUN = Path(__file__).resolve().parents[1] / "data" / "report-run" / "results.json"
PASS_GREEN, FAIL_RED = (0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28)


def run() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RUN.read_text())
    return data


def cycle_of(transition: str, verdict: str) -> dict[str, Any]:
    cycles = [
        c
        for t in run()["tests"]
        for s in t["series"]
        for c in s["cycles"]
        if c["evidence"]["transition"] == transition and c["verdict"] == verdict
    ]
    found: dict[str, Any] = cycles[0]
    return found


def spans(cycle: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {f"{s.lane} {s.label}": (s.start, s.end) for s in cycle_timeline(cycle).spans}


def test_an_s3_cycle_is_placed_from_request_to_checks() -> None:
    cycle = cycle_of("s3-agent", "PASS")
    line = cycle_timeline(cycle)
    found = spans(cycle)
    entered = cycle["evidence"]["timings"]["request_to_entry"]
    assert found["host request → entry"] == (0.0, entered)
    assert found["host checks before"][1] == 0.0
    marks = {m.label: m.at for m in line.marks}
    # The platform's SUSPEND is seen as the entry wait ends, WAKEUP after it.
    assert abs(marks["SUSPEND"] - entered) < 0.5 and marks["WAKEUP"] > marks["SUSPEND"]
    # The kernel's freeze and suspend end at the entry; its resume starts at WAKEUP.
    assert found["kernel freeze"][1] == found["kernel suspend"][0]
    assert found["kernel suspend"][1] == pytest.approx(entered)
    assert found["kernel resume"][0] == pytest.approx(marks["WAKEUP"])
    assert found["guest agent"][1] == found["guest ssh"][0] <= found["host checks after"][0]
    assert line.devices and all(s > 0 for _, s in line.devices)
    assert {name.split()[0] for name, _ in line.devices} & {"resume", "resume_noirq"}


def test_an_s4_cycle_shows_the_image_the_relaunch_and_the_restore() -> None:
    cycle = cycle_of("s4-agent", "PASS")
    found = spans(cycle)
    timings = cycle["evidence"]["timings"]
    launched = timings["request_to_entry"]
    assert found["kernel image, write"][1] == pytest.approx(launched)
    boot = found["kernel boot, load image"]
    assert boot[0] == pytest.approx(launched + timings["relaunch_to_kernel"])
    resume = found["kernel resume"]
    # The restored kernel's lines follow the image's load, before the guest answers.
    assert resume[0] == boot[1] < resume[1] <= found["guest ssh"][1]
    devices = cycle_timeline(cycle).devices
    assert {name.split()[0] for name, _ in devices} & {"restore", "restore_noirq"}


def test_a_run_older_than_request_at_places_its_events_at_the_entry() -> None:
    cycle = copy.deepcopy(cycle_of("s3-agent", "PASS"))
    marks = {m.label: m.at for m in cycle_timeline(cycle).marks}
    del cycle["evidence"]["request_at"]
    older = {m.label: m.at for m in cycle_timeline(cycle).marks}
    assert older["SUSPEND"] == pytest.approx(cycle["evidence"]["timings"]["request_to_entry"])
    assert older["WAKEUP"] - older["SUSPEND"] == pytest.approx(marks["WAKEUP"] - marks["SUSPEND"])


def test_a_cycle_that_ended_early_shows_how_far_it_got() -> None:
    cycle = {"evidence": {"timings": {"checks_before": 2.0, "request_to_verdict": 30.0}}}
    line = cycle_timeline(cycle)
    assert [(s.label, s.kind) for s in line.spans] == [
        ("checks before", "checks"),
        ("request → failed", "failed"),
    ]
    assert 'data-kind="failed"' in timeline_svg(line)
    assert timeline_svg(cycle_timeline({})) == ""


def test_the_page_puts_failing_cases_first_with_their_evidence_and_links() -> None:
    data = run()
    page = run_page.render(data)
    cases = page.split('<details class="case"')[1:]
    assert [c.split('data-verdict="')[1].split('"')[0] for c in cases] == ["FAIL", "PASS", "PASS"]
    assert cases[0].split(">")[0].endswith(" open") and " open" not in cases[1].split(">")[0]
    failed = cases[0].split('<div class="evidence">')[1]
    assert "sentinel_carried_on" in failed
    for cycle in (c for t in data["tests"] for s in t["series"] for c in s["cycles"]):
        for key in ("serial_log", "events_log"):
            assert f'href="{cycle["artifacts"][key]}"' in page  # relative to the run directory
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page  # nothing fetched: the page works offline
    assert data["host"]["name"] in page and data["command_line"][-1] in page


def test_the_page_in_a_real_browser(tmp_path: Path) -> None:
    """Debian's chromium, headless: the script ran, every cycle has its timeline with its
    lanes, events and device callbacks; the screenshot is not blank and its header shows the
    verdicts' colours (one FAIL, two PASS)."""
    (tmp_path / "results.json").write_text(RUN.read_text())
    page = run_page.write(tmp_path / "results.json")
    dom = chromium_dom(page.as_uri())
    assert 'data-rendered="yes"' in dom, dom[:2000]
    assert dom.count('<svg class="timeline"') == 3
    assert dom.count('data-event="SUSPEND"') >= 2 and 'data-event="SUSPEND_DISK"' in dom
    assert dom.count('class="devices"') == 3 and "data-device=" in dom
    assert 'data-lane="kernel" data-kind="resume"' in dom
    assert (
        chromium_dom(page.as_uri() + "#all").count('<details class="case" data-verdict="PASS" open')
        == 2
    )
    rows = png_rows(chromium_screenshot(page.as_uri(), tmp_path / "shot.png", 1280, 900), 200)
    colours = Counter(pixel for row in rows for pixel in row)
    assert len(colours) > 20, "a blank screenshot"
    assert colours[FAIL_RED] > 100 and colours[PASS_GREEN] > 100, colours.most_common(8)


def test_a_run_without_tests_says_so(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text('{"run_id": "r", "tests": []}')
    assert "No tests ran." in run_page.write(results).read_text()
