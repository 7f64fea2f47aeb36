"""The table shown when every compare pane has finished: the figures side by side, winners marked.

Winners: lowest TTFT, highest output tokens/s, lowest time to the last token. The token count
is shown but crowns nobody: a longer answer is not a better one, and the engines may count
with different tokenizers. Figures are the meters' own (:mod:`tedchat.metrics`); an engine
that reported emulated figures gets them in their own column, labelled. When an engine has
prices (``price_input_per_mtok``, ``price_output_per_mtok``) a ``cost`` column shows each
priced reply's cost (it crowns nobody either); without prices there is no such column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tedchat.gauges import Cost
from tedchat.metrics import StreamMeter, StreamMetrics

WINNER = "★ "


@dataclass(frozen=True)
class PaneResult:
    """One pane's outcome: who answered, and its meter (figures come from it)."""

    engine: str
    model: str
    metrics: StreamMetrics
    time_to_last_token_s: float | None
    cost: Cost | None = None  # the engine has prices


def time_to_last_token(meter: StreamMeter) -> float | None:
    """From handing the request to the engine to the last text delta, on the meter's clock.

    Read from the meter's own timestamps (the same ones TTFT and tok/s come from); the meter
    has no snapshot field for it.
    """
    if meter.t_start is None or meter.t_last is None:
        return None
    return meter.t_last - meter.t_start


def _winner(values: Sequence[float | None], best: Callable[[Sequence[float]], float]) -> set[int]:
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return set()  # nothing to win against
    target = best(present)
    return {i for i, v in enumerate(values) if v is not None and v == target}


def summary_table(results: Sequence[PaneResult]) -> Table:
    """The summary as a Rich table (also what the snapshot tests see)."""
    table = Table(title="Side by side", title_style="bold", expand=True, box=None, padding=(0, 1))
    columns: list[tuple[str, JustifyMethod]] = [
        ("engine", "left"),
        ("TTFT", "right"),
        ("tok/s", "right"),
        ("tokens", "right"),
        ("to last token", "right"),
        ("finish", "left"),
        ("emulated", "left"),
    ]
    priced = any(r.cost is not None for r in results)
    if priced:
        columns.insert(5, ("cost", "right"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    ttft = [r.metrics.ttft_s for r in results]
    tps = [r.metrics.output_tokens_per_s for r in results]
    last = [r.time_to_last_token_s for r in results]
    win_ttft, win_tps, win_last = _winner(ttft, min), _winner(tps, max), _winner(last, min)

    def cell(text: str, won: bool) -> Text:
        return Text(WINNER + text, style="bold green") if won else Text(text)

    for i, r in enumerate(results):
        m = r.metrics
        emulated = ""
        if m.emulated is not None:
            e = m.emulated
            kind = "replay" if e.replay else "emulated"
            emulated = (
                f"{kind} {e.systems}x {e.hardware}: TTFT {e.ttft_s * 1000:.1f} ms · "
                f"{e.output_tokens_per_s:.0f} tok/s"
            )
        cost = [Text(r.cost.text() if r.cost is not None else "-")] if priced else []
        table.add_row(
            Text.assemble((r.engine, "bold"), (f" · {r.model}", "dim")),
            cell(f"{m.ttft_s * 1000:.0f} ms" if m.ttft_s is not None else "-", i in win_ttft),
            cell(
                f"{'~' if m.approximate else ''}{m.output_tokens_per_s:.1f}"
                if m.output_tokens_per_s is not None
                else "-",
                i in win_tps,
            ),
            Text(m.tokens_label()),
            cell(f"{last[i]:.2f} s" if last[i] is not None else "-", i in win_last),
            *cost,
            Text(m.finish_reason or "-"),
            Text(emulated, style="italic"),
        )
    return table


class CompareSummary(Static):
    """Shows :func:`summary_table` once every pane has finished."""

    DEFAULT_CSS = """
    CompareSummary {
        height: auto;
        max-height: 9;
        padding: 0 1;
        background: $panel;
        display: none;
    }
    CompareSummary.-shown { display: block; }
    """

    def show(self, results: Sequence[PaneResult]) -> None:
        self.results = list(results)
        self.update(summary_table(results))
        self.add_class("-shown")

    def hide(self) -> None:
        self.remove_class("-shown")
