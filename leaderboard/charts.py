"""Per-category bar charts as inline SVG, laid out here and drawn by ``templates/chart.svg.j2``.

The geometry is a pure function of the values, so the site needs no JavaScript and no network to
show a chart, and the same input always gives the same bytes. Labels are passed to the template as
plain strings and escaped there (autoescape), never concatenated into markup here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from leaderboard.rows import MetricValue, metric_number


@dataclass(frozen=True)
class Bar:
    label: str
    value_text: str
    y: float
    width: float
    whisker: tuple[float, float] | None  # x of the CI's ends, when the CI is known
    text_x: float  # where the value label starts: right of the bar and of its whisker


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart: ``bars`` top to bottom, ``ticks`` as (x, text) along the axis."""

    title: str
    width: int
    height: int
    plot_left: float
    plot_width: float
    bar_height: float
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...]


def _nice_step(span: float) -> float:
    """A 1-2-5 step giving about five ticks over ``span``."""
    raw = span / 5 if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def bar_chart(
    title: str,
    values: dict[str, MetricValue],
    labels: dict[str, str] | None = None,
    *,
    width: int = 620,
    bar_height: float = 26.0,
    decimals: int = 1,
) -> BarChart:
    """Lay out one bar per key of ``values`` (in order); the axis starts at zero.

    ``labels`` maps keys to display names (default: the keys). Non-finite values draw no bar and show
    "n/a".
    """
    labels = labels or {}
    finite = [v for v in values.values() if v.finite]
    tops = [v.ci_high if v.ci_high is not None else v.value for v in finite]
    top = max(tops + [v.value for v in finite] + [1e-9])
    step = _nice_step(top)
    axis_max = step * math.ceil(top / step)
    # Room on the left for the longest category name ("Spatial & Structural Geometry") at 13 px.
    plot_left, pad_right, pad_top = 240.0, 60.0, 34.0
    plot_width = width - plot_left - pad_right
    scale = plot_width / axis_max

    bars = []
    for i, (key, mv) in enumerate(values.items()):
        y = pad_top + i * (bar_height + 10)
        if not mv.finite:
            bars.append(Bar(labels.get(key, key), "n/a", y, 0.0, None, plot_left + 6))
            continue
        whisker = None
        if mv.ci_low is not None and mv.ci_high is not None:
            whisker = (plot_left + max(mv.ci_low, 0.0) * scale, plot_left + mv.ci_high * scale)
        bar_width = max(mv.value, 0.0) * scale
        text_x = max(plot_left + bar_width, whisker[1] if whisker else 0.0) + 6
        label = metric_number(mv.value, decimals)
        bars.append(Bar(labels.get(key, key), label, y, bar_width, whisker, text_x))
    n_ticks = round(axis_max / step)
    ticks = tuple((plot_left + k * step * scale, f"{k * step:g}") for k in range(n_ticks + 1))
    height = int(pad_top + len(values) * (bar_height + 10) + 30)
    return BarChart(title, width, height, plot_left, plot_width, bar_height, tuple(bars), ticks)
