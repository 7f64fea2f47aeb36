"""The status bar (and the compare panes' status lines): engine, model, live figures, sparkline.

Figures are always :func:`tedchat.metrics.format_metrics_line` of the answer's meter snapshot:
one definition of TTFT, tokens/s and token counts everywhere (``~`` marks an approximate
count). The part after ``|`` is what emulated hardware would take (the wafer virtual clock); it
is drawn in its own colour and always says ``emulated`` (or ``replay``).

TTFT and tokens/s are the model's alone; the time tools ran is its own figure (``tools 1.20 s
in 2 steps``), and while a tool runs the line says so (``⚙ running read_file…``).

After the figures: the context gauge (``ctx 1,234/4,096``: the last request's prompt,
before trimming, by the engine's tokenizer, ``~`` when estimated, ``?`` after an assumed
context size, and what trimming left out) and, for an engine with prices, the last reply's
cost (``$0.0012``).

The sparkline draws the rate at which tokens arrived over the answer, one bar per frame-clock
sample. It is a picture of the stream's shape (stalls, bursts), not a figure; the number
beside it is the meter's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Sparkline, Static

from tedchat.gauges import ContextGauge, Cost
from tedchat.metrics import StreamMetrics, format_metrics_line
from tedchat.tui.loader import LoadState

#: Most sparkline samples kept; the widget folds them into its width.
MAX_SAMPLES = 600


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def figures_content(
    metrics: StreamMetrics | None, *, live: bool = False, activity: str | None = None
) -> Content:
    """The figures, with the emulated part marked off in its own colour; ``activity`` (a tool
    running) after them."""
    if metrics is None:
        content = Content.styled("TTFT - · - tok/s · 0 tokens", "$text-muted")
    else:
        line = format_metrics_line(metrics)
        measured, sep, emulated = line.partition(" | ")
        parts: list[str | tuple[str, str]] = [(measured, "$text" if live else "$text-muted")]
        if sep:
            parts.append(("  ◆ ", "$accent"))
            parts.append((emulated, "$accent"))
        content = Content.assemble(*parts)
    if activity:
        content = Content.assemble(content, ("  ⚙ ", "$accent"), (activity, "$accent"))
    return content


def load_content(state: LoadState) -> Content:
    """One line about an engine's load: progress, ready, or why it failed."""
    if state.error:
        return Content.assemble(("✗ ", "$error"), (f"{state.name}: {state.error}", "$error"))
    if state.ready:
        return Content.assemble(("● ", "$success"), (f"{state.name} ready", "$text-muted"))
    pct = f" {state.fraction * 100:.0f}%" if state.fraction is not None else ""
    return Content.assemble(("◌ ", "$warning"), (f"loading {state.name}: {state.stage}{pct}", ""))


class StatusLine(Horizontal):
    """Engine and model, the figures of the current answer, and its rate sparkline."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    StatusLine > #engine { width: auto; max-width: 40%; color: $text; text-style: bold; }
    /* The figures keep their room; on a narrow terminal the sparkline (a picture, not a
       figure) is what goes past the right edge. */
    StatusLine > #figures { width: 1fr; min-width: 40; padding: 0 0 0 2; }
    StatusLine > #gauges { width: auto; padding: 0 0 0 2; color: $text-muted; }
    StatusLine > Sparkline { width: 16; margin: 0 0 0 1; }
    StatusLine > Sparkline > .sparkline--max-color { color: $accent; }
    StatusLine > Sparkline > .sparkline--min-color { color: $accent 30%; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._samples: list[float] = []
        self._engine = ""
        self._model = ""
        self._load: LoadState | None = None
        self._figures: StreamMetrics | None = None
        self._activity: str | None = None
        self._gauge: ContextGauge | None = None
        self._cost: Cost | None = None
        self._shown: tuple[object, ...] | None = None
        self._gauges_shown: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="engine")
        yield Static(id="figures")
        yield Static(id="gauges")
        yield Sparkline([], summary_function=_mean)

    def on_mount(self) -> None:
        self._redraw()
        self._redraw_gauges()

    # --- what the line shows -----------------------------------------------------------------

    def set_engine(self, name: str, model: str) -> None:
        self._engine, self._model = name, model
        self._redraw()

    def show_load(self, state: LoadState | None) -> None:
        """Show a load in progress or failed; a finished load gives the line back to figures."""
        self._load = state if state is not None and not state.ready else None
        self._redraw()

    def show_figures(self, metrics: StreamMetrics | None, *, live: bool = False) -> None:
        """Show an answer's figures (called on every frame while it streams)."""
        self._figures = metrics
        self._live = live
        self._redraw()

    def show_activity(self, text: str | None) -> None:
        """What the answer does besides streaming (``running read_file…``); None: nothing."""
        self._activity = text
        self._redraw()

    def show_context(self, gauge: ContextGauge | None) -> None:
        """The context gauge of the request being answered (None: none yet)."""
        self._gauge = gauge
        self._redraw_gauges()

    def show_cost(self, cost: Cost | None) -> None:
        """The last reply's cost (None: the engine has no prices, or no reply yet)."""
        self._cost = cost
        self._redraw_gauges()

    @property
    def gauges_text(self) -> str:
        """The context gauge and cost as plain text (tests read this)."""
        return str(self.query_one("#gauges", Static).render())

    def _redraw_gauges(self) -> None:
        if not self.is_mounted:
            return
        key = (self._gauge, self._cost)
        if key == self._gauges_shown:
            return
        self._gauges_shown = key
        parts = []
        if self._gauge is not None:
            parts.append(self._gauge.text())
        if self._cost is not None:
            parts.append(self._cost.text())
        self.query_one("#gauges", Static).update(" · ".join(parts))

    def reset_rates(self) -> None:
        self._samples.clear()
        self.query_one(Sparkline).data = []

    def add_rate(self, rate: float) -> None:
        """One sparkline sample: tokens per second since the previous frame."""
        self._samples.append(max(0.0, rate))
        if len(self._samples) > MAX_SAMPLES:
            del self._samples[: len(self._samples) - MAX_SAMPLES]
        self.query_one(Sparkline).data = list(self._samples)

    @property
    def figures_text(self) -> str:
        """The figures as plain text (tests and the tmux run read this)."""
        return str(self.query_one("#figures", Static).render())

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        live = getattr(self, "_live", False)
        key = (self._engine, self._model, self._load, self._figures, live, self._activity)
        if key == self._shown:
            return  # nothing changed since the last frame: no repaint
        self._shown = key
        self.query_one("#engine", Static).update(
            Content.assemble((self._engine, "bold"), (f" · {self._model}", ""))
            if self._engine
            else Content("")
        )
        figures = self.query_one("#figures", Static)
        # The figures' box has a fixed size (CSS): repaint only. A layout here, on every frame,
        # made Textual re-arrange the whole screen 30 times a second.
        if self._load is not None:
            figures.update(load_content(self._load), layout=False)
        else:
            figures.update(
                figures_content(self._figures, live=live, activity=self._activity), layout=False
            )
