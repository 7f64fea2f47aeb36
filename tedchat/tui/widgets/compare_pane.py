"""One pane of a side-by-side comparison: an engine's answers and its own live status line."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from tedchat.tui.widgets.messages import ReplyView, UserMessage
from tedchat.tui.widgets.status_bar import StatusLine


class ComparePane(Vertical):
    """An engine's column: title, answers (following the bottom), status line."""

    DEFAULT_CSS = """
    ComparePane {
        width: 1fr;
        height: 1fr;
        border-right: vkey $panel;
    }
    ComparePane:last-of-type { border-right: none; }
    ComparePane > .pane-title {
        height: 1;
        background: $panel;
        padding: 0 1;
        text-style: bold;
    }
    ComparePane > VerticalScroll {
        height: 1fr;
        padding: 0 1;
        scrollbar-size-vertical: 1;
        scrollbar-gutter: stable;  /* a width that never changes: frozen answers keep fitting */
    }
    ComparePane > StatusLine { height: 2; }
    ComparePane > StatusLine > #figures { padding: 0; }
    ComparePane > StatusLine > Sparkline { width: 8; }
    """

    def __init__(self, engine_name: str, model: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.engine_name = engine_name
        self.model = model

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble((self.engine_name, "bold"), (f" · {self.model}", "")),
            classes="pane-title",
        )
        yield VerticalScroll()
        yield StatusLine()

    def on_mount(self) -> None:
        self.log_view.anchor()

    @property
    def log_view(self) -> VerticalScroll:
        return self.query_one(VerticalScroll)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    def add_exchange(self, prompt: str) -> ReplyView:
        """Show a prompt and an empty reply for it; the reply is returned for streaming."""
        view = ReplyView(self.engine_name, self.model)
        self.log_view.mount(UserMessage(prompt), view)
        self.log_view.anchor()
        return view
