"""A cycle's timeline as inline SVG: a lane each for the host's stages, the platform's events,
the guest kernel and the guest's agent and ssh on one axis of seconds from the request, and
beneath, the slowest device callbacks on an axis of their own (milliseconds: on the cycle's
axis they would be a pixel wide). Every bar and event carries its exact figures as a title."""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import replace

from harness.results.timeline import LANES, Span, Timeline

Scale = Callable[[float], float]  # seconds from the request -> x in px

WIDTH = 760
LABEL_W = 64
PLOT_W = WIDTH - LABEL_W - 12
LANE_H = 24
PLATFORM_H = 34  # event names alternate between two rows here
AXIS_H = 20
ZOOM_LANES = ("host", "platform", "kernel", "guest")
ZOOM_BELOW = 0.2  # the sleep's share of the cycle's axis below which it is drawn again, closer
DEVICE_H = 15
DEVICE_LABEL_W = 300
CHAR_W = 6.2  # px per character of the 11px labels, to decide whether a label fits its bar
COLOURS = {
    "checks": "#90a4ae",
    "request": "#1976d2",
    "wake": "#388e3c",
    "freeze": "#7e57c2",
    "sleep": "#3949ab",
    "boot": "#8d6e63",
    "resume": "#00897b",
    "agent": "#ffb300",
    "ssh": "#f57c00",
    "failed": "#c62828",
    "device": "#5c7fc4",
    "event": "#d81b60",
}


def render(line: Timeline) -> str:
    """The whole figure; an empty string when the cycle recorded nothing to place."""
    if not line.spans and not line.marks:
        return ""
    parts, y = _panel(line, line.start, line.end, LANES, 4)
    window = _sleep_window(line)
    if window is not None:
        parts.append(
            f'<text class="lane" x="0" y="{y + 14}">the sleep and wake, closer '
            f"({window[0]:.2f} s to {window[1]:.2f} s)</text>"
        )
        zoomed, y = _panel(_within(line, *window), *window, ZOOM_LANES, y + 20)
        parts.append(f'<g class="zoom">{"".join(zoomed)}</g>')
    if line.devices:
        parts.append(_devices(line.devices, y))
        y += 18 + DEVICE_H * len(line.devices)
    return (
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{y + 4}" role="img" aria-label="timeline of the cycle">{"".join(parts)}</svg>'
    )


def _panel(
    line: Timeline, start: float, end: float, lanes: tuple[str, ...], y: int
) -> tuple[list[str], int]:
    """The lanes on one axis from ``start`` to ``end``; returns the parts and the next y."""
    scale = PLOT_W / max(end - start, 1e-3)

    def x(seconds: float) -> float:
        return round(LABEL_W + (seconds - start) * scale, 1)

    parts: list[str] = []
    for lane in lanes:
        height = PLATFORM_H if lane == "platform" else LANE_H
        parts.append(
            f'<text class="lane" x="0" y="{y + height / 2 + 4}">{lane}</text>'
            f'<line x1="{LABEL_W}" y1="{y + height}" x2="{WIDTH - 12}" y2="{y + height}" '
            'stroke="#eee"/>'
        )
        parts += [_span(s, x, y) for s in line.spans if s.lane == lane]
        if lane == "platform":
            parts += _marks(line, x, y)
        y += height
    parts.append(_axis(start, end, x, y))
    return parts, y + AXIS_H


def _sleep_window(line: Timeline) -> tuple[float, float] | None:
    """Where the kernel slept and woke, padded, when that is too short a part of the cycle
    to read on its axis."""
    kernel = [s for s in line.spans if s.lane == "kernel"]
    if not kernel:
        return None
    start, end = min(s.start for s in kernel), max(s.end for s in kernel)
    if end - start > ZOOM_BELOW * (line.end - line.start):
        return None
    pad = max((end - start) * 0.1, 0.005)
    return start - pad, end + pad


def _within(line: Timeline, start: float, end: float) -> Timeline:
    """The spans and events between ``start`` and ``end``, spans cut to fit."""
    return Timeline(
        spans=[
            replace(s, start=max(s.start, start), end=min(s.end, end))
            for s in line.spans
            if s.end > start and s.start < end
        ],
        marks=[m for m in line.marks if start <= m.at <= end],
    )


def _span(span: Span, x: Scale, y: int) -> str:
    left, right = x(span.start), x(span.end)
    width = max(right - left, 1.5)
    took = span.end - span.start
    figures = f"{span.label}: {span.start:.3f} s to {span.end:.3f} s ({took:.3f} s)"
    label = (
        f'<text class="in" x="{left + 3}" y="{y + LANE_H / 2 + 4}">{_e(span.label)}</text>'
        if width > CHAR_W * len(span.label) + 6
        else ""
    )
    return (
        f'<g class="span" data-lane="{span.lane}" data-kind="{span.kind}">'
        f'<rect x="{left}" y="{y + 3}" width="{round(width, 1)}" height="{LANE_H - 6}" rx="2" '
        f'fill="{COLOURS.get(span.kind, "#999")}"><title>{_e(figures)}</title></rect>{label}</g>'
    )


def _marks(line: Timeline, x: Scale, y: int) -> list[str]:
    """A line per event; the names of events too close to read apart share one label, and
    neighbouring labels take turns between two rows."""
    parts: list[str] = []
    groups: list[tuple[float, list[str]]] = []
    for mark in sorted(line.marks, key=lambda m: m.at):
        at = x(mark.at)
        parts.append(
            f'<g class="event" data-event="{_e(mark.label)}">'
            f'<line x1="{at}" y1="{y + 1}" x2="{at}" y2="{y + PLATFORM_H - 1}" '
            f'stroke="{COLOURS["event"]}" stroke-width="2">'
            f"<title>{_e(mark.label)} at {mark.at:.3f} s</title></line></g>"
        )
        if groups and at - groups[-1][0] < 8:
            groups[-1][1].append(mark.label)
        else:
            groups.append((at, [mark.label]))
    row, last_end = 0, -1e9
    for at, names in groups:
        text = ", ".join(names)
        row = 1 - row if at < last_end else 0
        last_end = at + CHAR_W * len(text) + 4
        # A name that would run off the figure's right edge ends at its line instead.
        anchor = 'text-anchor="end" ' if last_end > WIDTH else ""
        parts.append(
            f'<text class="event-name" {anchor}x="{at - 3 if anchor else at + 3}" '
            f'y="{y + 12 + 14 * row}" fill="{COLOURS["event"]}">{_e(text)}</text>'
        )
    return parts


def _axis(start: float, end: float, x: Scale, y: int) -> str:
    step = _tick_step(end - start)
    ticks = []
    tick = math.ceil(start / step) * step
    while tick <= end + 1e-9:
        at = x(tick)
        ticks.append(
            f'<line x1="{at}" y1="{y}" x2="{at}" y2="{y + 4}" stroke="#666"/>'
            f'<text class="tick" x="{at}" y="{y + 15}" text-anchor="middle">{tick:g} s</text>'
        )
        tick = round(tick + step, 9)
    return f'<g class="axis">{"".join(ticks)}</g>'


def _tick_step(span: float) -> float:
    """1, 2 or 5 times a power of ten, for about eight ticks."""
    raw = max(span, 1e-3) / 8
    power = 10 ** math.floor(math.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _devices(devices: list[tuple[str, float]], y: int) -> str:
    top = max(seconds for _, seconds in devices) or 1.0
    bar_w = WIDTH - DEVICE_LABEL_W - 70
    rows = [f'<text class="lane" x="0" y="{y + 12}">slowest device callbacks (ms)</text>']
    for n, (name, seconds) in enumerate(devices):
        row_y = y + 18 + DEVICE_H * n
        width = max(bar_w * seconds / top, 1.0)
        rows.append(
            f'<g class="device" data-device="{_e(name)}">'
            f'<text x="0" y="{row_y + 11}">{_e(name)}</text>'
            f'<rect x="{DEVICE_LABEL_W}" y="{row_y + 2}" width="{round(width, 1)}" '
            f'height="{DEVICE_H - 4}" fill="{COLOURS["device"]}"><title>{_e(name)}: '
            f"{seconds * 1000:.1f} ms</title></rect>"
            f'<text x="{DEVICE_LABEL_W + width + 4}" y="{row_y + 11}">{seconds * 1000:.1f}</text>'
            "</g>"
        )
    return f'<g class="devices">{"".join(rows)}</g>'


def _e(value: object) -> str:
    return html.escape(str(value))
