"""The conversation list: new, resume, rename, delete and search, from the history store.

Dismisses with a :class:`HistoryChoice`; ``deleted`` lists the conversations deleted meanwhile,
so the chat screen can let go of one it is showing. Search uses the store's full-text index
(Japanese substrings included); an empty search box lists conversations newest first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from tedchat.errors import HistoryError
from tedchat.tui.screens.pickers import TextPrompt, modal_css

LIST_LIMIT = 200


@dataclass
class HistoryChoice:
    """What the user chose: ``open`` a conversation, start a ``new`` one, or nothing (None)."""

    action: str | None
    conversation_id: int | None = None
    deleted: list[int] = field(default_factory=list)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


class HistoryScreen(ModalScreen[HistoryChoice]):
    """Browse and manage the stored conversations."""

    DEFAULT_CSS = (
        modal_css("HistoryScreen")
        + """
    HistoryScreen > Vertical { width: 110; height: 85%; }
    HistoryScreen OptionList { height: 1fr; }
    HistoryScreen #search { margin: 0 0 1 0; }
    """
    )
    BINDINGS = [
        Binding("escape", "close", "Close", id="close-history"),
        Binding("slash", "focus_search", "Search", id="history-search"),
        Binding("n", "new", "New", id="history-new"),
        Binding("r", "rename", "Rename", id="history-rename"),
        Binding("d,delete", "delete", "Delete", id="history-delete"),
    ]

    def __init__(self, store: Any, current: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.current = current
        self.deleted: list[int] = []
        self._titles: dict[int, str] = {}
        self._armed_delete: int | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Conversations", classes="title")
            yield Input(
                placeholder="search all messages (Enter) · / to come back here", id="search"
            )
            yield OptionList(id="conversations")
            yield Label(
                "Enter opens · n new · r rename · d delete · / search · Esc closes",
                classes="hint",
                id="hint",
            )

    def on_mount(self) -> None:
        self.refresh_list()
        self.query_one(OptionList).focus()

    # --- listing -------------------------------------------------------------------------

    def refresh_list(self, query: str = "") -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        self._titles.clear()
        try:
            items = self._search_options(query) if query.strip() else self._list_options()
        except HistoryError as exc:
            self.notify(exc.message, severity="error")
            items = []
        if not items:
            empty = "no matches" if query.strip() else "no conversations yet"
            options.add_option(Option(Text(empty, style="dim"), disabled=True))
        else:
            options.add_options(items)
            options.highlighted = 0

    def _list_options(self) -> list[Option]:
        items = []
        for conv in self.store.list_conversations(limit=LIST_LIMIT):
            title = conv.title or "(untitled)"
            self._titles[conv.id] = title
            marker = "● " if conv.id == self.current else "  "
            items.append(
                Option(
                    Text.assemble(
                        (marker, "bold"),
                        (title, "bold"),
                        (f"   {_when(conv.updated)} · {conv.message_count} messages", "dim"),
                    ),
                    id=str(conv.id),
                )
            )
        return items

    def _search_options(self, query: str) -> list[Option]:
        items = []
        seen: set[int] = set()
        for hit in self.store.search(query, limit=LIST_LIMIT):
            if hit.conversation_id in seen:
                continue  # one row per conversation: its newest matching message
            seen.add(hit.conversation_id)
            title = hit.conversation_title or "(untitled)"
            self._titles[hit.conversation_id] = title
            snippet = Text(hit.snippet, style="dim")
            if hit.match_start is not None and hit.match_end is not None:
                snippet.stylize("bold reverse", hit.match_start, hit.match_end)
            items.append(
                Option(
                    Text.assemble((title, "bold"), ("  ", ""), snippet),
                    id=str(hit.conversation_id),
                )
            )
        return items

    def _highlighted_id(self) -> int | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        option = options.get_option_at_index(options.highlighted)
        return int(option.id) if option.id else None

    # --- actions -------------------------------------------------------------------------

    @on(Input.Submitted, "#search")
    def _search(self, event: Input.Submitted) -> None:
        self.refresh_list(event.value)
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _open(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.dismiss(HistoryChoice("open", int(event.option.id), self.deleted))

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_new(self) -> None:
        self.dismiss(HistoryChoice("new", None, self.deleted))

    def action_close(self) -> None:
        self.dismiss(HistoryChoice(None, None, self.deleted))

    def action_rename(self) -> None:
        cid = self._highlighted_id()
        if cid is None:
            return

        def renamed(title: str | None) -> None:
            if title is None:
                return
            try:
                self.store.rename(cid, title.strip() or None)
            except HistoryError as exc:
                self.notify(exc.message, severity="error")
                return
            self.refresh_list(self.query_one("#search", Input).value)

        self.app.push_screen(
            TextPrompt("Rename conversation", self._titles.get(cid, ""), "title"), renamed
        )

    def action_delete(self) -> None:
        cid = self._highlighted_id()
        if cid is None:
            return
        if self._armed_delete != cid:
            # A second press confirms: deleting is not undoable.
            self._armed_delete = cid
            self.query_one("#hint", Label).update(
                f"press d again to delete “{self._titles.get(cid, cid)}” for good"
            )
            return
        self._armed_delete = None
        try:
            self.store.delete(cid)
        except HistoryError as exc:
            self.notify(exc.message, severity="error")
            return
        self.deleted.append(cid)
        self.notify(f"deleted “{self._titles.get(cid, cid)}”")
        self.query_one("#hint", Label).update(
            "Enter opens · n new · r rename · d delete · / search · Esc closes"
        )
        self.refresh_list(self.query_one("#search", Input).value)


class FreshHistoryDialog(ModalScreen[bool]):
    """The history file cannot be used: start a fresh one next to it, or go on without.

    The damaged file is never moved or changed; a fresh history is a new file beside it
    (``--new-history`` on the command line does the same).
    """

    DEFAULT_CSS = modal_css("FreshHistoryDialog")
    BINDINGS = [Binding("escape", "without", "Continue without history", id="close-modal")]

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("The conversation history cannot be used", classes="title")
            yield Label(self.problem, markup=False)
            yield Button("Start a fresh history", id="fresh", variant="primary")
            yield Button("Continue without history", id="without")
            yield Label("The old file is left exactly as it is.", classes="hint")

    @on(Button.Pressed, "#fresh")
    def _fresh(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#without")
    def action_without(self) -> None:
        self.dismiss(False)
