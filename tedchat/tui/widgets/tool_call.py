"""A tool call as a block in the reply that made it: what was called, how it went, what came back.

Collapsed (the default) it is a header line — tool, source, the arguments on one line, status
and time — and the first lines of the result (or the error). Expanded (a click, or Enter/Space
when it has focus; Ctrl+T on the chat screen toggles every block of a reply) it shows the whole
arguments, pretty-printed, and the whole result. The block is drawn from its
:class:`~tedchat.tools.base.ToolCallRecord` and redrawn only when the call starts, ends, or its
running time moves on by a tenth of a second: nothing per streamed token.
"""

from __future__ import annotations

import json
from typing import Any

from textual.binding import Binding
from textual.content import Content
from textual.events import Click
from textual.widgets import Static

from tedchat.tools.base import ToolCallRecord

#: Lines of a result shown while the block is collapsed.
PREVIEW_LINES = 3
#: Characters of a line shown while collapsed (arguments and result lines).
PREVIEW_CHARS = 100

_STATUS: dict[str, tuple[str, str]] = {
    # status -> (label, style)
    "running": ("running…", "$accent"),
    "done": ("done", "$success"),
    "error": ("error", "$error"),
    "denied": ("denied", "$warning"),
    "cancelled": ("cancelled", "$warning"),
}


def one_line(text: str, limit: int = PREVIEW_CHARS) -> str:
    """``text`` on one line (runs of whitespace as one space), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def arguments_text(record: ToolCallRecord, *, pretty: bool = False) -> str:
    """The call's arguments as JSON (the model's own text when it was not a JSON object)."""
    if record.args is None:
        return record.arguments
    if pretty:
        return json.dumps(record.args, ensure_ascii=False, indent=2)
    return json.dumps(record.args, ensure_ascii=False, separators=(", ", ": "))


def format_elapsed(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _arguments_of(record: ToolCallRecord) -> str:
    if record.args is not None:
        return arguments_text(record)
    if not record.arguments:
        return ""
    try:  # still running: the toolbox has not parsed them yet
        parsed = json.loads(record.arguments)
    except ValueError:
        return record.arguments
    return json.dumps(parsed, ensure_ascii=False, separators=(", ", ": "))


def block_content(record: ToolCallRecord, *, expanded: bool, running_s: float | None) -> Content:
    """What a block shows for ``record`` (``running_s``: how long it has run, while it runs)."""
    label, style = _STATUS.get(record.status, (record.status, "$text-muted"))
    seconds = running_s if record.status == "running" else record.elapsed_s
    timing = f" · {format_elapsed(seconds)}" if seconds is not None else ""
    head: list[str | tuple[str, str]] = [
        ("▾ " if expanded else "▸ ", "$text-muted"),
        ("⚙ ", "$accent"),
        (record.name or "?", "bold"),
    ]
    if record.source:
        head.append((f"  {record.source}", "$text-muted"))
    args = _arguments_of(record)
    if args and not expanded:
        head.append(("  " + one_line(args), ""))
    head += [("  ", ""), (label, style), (timing, "$text-muted")]
    lines: list[Content] = [Content.assemble(*head)]
    if expanded:
        if args:
            lines.append(Content.styled("arguments:", "$text-muted"))
            lines.append(Content(arguments_text(record, pretty=True) if record.args else args))
        if record.error is not None:
            lines.append(Content.styled("error:", "$text-muted"))
            lines.append(Content.styled(record.error, "$error"))
        if record.result is not None:
            lines.append(Content.styled("result:", "$text-muted"))
            lines.append(Content(record.result))
    else:
        lines += _preview(record)
    return Content("\n").join(lines)


def _preview(record: ToolCallRecord) -> list[Content]:
    if record.error is not None:
        return [Content.styled(one_line(record.error), "$error")]
    if record.result is None:
        return []
    result_lines = record.result.splitlines() or [""]
    shown = [Content.styled(one_line(line) or " ", "$text-muted") for line in result_lines]
    if len(shown) > PREVIEW_LINES:
        more = len(shown) - PREVIEW_LINES
        note = f"… {more} more line{'s' if more != 1 else ''}"
        shown = [*shown[:PREVIEW_LINES], Content.styled(note, "$text-muted italic")]
    return shown


class ToolCallBlock(Static, can_focus=True):
    """One tool call in a reply (see the module docstring)."""

    DEFAULT_CSS = """
    ToolCallBlock {
        height: auto;
        margin: 0 0 1 0;
        padding: 0 1;
        background: $boost;
        border-left: outer $accent 50%;
    }
    ToolCallBlock:focus { background: $accent 15%; }
    """

    BINDINGS = [Binding("enter,space", "toggle_call", "Expand/collapse", id="toggle-tool-call")]

    def __init__(self, record: ToolCallRecord, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record
        self.expanded = False
        self._running_s: float | None = None
        self._drawn: tuple[object, ...] | None = None

    def on_mount(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Draw the record as it is now (after it started, ended or was expanded)."""
        record = self.record
        running = self._running_s if record.status == "running" else None
        tenths = round(running * 10) if running is not None else None
        key = (record.status, record.result, record.error, record.args, self.expanded, tenths)
        if key == self._drawn:
            return
        self._drawn = key
        self.update(block_content(record, expanded=self.expanded, running_s=running))

    def show_running(self, seconds: float) -> None:
        """While the call runs: how long it has run so far (redrawn every tenth of a second)."""
        self._running_s = seconds
        self.redraw()

    def toggle(self, expanded: bool | None = None) -> None:
        """Expand or collapse (``None``: the other way round)."""
        self.expanded = (not self.expanded) if expanded is None else expanded
        self.redraw()

    def action_toggle_call(self) -> None:
        self.toggle()

    def on_click(self, event: Click) -> None:
        if event.chain == 1:
            self.toggle()
