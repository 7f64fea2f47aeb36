"""A blind pane of the arena: labelled ``A``, ``B``, ... with nothing that names its engine until
the vote.

Before the vote a :class:`BlindPane` shows its label (and a flag when its engine runs the same
text model as another pane) and hides its status line (engine, load state, figures, emulated
labels); each :class:`BlindReplyView` captions its reply with the label and a state word only
(``waiting…``, ``streaming…``, ``answered``, ``stopped``, ``error``) and holds back the notes an
engine adds to a reply. :meth:`BlindPane.reveal` shows everything that was held back: the
engine, the model, the figures and the notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tedchat.metrics import StreamMetrics
from tedchat.tui.widgets.compare_pane import ComparePane
from tedchat.tui.widgets.messages import ReplyView, UserMessage, reply_caption
from tedchat.tui.widgets.status_bar import StatusLine


class BlindReplyView(ReplyView):
    """A reply captioned by its pane's label until :meth:`reveal`."""

    def __init__(self, engine: str, model: str, label: str, **kwargs: Any) -> None:
        super().__init__(engine, model, **kwargs)
        self.label = label
        self.hidden = True
        self._state = "waiting…"
        self._real_caption: str | None = None
        self._held: list[str] = []

    def _with_branch(self, caption: str) -> str:
        if self.hidden:
            return f"{self.label} · {self._state}"
        return super()._with_branch(caption)

    def set_caption(self, text: str) -> None:
        self._real_caption = text
        super().set_caption(text)

    def begin_stream(self) -> None:
        self._state = "streaming…"
        super().begin_stream()

    def set_result(self, metrics: StreamMetrics | None, error: str | None = None) -> None:
        reason = metrics.finish_reason if metrics is not None else None
        if error is not None or reason == "error":
            self._state = "error (shown after the vote)"
        elif reason == "cancelled":
            self._state = "stopped"
        else:
            self._state = "answered"
        super().set_result(metrics, error)

    def add_notice(self, text: str) -> None:
        if self.hidden:
            self._held.append(text)  # "pacing lags", "context trimmed": they name the kind
            return
        super().add_notice(text)

    def reveal(self) -> None:
        """Caption with the engine, model and figures; show the notes held back."""
        self.hidden = False
        if self.is_mounted:
            self.set_caption(
                self._real_caption or reply_caption(self.engine_name, self.model_name, None)
            )
        for text in self._held:
            super().add_notice(text)
        self._held.clear()


class BlindPane(ComparePane):
    """A compare pane that shows only its label until :meth:`reveal`."""

    DEFAULT_CSS = """
    BlindPane.-blind > StatusLine { display: none; }
    BlindPane > .pane-title.-flagged { color: $warning; }
    BlindPane > .pane-title.-winner { background: $success 40%; }
    """

    def __init__(
        self,
        engine_name: str,
        model: str,
        label: str,
        shared_with: Sequence[str] = (),
        **kwargs: object,
    ) -> None:
        super().__init__(engine_name, model, **kwargs)
        self.label = label
        self.shared_with = list(shared_with)
        self.hidden = True
        self.winner = False
        self.add_class("-blind")

    def compose(self) -> ComposeResult:
        yield Static(self._title(), classes="pane-title")
        yield VerticalScroll()
        yield StatusLine()

    def on_mount(self) -> None:
        self._retitle()  # ComparePane.on_mount runs as well (Textual calls every class's)

    def _title(self) -> Text:
        parts: list[tuple[str, str] | str] = [(self.label, "bold")]
        if not self.hidden:
            parts += [(f" · {self.engine_name}", "bold"), (f" · {self.model}", "")]
        if self.winner:
            parts.append((" ★ winner", "bold"))
        if self.shared_with:
            others = ", ".join(self.shared_with)
            parts.append((f" ⚠ same text model as {others}: not ranked", "italic"))
        return Text.assemble(*parts)

    def _retitle(self) -> None:
        if self.is_mounted:
            title = self.query_one(".pane-title", Static)
            title.update(self._title())
            title.set_class(bool(self.shared_with), "-flagged")
            title.set_class(self.winner, "-winner")

    def add_exchange(self, prompt: str) -> ReplyView:
        view = BlindReplyView(self.engine_name, self.model, self.label)
        if not self.hidden:
            view.hidden = False
        self.log_view.mount(UserMessage(prompt), view)
        self.log_view.anchor()
        return view

    def reveal(self, *, winner: bool) -> None:
        """Name the engine and model, show the figures, mark the winner."""
        self.hidden = False
        self.winner = winner
        self.remove_class("-blind")
        for view in self.query(BlindReplyView):
            view.reveal()
        self._retitle()

    async def hide(self, engine_name: str, model: str, label: str, shared_with: list[str]) -> None:
        """Start a new blind round as ``label`` for ``engine_name`` (earlier answers cleared:
        read after a reveal, they would name the engine)."""
        self.engine_name, self.model, self.label = engine_name, model, label
        self.shared_with = shared_with
        self.hidden, self.winner = True, False
        self.add_class("-blind")
        await self.log_view.remove_children()
        self.status.show_figures(None)
        self.status.reset_rates()
        self._retitle()
