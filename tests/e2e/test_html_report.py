"""report.html over cycles of a real guest (restored from the session's ready checkpoint): an
S3 cycle that passes and one whose sentinel process is killed, drawn as the run's page draws
them, beside the run's own guests folder: the failing case first with its evidence, each
timeline placed from the cycle's ``request_at`` (the platform's SUSPEND where the entry wait
ended), the slowest device callbacks, links that open the guest's serial log and events, and
the page in Debian's headless chromium."""

from typing import Any

import pytest

from harness.checks.verdict import CycleSeries
from harness.cycle.faults import kill_sentinel
from harness.plugin import PowerCycle
from harness.plugin.hooks import REPORT_KEY
from harness.results import run_page
from harness.results.run_report import host
from harness.results.timeline import cycle_timeline
from harness.transitions.catalogue import S3_AGENT
from tests.chromium import chromium_dom

pytestmark = pytest.mark.selftest


def record(name: str, series: CycleSeries) -> dict[str, Any]:
    return {
        "test": name,
        "cell": None,
        "outcome": "passed",
        "duration_s": 0.0,
        "verdicts": [series.verdict.value],
        "series": [series.to_json()],
    }


def test_the_report_of_real_cycles(power_cycle: PowerCycle, request: pytest.FixtureRequest) -> None:
    passed = power_cycle(S3_AGENT)
    failed = power_cycle(S3_AGENT, faults=[kill_sentinel()])
    assert (passed.verdict.value, failed.verdict.value) == ("PASS", "FAIL"), failed.reason
    run = {
        "run_id": request.node.name,
        "host": host(),
        "command_line": ["pytest", request.node.nodeid],
        "tests": [record("s3 passing", passed), record("s3 sentinel killed", failed)],
    }
    for series in (passed, failed):
        cycle = series.to_json()["cycles"][0]
        marks = {m.label: m.at for m in cycle_timeline(cycle).marks}
        entered = cycle["evidence"]["timings"]["request_to_entry"]
        assert cycle["evidence"]["request_at"] > 0
        assert abs(marks["SUSPEND"] - entered) < 1.0 and marks["WAKEUP"] > marks["SUSPEND"]
    run_dir = request.config.stash[REPORT_KEY].directory
    page = run_dir / "e2e-report.html"  # beside guests/, as report.html is
    page.write_text(run_page.render(run))
    html = page.read_text()
    assert html.index("s3 sentinel killed") < html.index("s3 passing")
    for series in (passed, failed):
        for name in ("serial_log", "events_log"):
            link = series.last.artifacts[name]
            assert f'href="{link}"' in html and (run_dir / link).is_file(), link

    dom = chromium_dom(page.as_uri())
    assert 'data-rendered="yes"' in dom, dom[:2000]
    assert dom.count('<svg class="timeline"') == 2
    assert dom.count('data-event="SUSPEND"') >= 2 and 'data-event="WAKEUP"' in dom
    assert 'data-lane="kernel" data-kind="resume"' in dom and "data-device=" in dom
    assert '<span class="check">sentinel_carried_on</span>' in dom
    page.unlink()
