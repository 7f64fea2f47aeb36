"""Bar charts of a bench summary, drawn two ways from the same data.

:func:`engine_charts` and :func:`prompt_charts` decide *what* is charted (medians, with their
min..max range, emulated figures as bars of their own beside the measured ones);
:func:`unicode_bars` draws a chart for the terminal with block characters (eighth-cell
resolution), :func:`svg_bars` as inline SVG for the HTML report.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A cell split into eighths: index k draws k/8 of a cell.
EIGHTHS = " ▏▎▍▌▋▊▉"
FULL = "█"

MEASURED_COLOUR = "#2563eb"
EMULATED_COLOUR = "#d97706"


@dataclass(frozen=True)
class Bar:
    """One bar: a median with its range; ``note`` is shown after the value (a ratio)."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None
    emulated: bool = False
    note: str = ""


@dataclass(frozen=True)
class Chart:
    """A titled set of bars in one unit."""

    title: str
    unit: str
    bars: tuple[Bar, ...]
    higher_is_better: bool

    @property
    def subtitle(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


def _ms(spread: Mapping[str, Any] | None, key: str) -> float | None:
    return None if spread is None or spread.get(key) is None else spread[key] * 1000.0


def _bars(
    rows: Sequence[Mapping[str, Any]], metric: str, scale: float, label_key: str = "engine"
) -> tuple[Bar, ...]:
    bars = []
    for row in rows:
        s = row.get(metric)
        ratio = row.get(f"ratio_{metric}")
        note = format_ratio(ratio) if ratio is not None and len(rows) > 1 else ""
        if s is not None:
            bars.append(
                Bar(
                    str(row[label_key]),
                    s["median"] * scale,
                    s["min"] * scale,
                    s["max"] * scale,
                    note=note,
                )
            )
        emulated = row.get("emulated")
        if emulated and emulated.get(metric):
            e = emulated[metric]
            bars.append(
                Bar(
                    f"{row[label_key]} · {emulated['label']}",
                    e["median"] * scale,
                    e["min"] * scale,
                    e["max"] * scale,
                    emulated=True,
                )
            )
    return tuple(bars)


def engine_charts(summary: Mapping[str, Any]) -> list[Chart]:
    """Output tokens/s and TTFT per engine (all measured runs of every prompt pooled)."""
    rows = summary["engines"]
    charts = [
        Chart("Output tokens/s (median)", "tok/s", _bars(rows, "output_tokens_per_s", 1.0), True),
        Chart("Time to first token (median)", "ms", _bars(rows, "ttft_s", 1000.0), False),
    ]
    concurrent = [r for r in rows if r.get("aggregate_output_tokens_per_s")]
    if concurrent:
        charts.append(
            Chart(
                "Aggregate output tokens/s of concurrent requests (median)",
                "tok/s",
                _bars(concurrent, "aggregate_output_tokens_per_s", 1.0),
                True,
            )
        )
    return [c for c in charts if c.bars]


def prompt_charts(summary: Mapping[str, Any], prompt_id: str) -> list[Chart]:
    """Output tokens/s and TTFT per engine for one prompt."""
    rows = [r for r in summary["prompts"] if r["prompt_id"] == prompt_id]
    charts = [
        Chart(
            f"{prompt_id}: output tokens/s", "tok/s", _bars(rows, "output_tokens_per_s", 1.0), True
        ),
        Chart(f"{prompt_id}: TTFT", "ms", _bars(rows, "ttft_s", 1000.0), False),
    ]
    return [c for c in charts if c.bars]


def decimals(value: float) -> int:
    """Decimals that show ``value`` to about three significant digits."""
    return 0 if value >= 100 else 1 if value >= 10 else 2


def format_value(value: float, unit: str, like: float | None = None) -> str:
    """A figure as charts show it, with the decimals suited to ``like`` (default: itself)."""
    text = f"{value:.{decimals(value if like is None else like)}f}"
    return f"{text} {unit}".strip()


def format_ratio(ratio: float | None) -> str:
    """A ratio against the baseline: ``x1.52``; small ones keep two significant digits."""
    if ratio is None:
        return "-"
    if ratio >= 10:
        return f"x{ratio:.1f}"
    if ratio >= 0.1:
        return f"x{ratio:.2f}"
    return f"x{ratio:.2g}"


# --- terminal ------------------------------------------------------------------------------


def block_bar(value: float, top: float, width: int) -> str:
    """A bar of ``value`` on a scale where ``top`` fills ``width`` cells, in eighths of a cell.

    A positive value never draws as nothing (one eighth at least), so no engine vanishes from a
    chart where another is a hundred times faster.
    """
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / top * width * 8))
    full, rest = divmod(min(eighths, width * 8), 8)
    return FULL * full + (EIGHTHS[rest] if rest else "")


def text_width(text: str) -> int:
    """Cells ``text`` takes in a terminal (wide East Asian characters take two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def unicode_bars(chart: Chart, width: int = 40) -> list[str]:
    """The chart as terminal lines: title, then ``label │bar value (min–max) note`` rows."""
    top = max(b.value for b in chart.bars)
    label_w = max(text_width(b.label) for b in chart.bars)
    lines = [f"{chart.title}, {chart.unit} ({chart.subtitle})"]
    for b in chart.bars:
        bar = block_bar(b.value, top, width)
        pad = " " * (width - text_width(bar))
        figure = format_value(b.value, chart.unit)
        if b.low is not None and b.high is not None and b.high > b.low:
            low, high = format_value(b.low, "", b.value), format_value(b.high, "", b.value)
            figure += f" ({low}–{high})"
        if b.note:
            figure += f" {b.note}"
        label = b.label + " " * (label_w - text_width(b.label))
        lines.append(f"  {label} │{bar}{pad} {figure}")
    return lines


# --- HTML ----------------------------------------------------------------------------------


def svg_bars(chart: Chart, width: int = 720) -> str:
    """The chart as an inline SVG: bars for medians, a thin line for each min..max range."""
    row_h, top_pad, label_w, value_w = 26, 30, 260, 150
    plot_w = width - label_w - value_w
    height = top_pad + row_h * len(chart.bars) + 8
    top = max(max(b.high or b.value, b.value) for b in chart.bars) or 1.0
    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(chart.title)}">',
        f'<text x="0" y="18" class="title">{esc(chart.title)}, {esc(chart.unit)} '
        f'<tspan class="sub">({esc(chart.subtitle)})</tspan></text>',
    ]
    for i, b in enumerate(chart.bars):
        y = top_pad + i * row_h
        w = max(1.0, b.value / top * plot_w) if b.value > 0 else 0.0
        colour = EMULATED_COLOUR if b.emulated else MEASURED_COLOUR
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" class="label">'
            f"{esc(b.label)}</text>"
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 10}" '
            f'fill="{colour}" rx="2"><title>{esc(format_value(b.value, chart.unit))}</title></rect>'
        )
        if b.low is not None and b.high is not None and b.high > b.low:
            x1 = label_w + b.low / top * plot_w
            x2 = label_w + b.high / top * plot_w
            mid = y + row_h / 2 - 1
            parts.append(
                f'<path d="M{x1:.1f} {mid:.1f}H{x2:.1f}M{x1:.1f} {mid - 5:.1f}V{mid + 5:.1f}'
                f'M{x2:.1f} {mid - 5:.1f}V{mid + 5:.1f}" class="range"/>'
            )
        value = format_value(b.value, chart.unit) + (f" {b.note}" if b.note else "")
        parts.append(
            f'<text x="{label_w + plot_w + 8}" y="{y + 16}" class="value">{esc(value)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
