"""The history as one self-contained HTML page: a row per case and cell, its verdicts as a
strip of squares (one per run, aligned across rows), a sparkline per stage (and per device
callback that was slower in some run) with slower runs marked in red, and the runs where
components changed marked on every row's timeline. No network and no data outside the file:
the SVG is drawn here; a small script only filters."""

from __future__ import annotations

import html
from typing import Any

from harness.results.device_times import KEY_PREFIX
from harness.results.history import ORDER

COLOURS = {
    "PASS": "#2e7d32",
    "FAIL": "#c62828",
    "ERROR": "#6a1b9a",
    "XFAIL": "#ef6c00",
    "UNSUPPORTED": "#757575",
}
CELL = 12  # px per run in the strips and sparklines
SPARK_HEIGHT = 24
SPARK_MIN_WIDTH = 72

STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;
vertical-align:middle;text-align:left}
td:nth-child(-n+8){white-space:nowrap}td:first-child{white-space:normal;max-width:28em}th{background:#f4f4f4}
.status{font-weight:600}.new-failure,.failing{color:#c62828}.fixed{color:#2e7d32}
.stage{display:inline-block;margin-right:10px;font-size:11px;color:#555}
.slow{color:#c62828;font-weight:600}code{font-size:12px}
td.stages{min-width:22em}
"""
SCRIPT = """
const box = document.getElementById('only-attention');
function filter() {
  for (const row of document.querySelectorAll('tbody tr')) {
    row.hidden = box.checked && row.dataset.attention !== 'yes';
  }
}
box.addEventListener('change', filter);
filter();
document.body.dataset.rendered = 'yes';
"""


def render(result: dict[str, Any]) -> str:
    runs = result["runs"]
    changed = sorted({run for row in result["rows"] for run in row["component_changes"]})
    change_at = [run["run_id"] in changed for run in runs]
    rows = sorted(result["rows"], key=lambda r: (ORDER.index(r["status"]), r["case"], r["cell"]))
    body = "\n".join(_row(row, runs, change_at) for row in rows)
    head = (
        f"<p>{len(runs)} runs from {_e(runs[0]['started'])} to {_e(runs[-1]['started'])}; "
        f"<b>{len(result['new_failures'])}</b> new failure(s), "
        f"<b>{len(result['new_slowdowns'])}</b> new slowdown(s). A stage is slower when it "
        f"exceeds the median of its last {result['rule']['window']} runs by more than "
        f"{result['rule']['spread_k']:g} robust standard deviations (at least "
        f"{result['rule']['floor_s']:g} s and {result['rule']['floor_fraction']:.0%}).</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>s3s4 history</title>
<style>{STYLE}</style></head><body data-rendered="no">
<h1>History of {len(runs)} runs</h1>
{head}
{_runs_list(runs, result, changed)}
<label><input type="checkbox" id="only-attention"> only failing, fixed, flaky or slower rows</label>
<table><thead><tr><th>case</th><th>cell</th><th>status</th><th>verdicts</th><th>pass rate</th>
<th>flips</th><th>last pass</th><th>failing since</th><th>stages (s)</th></tr></thead>
<tbody>
{body}
</tbody></table>
<script>{SCRIPT}</script>
</body></html>
"""


def _runs_list(runs: list[dict[str, Any]], result: dict[str, Any], changed: list[str]) -> str:
    notes: dict[str, list[str]] = {}
    for row in result["rows"]:
        for run_id, lines in row["component_changes"].items():
            notes.setdefault(run_id, [])
            notes[run_id] += [line for line in lines if line not in notes[run_id]]
    items = "".join(
        f"<li><code>{_e(run['run_id'])}</code> {_e(run['started'])}"
        + (
            f' <span class="slow">components changed: {_e("; ".join(notes[run["run_id"]]))}</span>'
            if run["run_id"] in changed
            else ""
        )
        + "</li>"
        for run in runs
    )
    return f"<details><summary>runs, oldest first</summary><ol>{items}</ol></details>"


def _row(row: dict[str, Any], runs: list[dict[str, Any]], change_at: list[bool]) -> str:
    attention = row["status"] != "passing" or row["flaky"] or bool(row["slowdowns"])
    slow_by_run = row["slow"]
    stages = "".join(
        _sparkline(stage, values, [runs[i]["run_id"] in slow_by_run and stage in slow_by_run[
            runs[i]["run_id"]] for i in range(len(runs))], change_at)
        for stage, values in row["timings"].items()
        if not stage.startswith(KEY_PREFIX) or any(stage in slow for slow in slow_by_run.values())
    )  # fmt: skip
    by_id = {run["run_id"]: n for n, run in enumerate(runs)}
    return (
        f'<tr data-attention="{"yes" if attention else "no"}" data-status="{row["status"]}">'
        f"<td><code>{_e(row['case'])}</code></td><td>{_e(row['cell'])}</td>"
        f'<td class="status {row["status"]}">{row["status"]}'
        f"{' (flaky)' if row['flaky'] else ''}</td>"
        f"<td>{_strip(row['verdicts'], row['reasons'], runs, change_at)}</td>"
        f"<td>{row['pass_rate']:.0%}</td><td>{row['flips']}</td>"
        f"<td>{_run_ref(row['last_pass'], by_id)}</td>"
        f"<td>{_run_ref(row['failing_since'], by_id)}</td>"
        f'<td class="stages">{stages}</td></tr>'
    )


def _run_ref(run_id: str | None, by_id: dict[str, int]) -> str:
    return "" if run_id is None else f"<code>#{by_id[run_id] + 1} {_e(run_id)}</code>"


def _strip(
    verdicts: list[str | None],
    reasons: list[str | None],
    runs: list[dict[str, Any]],
    change_at: list[bool],
) -> str:
    width = CELL * len(verdicts)
    parts = []
    for n, verdict in enumerate(verdicts):
        x = n * CELL
        if change_at[n]:
            parts.append(
                f'<line x1="{x}" y1="0" x2="{x}" y2="16" stroke="#1565c0" stroke-width="2"/>'
            )
        if verdict is None:
            continue
        title = f"#{n + 1} {runs[n]['run_id']}: {verdict}" + (
            f" ({reasons[n]})" if reasons[n] else ""
        )
        parts.append(
            f'<rect class="v {verdict}" x="{x + 2}" y="3" width="{CELL - 3}" height="10" '
            f'fill="{COLOURS.get(verdict, "#000")}"><title>{_e(title)}</title></rect>'
        )
    return f'<svg class="verdicts" width="{width}" height="16">{"".join(parts)}</svg>'


def _sparkline(
    stage: str, values: list[float | None], slow: list[bool], change_at: list[bool]
) -> str:
    known = [v for v in values if v is not None]
    top = max(known) or 1.0
    step = max(CELL, SPARK_MIN_WIDTH / len(values))  # px per run; a few runs still show a line
    width = round(step * len(values))

    def y(value: float) -> float:
        return round(SPARK_HEIGHT - 2 - (SPARK_HEIGHT - 4) * value / top, 1)

    points = " ".join(
        f"{round(n * step + step / 2, 1)},{y(v)}" for n, v in enumerate(values) if v is not None
    )
    marks = "".join(
        f'<circle cx="{round(n * step + step / 2, 1)}" cy="{y(v)}" r="3" fill="#c62828">'
        f"<title>{stage} {v:.2f}s: slower</title></circle>"
        for n, v in enumerate(values)
        if v is not None and slow[n]
    )
    lines = "".join(
        f'<line x1="{round(n * step)}" y1="0" x2="{round(n * step)}" y2="{SPARK_HEIGHT}" '
        'stroke="#1565c0" stroke-dasharray="2,2"/>'
        for n, changed in enumerate(change_at)
        if changed
    )
    latest = known[-1] if known else 0.0
    label_class = "stage slow" if any(slow) and slow[-1] else "stage"
    return (
        f'<span class="{label_class}">{stage} {latest:.2f}<br>'
        f'<svg class="spark" data-stage="{stage}" width="{width}" height="{SPARK_HEIGHT}">{lines}'
        f'<polyline points="{points}" fill="none" stroke="#444" stroke-width="1.2"/>{marks}'
        "</svg></span>"
    )


def _e(value: object) -> str:
    return html.escape(str(value))
