"""The prompt: a TextArea where Enter sends, Ctrl+J adds a new line, and up/down recall history.

Why these keys: terminals deliver Enter as ``\\r`` and Ctrl+J as ``\\n``, so both arrive as
distinct keys everywhere; Shift+Enter and Alt+Enter only reach the app in terminals that speak
an extended keyboard protocol (Shift+Enter is bound too, for those). Every binding has an id
(``send``, ``newline``, ``history-previous``, ``history-next``) for ``[keymap]``.

Up on the first line recalls the previous prompt, Down on the last line the next one (and
finally the draft that was being typed); elsewhere they move the cursor as usual.

``@path`` completion (when the screen sets ``mention_root``): while the word at the cursor
starts with ``@``, the paths completing it are posted (:class:`CompletionsChanged`) for the
screen to list, and Tab takes the first; a path taken this way is remembered in ``picked``
and attaches even when it is a folder (see :func:`tedchat.attachments.mentions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from tedchat.attachments import complete, mention_at

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

        def __init__(self, prompt: PromptInput, text: str, picked: frozenset[str]) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text
            #: The ``@paths`` picked from completion while it was typed.
            self.picked = picked

        @property
        def control(self) -> PromptInput:
            return self.prompt

    class CompletionsChanged(Message):
        """The paths completing the ``@word`` at the cursor (empty: none, hide the list)."""

        def __init__(self, candidates: list[str]) -> None:
            super().__init__()
            self.candidates = candidates

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
        #: Where ``@path`` completes from (None: no completion).
        self.mention_root: Path | None = None
        self.picked: set[str] = set()
        self.completions: list[str] = []

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
        elif event.key == "tab" and self.completions:
            event.stop()
            event.prevent_default()
            self.accept_completion(self.completions[0])

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
        picked = frozenset(self.picked)
        self.picked.clear()
        self.clear()
        self.post_message(self.Submitted(self, text, picked))

    # --- @path completion ------------------------------------------------------------------

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if event.text_area is self:
            self._update_completions()

    def on_text_area_selection_changed(self, event: TextArea.SelectionChanged) -> None:
        if event.text_area is self:
            self._update_completions()

    def _update_completions(self) -> None:
        found: list[str] = []
        if self.mention_root is not None:
            row, column = self.cursor_location
            at = mention_at(self.document.get_line(row), column)
            if at is not None:
                found = complete(at[1], self.mention_root)
                if found == [at[1]]:  # already complete
                    found = []
        if found != self.completions:
            self.completions = found
            self.post_message(self.CompletionsChanged(list(found)))

    def accept_completion(self, candidate: str) -> None:
        """Put ``candidate`` in place of the ``@word`` at the cursor and remember it as
        picked; a folder (``dir/``) stays open for the next part, a file ends the word."""
        row, column = self.cursor_location
        at = mention_at(self.document.get_line(row), column)
        if at is None:
            return
        end = "" if candidate.endswith("/") else " "
        self.replace(candidate + end, (row, at[0] + 1), (row, column))
        self.picked.add(candidate.rstrip("/"))
        self._update_completions()

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
