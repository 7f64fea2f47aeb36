"""The prompt: a TextArea where Enter sends, Ctrl+J adds a new line, and up/down recall history.

Why these keys: terminals deliver Enter as ``\\r`` and Ctrl+J as ``\\n``, so both arrive as
distinct keys everywhere; Shift+Enter and Alt+Enter only reach the app in terminals that speak
an extended keyboard protocol (Shift+Enter is bound too, for those). Every binding has an id
(``send``, ``newline``, ``history-previous``, ``history-next``) for ``[keymap]``.

Up on the first line recalls the previous prompt, Down on the last line the next one (and
finally the draft that was being typed); elsewhere they move the cursor as usual.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

PLACEHOLDER = "Ask anything · Enter sends · Ctrl+J new line · ↑ history"


class PromptInput(TextArea):
    """A multi-line prompt with send-on-Enter and input history."""

    DEFAULT_CSS = """
    PromptInput {
        height: auto;
        min-height: 3;
        max-height: 10;
        border: tall $primary 50%;
        padding: 0 1;
    }
    PromptInput:focus { border: tall $primary; }
    """

    BINDINGS = [
        # Handled in _on_key (see there); the binding gives the key its id, help and footer.
        Binding("enter", "send", "Send", id="send"),
        Binding("ctrl+j,shift+enter", "newline", "New line", id="newline", show=False),
        Binding("up", "history_previous", "Previous prompt", id="history-previous", show=False),
        Binding("down", "history_next", "Next prompt", id="history-next", show=False),
    ]

    class Submitted(Message):
        """The user sent ``text`` (already stripped of surrounding blank lines)."""

        def __init__(self, prompt: PromptInput, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

        @property
        def control(self) -> PromptInput:
            return self.prompt

    def __init__(self, sent: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("placeholder", PLACEHOLDER)
        kwargs.setdefault("soft_wrap", True)
        kwargs.setdefault("show_line_numbers", False)
        kwargs.setdefault("highlight_cursor_line", False)
        super().__init__(**kwargs)
        # Not ``history``: TextArea uses that name for its undo history.
        self.sent: list[str] = list(sent or [])
        self._index: int | None = None  # position in history while browsing it
        self._draft = ""

    # --- keys ------------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        """Send on the ``send`` keys, here, in the order keys arrive.

        Not as a priority binding: those run as the app receives a key, while typed characters
        wait in this widget's queue, so a fast "hello⏎" (or a paste ending in a newline) sent
        "hel" and left "lo" behind. TextArea inserts a newline for Enter, so it must be
        intercepted before TextArea sees it.
        """
        if event.key in self._send_keys():
            event.stop()
            event.prevent_default()
            self.action_send()

    def _send_keys(self) -> set[str]:
        keymap = getattr(self.app, "keymap", {}) or {}
        keys = keymap.get("send", "enter")
        return {key.strip() for key in keys.split(",") if key.strip()}

    # --- actions ---------------------------------------------------------------------------

    def action_send(self) -> None:
        text = self.text.strip("\n")
        if not text.strip():
            return
        self.remember(text)
        self.clear()
        self.post_message(self.Submitted(self, text))

    def action_newline(self) -> None:
        self.insert("\n")

    def action_history_previous(self) -> None:
        if self.cursor_location[0] > 0 or not self.sent:
            self.action_cursor_up()
            return
        if self._index is None:
            self._draft = self.text
            self._index = len(self.sent)
        if self._index > 0:
            self._index -= 1
            self._show(self.sent[self._index])

    def action_history_next(self) -> None:
        last_row = self.document.line_count - 1
        if self.cursor_location[0] < last_row or self._index is None:
            self.action_cursor_down()
            return
        self._index += 1
        if self._index >= len(self.sent):
            self._index = None
            self._show(self._draft)
        else:
            self._show(self.sent[self._index])

    # --- helpers ---------------------------------------------------------------------------

    def remember(self, text: str) -> None:
        """Add a sent prompt to the history (not twice in a row)."""
        if not self.sent or self.sent[-1] != text:
            self.sent.append(text)
        self._index = None
        self._draft = ""

    def set_text(self, text: str) -> None:
        """Replace the prompt's text and put the cursor at its end (edit a sent prompt)."""
        self._index = None
        self._show(text)
        self.focus()

    def _show(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)
