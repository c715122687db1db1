"""A self-contained HTML page of a matrix: cases by cells coloured by verdict, each opening its
evidence (checks, events, kernel PM lines, the end of the serial log), and latency plots per
cell. One file, no network: the data is embedded as JSON and drawn by a small script."""

from __future__ import annotations

import html
import json
import statistics
from pathlib import Path
from typing import Any

from harness.results.device_times import cycle_device_times
from harness.results.merge import case_name

SERIAL_TAIL_LINES = 150
LATENCIES = ("request_to_entry", "wake_to_ready", "checks_after", "cycle_total")


def evidence_index(run_dirs: list[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """(case, cell) -> the evidence a reader opens, from each run's results.json and logs."""
    index: dict[tuple[str, str], dict[str, Any]] = {}
    for run_dir in run_dirs:
        data = json.loads((run_dir / "results.json").read_text())
        for record in data["tests"]:
            cell = record.get("cell")
            if not cell:
                continue
            cycles = [c for s in record.get("series") or [] for c in s.get("cycles", [])]
            index[(case_name(record["test"], cell), cell)] = {
                "error": record.get("error", "")[-1500:],
                "cycles": [_cycle(c, run_dir) for c in cycles],
            }
    return index


def _cycle(cycle: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    evidence = cycle.get("evidence", {})
    serial = run_dir / cycle.get("artifacts", {}).get("serial_log", "-")
    tail = (
        serial.read_text(errors="replace").splitlines()[-SERIAL_TAIL_LINES:]
        if serial.is_file()
        else []
    )
    return {
        "transition": evidence.get("transition"),
        "verdict": cycle.get("verdict"),
        "reason": cycle.get("reason"),
        "checks": [
            {"name": c["name"], "passed": c["passed"], "detail": c["detail"]}
            for c in cycle.get("checks", [])
        ],
        "events": [
            f"{e['event']} {' '.join(e.get('signals', []))}".strip()
            for e in evidence.get("events", [])
        ],
        "kernel": evidence.get("kernel_messages", [])[:80],
        "timings": {k: round(v, 2) for k, v in evidence.get("timings", {}).items()}
        | {k: round(v, 3) for k, v in cycle_device_times(cycle).items()},  # slowest callbacks
        "combination": cycle.get("combination", {}),
        "serial_tail": tail[-SERIAL_TAIL_LINES:],
    }


def latency_medians(index: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per cell, the median of each stage's seconds over all its cycles."""
    samples: dict[str, dict[str, list[float]]] = {}
    for (_, cell), entry in index.items():
        for cycle in entry["cycles"]:
            for name in LATENCIES:
                if name in cycle["timings"]:
                    samples.setdefault(cell, {}).setdefault(name, []).append(cycle["timings"][name])
    return {
        cell: {name: round(statistics.median(values), 2) for name, values in by_stage.items()}
        for cell, by_stage in sorted(samples.items())
    }


def render(matrix: dict[str, Any], run_dirs: list[Path]) -> str:
    index = evidence_index(run_dirs)
    data = {
        "runs": matrix.get("runs", []),
        "cells": list(matrix["cells"]),
        "cases": {
            case: {
                cell: {**entry, **index.get((case, cell), {"cycles": [], "error": ""})}
                for cell, entry in by_cell.items()
            }
            for case, by_cell in matrix["cases"].items()
        },
        "latencies": latency_medians(index),
    }
    payload = json.dumps(data).replace("</", "<\\/")
    runs = data["runs"]
    title = html.escape(f"S3/S4 results: {runs[0] if len(runs) == 1 else f'{len(runs)} runs'}")
    return PAGE.replace("@TITLE@", title).replace("@DATA@", payload)


def write(matrix: dict[str, Any], run_dirs: list[Path], path: Path) -> Path:
    path.write_text(render(matrix, run_dirs))
    return path


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>@TITLE@</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table.matrix { border-collapse: collapse; }
.matrix th, .matrix td { border: 1px solid #ccc; padding: 4px 8px; }
.matrix th.cell { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: normal; }
td.v { text-align: center; cursor: pointer; font-weight: bold; }
.PASS { background: #c8f0c8; } .FAIL { background: #f5b5b5; } .ERROR { background: #f0c080; }
.UNSUPPORTED { background: #e0e0e0; } .XFAIL { background: #f5e0a0; }
#evidence { margin-top: 1.5em; border-top: 2px solid #888; }
pre { background: #f6f6f6; padding: .5em; max-height: 24em; overflow: auto; font-size: 12px; }
.bar { fill: #6a8fd0; } .plot text { font-size: 11px; }
</style></head><body>
<h1>@TITLE@</h1>
<h2>Cases by cells</h2>
<table class="matrix" id="matrix"></table>
<h2>Median stage latencies per cell (seconds)</h2>
<div id="plots"></div>
<div id="evidence"><p>Click a verdict to open its evidence.</p></div>
<script id="data" type="application/json">@DATA@</script>
<script>
const data = JSON.parse(document.getElementById("data").textContent);
const el = (tag, attrs = {}, text = "") => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
};
const table = document.getElementById("matrix");
const head = el("tr");
head.appendChild(el("th", {}, "case"));
for (const cell of data.cells) head.appendChild(el("th", {class: "cell"}, cell));
table.appendChild(head);
for (const [name, byCell] of Object.entries(data.cases)) {
  const row = el("tr");
  row.appendChild(el("td", {}, name));
  for (const cell of data.cells) {
    const entry = byCell[cell];
    const td = el("td", entry ? {class: "v " + entry.verdict} : {}, entry ? entry.verdict : "");
    if (entry) td.addEventListener("click", () => show(name, cell, entry));
    row.appendChild(td);
  }
  table.appendChild(row);
}
function show(name, cell, entry) {
  const box = document.getElementById("evidence");
  box.replaceChildren(el("h2", {id: "evidence-title"}, name + " on " + cell));
  box.appendChild(el("p", {}, entry.verdict + (entry.reason ? ": " + entry.reason : "")));
  if (entry.error) box.appendChild(el("pre", {}, entry.error));
  for (const cycle of entry.cycles) {
    box.appendChild(el("h3", {}, (cycle.transition || "") + ": " + cycle.verdict));
    const checks = el("ul", {class: "checks"});
    for (const c of cycle.checks)
      checks.appendChild(el("li", {class: c.passed ? "PASS" : "FAIL"}, c.name + ": " + c.detail));
    box.appendChild(checks);
    box.appendChild(el("h4", {}, "events"));
    box.appendChild(el("pre", {class: "events"}, cycle.events.join("\\n")));
    box.appendChild(el("h4", {}, "timings (s)"));
    box.appendChild(el("pre", {}, JSON.stringify(cycle.timings, null, 1)));
    box.appendChild(el("h4", {}, "as detected"));
    box.appendChild(el("pre", {}, JSON.stringify(cycle.combination, null, 1)));
    box.appendChild(el("h4", {}, "kernel PM lines"));
    box.appendChild(el("pre", {class: "kernel"}, cycle.kernel.join("\\n")));
    box.appendChild(el("h4", {}, "serial log (end)"));
    box.appendChild(el("pre", {class: "serial"}, cycle.serial_tail.join("\\n")));
  }
  box.scrollIntoView();
}
const NS = "http://www.w3.org/2000/svg";
for (const [cell, stages] of Object.entries(data.latencies)) {
  const names = Object.keys(stages), top = Math.max(...Object.values(stages), 1);
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "plot"); svg.setAttribute("width", 520);
  svg.setAttribute("height", 22 * names.length + 24);
  const label = document.createElementNS(NS, "text");
  label.setAttribute("x", 0); label.setAttribute("y", 14); label.textContent = cell;
  svg.appendChild(label);
  names.forEach((name, i) => {
    const y = 24 + 22 * i, width = 300 * stages[name] / top;
    const text = document.createElementNS(NS, "text");
    text.setAttribute("x", 0); text.setAttribute("y", y + 13);
    text.textContent = name + " " + stages[name];
    const bar = document.createElementNS(NS, "rect");
    bar.setAttribute("class", "bar"); bar.setAttribute("x", 200); bar.setAttribute("y", y);
    bar.setAttribute("width", width); bar.setAttribute("height", 16);
    svg.append(text, bar);
  });
  document.getElementById("plots").appendChild(svg);
}
// #open=<case>|<cell> opens that evidence on load (a link to one result).
if (location.hash.startsWith("#open=")) {
  const [name, cell] = decodeURIComponent(location.hash.slice(6)).split("|");
  if (data.cases[name] && data.cases[name][cell]) show(name, cell, data.cases[name][cell]);
}
document.body.setAttribute("data-rendered", "yes");
</script></body></html>
"""
