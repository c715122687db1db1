"""One run's report.html, the page a person opens: a header with the counts by verdict, the
wall time, host, component versions and command line; then every case, the failing ones first
and open, each cycle with its timeline, the failed checks' evidence beside it and links to its
serial log and events. One file, no network: links are relative to the run's directory, the
SVG is drawn here, and a small script only moves the focus (j/k)."""

from __future__ import annotations

import html
import json
import shlex
from pathlib import Path
from typing import Any

from harness.results.merge import SEVERITY, record_verdict
from harness.results.timeline import cycle_timeline
from harness.results.timeline_svg import COLOURS
from harness.results.timeline_svg import render as timeline_svg

VERDICT_COLOURS = {
    "PASS": "#2e7d32",
    "FAIL": "#c62828",
    "ERROR": "#6a1b9a",
    "XFAIL": "#ef6c00",
    "UNSUPPORTED": "#757575",
    "SKIPPED": "#9e9e9e",
}
ORDER = (*SEVERITY, "SKIPPED")
COMPONENTS = ("kernel", "qemu", "firmware", "machine", "accel", "backend", "libvirt", "guest")
DETECTED = ("kernel", "qemu_package", "bios_version", "libvirt_version")
LINKS = (
    ("serial_log", "serial log"),
    ("events_log", "events"),
    ("qemu_argv", "QEMU argv"),
    ("qemu_output", "QEMU output"),
    ("screendump", "screen"),
    ("cpu_dump", "vCPUs"),
)
EVIDENCE_CHARS = 3000  # of one failed check's evidence, pretty-printed

STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;max-width:1250px}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
.badge{display:inline-block;padding:1px 8px;border-radius:3px;color:#fff;font-weight:600}
.counts .badge{font-size:16px;margin-right:6px}
details.case{border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:4px 8px}
details.case>summary{cursor:pointer;font-weight:600}
summary:focus{outline:3px solid #1565c0;outline-offset:2px}
.cycle{border-top:1px solid #eee;margin-top:8px;padding-top:6px}
.cycle-body{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.evidence{flex:1;min-width:320px;max-width:460px}
.evidence .check{color:#c62828;font-weight:600}
pre{background:#f6f6f6;padding:.4em;max-height:18em;overflow:auto;font-size:12px;white-space:pre-wrap}
.timeline text{font-size:11px;fill:#333}.timeline text.in{fill:#fff}
.timeline text.lane{font-weight:600}.links a{margin-right:12px}
.key span{display:inline-block;margin-right:10px;font-size:12px}
.key i{display:inline-block;width:10px;height:10px;margin-right:3px;vertical-align:middle}
code{font-size:12px}
"""
# j/k (or n/p) move between cases, Enter or Space opens one: <summary> does that natively.
SCRIPT = """
const cases = [...document.querySelectorAll('details.case > summary')];
document.addEventListener('keydown', (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const step = {j: 1, n: 1, k: -1, p: -1}[event.key];
  if (!step || !cases.length) return;
  const at = cases.indexOf(document.activeElement);
  const next = at < 0 ? 0 : Math.min(Math.max(at + step, 0), cases.length - 1);
  cases[next].focus();
  cases[next].scrollIntoView({block: 'nearest'});
  event.preventDefault();
});
// report.html#all opens every case (to print the page, or to look through a passing run).
if (location.hash === '#all') {
  for (const details of document.querySelectorAll('details.case')) details.open = true;
}
document.body.dataset.rendered = 'yes';
"""


def write(results: Path) -> Path:
    """``report.html`` beside a run's ``results.json``."""
    page = results.parent / "report.html"
    page.write_text(render(json.loads(results.read_text())))
    return page


def render(run: dict[str, Any]) -> str:
    records = sorted(run.get("tests", []), key=lambda r: (_rank(r), r.get("test", "")))
    cases = "\n".join(_case(record) for record in records)
    title = f"s3s4 run {run.get('run_id', '')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>{STYLE}</style></head><body data-rendered="no">
<h1>{_e(title)}</h1>
{_summary(run, records)}
<h2>Cases, failing first</h2>
<p class="key">Keys: <kbd>j</kbd>/<kbd>k</kbd> next/previous case, <kbd>Enter</kbd> opens
or closes it. Timeline: seconds from the request; {_key()}</p>
{cases or "<p>No tests ran.</p>"}
<script>{SCRIPT}</script>
</body></html>
"""


def _verdict(record: dict[str, Any]) -> str:
    if record.get("outcome") == "skipped" and not record.get("verdicts"):
        return "SKIPPED"
    return record_verdict(record)


def _rank(record: dict[str, Any]) -> int:
    verdict = _verdict(record)
    rank = ORDER.index(verdict) if verdict in ORDER else 0
    return min(rank, 1) if record.get("outcome") == "failed" else rank


def _summary(run: dict[str, Any], records: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for record in records:
        counts[_verdict(record)] = counts.get(_verdict(record), 0) + 1
    badges = "".join(
        _badge(v, f"{counts[v]} {v}")
        for v in sorted(counts, key=lambda v: ORDER.index(v) if v in ORDER else 0)
    )
    host = run.get("host") or {}
    host_text = " · ".join(f"{k} {v}" for k, v in host.items()) or "not recorded (older run)"
    command = shlex.join(run["command_line"]) if run.get("command_line") else "not recorded"
    interrupted = (
        f"; interrupted by {run.get('interrupted_by')} during {run.get('interrupted_test')}"
        if run.get("interrupted")
        else ""
    )
    rows = [
        ("verdicts", f'<span class="counts">{badges}</span> of {len(records)} case(s)'),
        ("started", _e(run.get("started", ""))),
        ("wall time", f"{_duration(run.get('duration_s', 0))}; exit status "
                      f"{_e(run.get('exit_status', ''))}{_e(interrupted)}"),
        ("host", _e(host_text)),
        ("command", f"<code>{_e(command)}</code>"),
    ]  # fmt: skip
    table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<table class="summary" id="summary">{table}</table>\n{_components(run)}'


def _components(run: dict[str, Any]) -> str:
    detected: dict[str, dict[str, Any]] = {}
    for record in run.get("tests", []):
        for cycle in _cycles(record):
            detected.setdefault(record.get("cell") or "", cycle.get("combination") or {})
    rows = []
    for cell in run.get("cells", []):
        declared = ", ".join(f"{k} {cell[k]}" for k in COMPONENTS if cell.get(k))
        seen = detected.get(cell.get("id", ""), {})
        shown = ", ".join(f"{k} {seen[k]}" for k in DETECTED if seen.get(k))
        rows.append(
            f"<tr><td><code>{_e(cell.get('id', ''))}</code></td><td>{_e(declared)}</td>"
            f"<td>{_e(shown)}</td></tr>"
        )
    if not rows:
        return ""
    return (
        '<h2>Components</h2><table class="components"><tr><th>cell</th><th>versions</th>'
        f"<th>as the running guest and QEMU reported them</th></tr>{''.join(rows)}</table>"
    )


def _case(record: dict[str, Any]) -> str:
    verdict = _verdict(record)
    failing = _rank(record) <= 1
    cycles = [
        _cycle(series, cycle)
        for series in record.get("series") or []
        for cycle in series.get("cycles", [])
    ]
    error = record.get("error") or ""
    body = "".join(cycles)
    if error:
        body = f'<pre class="error">{_e(error[-EVIDENCE_CHARS:])}</pre>{body}'
    return (
        f'<details class="case" data-verdict="{verdict}"{" open" if failing else ""}>'
        f"<summary>{_badge(verdict)} "
        f"<code>{_e(record.get('test', ''))}</code> ({record.get('duration_s', 0):.0f} s)"
        f"</summary>{body or '<p>No cycle recorded.</p>'}</details>"
    )


def _cycles(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for s in record.get("series") or [] for c in s.get("cycles", [])]


def _cycle(series: dict[str, Any], cycle: dict[str, Any]) -> str:
    evidence = cycle.get("evidence") or {}
    verdict = cycle.get("verdict", "")
    head = (
        f"<h3>{_e(evidence.get('transition') or series.get('transition', ''))}, cycle "
        f"{evidence.get('cycle', 1)}: {_badge(verdict)}</h3>"
    )
    reason = f"<p>{_e(cycle['reason'])}</p>" if cycle.get("reason") else ""
    svg = timeline_svg(cycle_timeline(cycle)) or "<p>No timings recorded.</p>"
    links = " ".join(
        f'<a href="{_e(path)}">{label}</a>'
        for key, label in LINKS
        if (path := (cycle.get("artifacts") or {}).get(key))
    )
    timings = json.dumps({k: round(v, 3) for k, v in (evidence.get("timings") or {}).items()})
    return (
        f'<section class="cycle" data-verdict="{_e(verdict)}">{head}{reason}'
        f'<div class="cycle-body"><div>{svg}</div>{_failed_evidence(cycle)}</div>'
        f'<p class="links">{links}</p>'
        f"<details><summary>all timings (s)</summary><pre>{_e(timings)}</pre></details></section>"
    )


def _failed_evidence(cycle: dict[str, Any]) -> str:
    failed = [c for c in cycle.get("checks", []) if not c.get("passed", True)]
    if not failed:
        return ""
    items = "".join(
        f'<div><span class="check">{_e(c["name"])}</span>: {_e(c.get("detail", ""))}'
        + (
            f"<pre>{_e(json.dumps(c['evidence'], indent=1)[:EVIDENCE_CHARS])}</pre>"
            if c.get("evidence")
            else ""
        )
        + "</div>"
        for c in failed
    )
    return f'<div class="evidence"><h4>failed checks</h4>{items}</div>'


def _badge(verdict: str, text: str = "") -> str:
    colour = VERDICT_COLOURS.get(verdict, "#000")
    return (
        f'<span class="badge v {_e(verdict)}" style="background:{colour}">'
        f"{_e(text or verdict)}</span>"
    )


def _key() -> str:
    return "".join(
        f'<span><i style="background:{colour}"></i>{kind}</span>'
        for kind, colour in COLOURS.items()
    )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(float(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _e(value: object) -> str:
    return html.escape(str(value))
