"""Inline SVG charts for the page: overlaid histograms and line charts. Pure functions returning markup, every
label escaped; the page needs no charting library and no network."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

COLORS = ("#3b6fd4", "#e0663b", "#2f9e6e", "#a24bc2", "#c9a227", "#d4457a", "#5a8f9c", "#7a6a55")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def bin_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """How many values fall in each bin [edge_i, edge_i+1), the last bin closed."""
    counts = [0] * (len(edges) - 1)
    low, high = edges[0], edges[-1]
    width = (high - low) / len(counts) if high > low else 1.0
    for value in values:
        index = min(int((value - low) / width), len(counts) - 1) if high > low else 0
        counts[max(index, 0)] += 1
    return counts


class _Frame:
    """A chart's plotting area and its data-to-pixel mapping."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float]) -> None:
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = 44, width - 10, 22, height - 26
        self.x0, self.x1 = x if x[1] > x[0] else (x[0] - 0.5, x[0] + 0.5)
        self.y0, self.y1 = y if y[1] > y[0] else (y[0] - 0.5, y[0] + 0.5)

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def py(self, y: float) -> float:
        return self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def axes(self, title: str, xlabel: str) -> list[str]:
        parts = [f'<text x="{self.left}" y="14" font-weight="600">{escape(title)}</text>',
                 f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}" stroke="#888"/>',
                 f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.bottom}" stroke="#888"/>']
        for tick in nice_ticks(self.x0, self.x1):
            x = self.px(tick)
            parts.append(f'<text x="{x:.1f}" y="{self.bottom + 13}" text-anchor="middle">{_number(tick)}</text>')
        for tick in nice_ticks(self.y0, self.y1, 4):
            y = self.py(tick)
            parts.append(f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{self.left - 4}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
        parts.append(f'<text x="{self.right}" y="{self.height - 2}" text-anchor="end" fill="#666">'
                     f'{escape(xlabel)}</text>')
        return parts

    def svg(self, parts: Sequence[str], label: str) -> str:
        return (f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" {FONT}>{"".join(parts)}</svg>')


def histogram(groups: Mapping[str, Sequence[float]], title: str, bins: int = 30, width: int = 640,
              height: int = 240) -> str:
    """Overlaid step histograms of each group on shared bins, each group's mean dashed, with a legend."""
    values = [v for group in groups.values() for v in group]
    if not values:
        return ""
    low, high = min(values), max(values)
    edges = [low + (high - low) * i / bins for i in range(bins + 1)] if high > low else [low - 0.5, low + 0.5]
    counts = {label: bin_counts(group, edges) for label, group in groups.items() if group}
    frame = _Frame(width, height, (edges[0], edges[-1]), (0, max(max(c) for c in counts.values())))
    parts = frame.axes(title, "score")
    for number, (label, group_counts) in enumerate(counts.items()):
        color = COLORS[number % len(COLORS)]
        points = [f"{frame.px(edges[0]):.1f},{frame.py(0):.1f}"]
        for i, count in enumerate(group_counts):
            points += [f"{frame.px(edges[i]):.1f},{frame.py(count):.1f}",
                       f"{frame.px(edges[i + 1]):.1f},{frame.py(count):.1f}"]
        points.append(f"{frame.px(edges[-1]):.1f},{frame.py(0):.1f}")
        parts.append(f'<polygon points="{" ".join(points)}" fill="{color}" fill-opacity="0.18" stroke="{color}"/>')
        group = groups[label]
        mean = math.fsum(group) / len(group)
        x = frame.px(mean)
        parts.append(f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.bottom}" stroke="{color}" '
                     'stroke-dasharray="4 3"/>')
        parts.append(_legend(frame, number, color, f"{label} (n {len(group)}, mean {_number(mean)})"))
    return frame.svg(parts, title)


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], title: str, width: int = 320,
               height: int = 200) -> str:
    """One line per series (x, y points), with a legend when there is more than one."""
    points = [p for line in series.values() for p in line]
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    frame = _Frame(width, height, (min(xs), max(xs)), (min(ys), max(ys)))
    parts = frame.axes(title, "step")
    for number, (label, line) in enumerate(series.items()):
        color = COLORS[number % len(COLORS)]
        path = " ".join(f"{frame.px(x):.1f},{frame.py(y):.1f}" for x, y in line)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        if len(series) > 1:
            parts.append(_legend(frame, number, color, label))
    return frame.svg(parts, title)


def _legend(frame: _Frame, number: int, color: str, text: str) -> str:
    # Over the plot's top right, on a pale ground so the lines beneath do not cross the text.
    y = frame.top + 4 + 14 * number
    x = frame.right - min(200, 12 + 6 * len(text))
    return (f'<rect x="{x - 3}" y="{y - 2}" width="{frame.right - x + 3}" height="14" fill="#fff" '
            f'fill-opacity="0.85"/><rect x="{x}" y="{y}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{y + 9}">{escape(text)}</text>')


def _number(value: float) -> str:
    return f"{value:.3g}"
