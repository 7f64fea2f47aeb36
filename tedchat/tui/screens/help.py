"""The help screen (F1): every key binding, its id for ``[keymap]``, and its keys now.

The list is built from the ``BINDINGS`` of the classes that own them, with the user's keymap
applied, so it cannot drift from what the keys really do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from tedchat.tui.screens.pickers import modal_css


def binding_rows(
    owners: Iterable[tuple[str, type]], keymap: Mapping[str, str]
) -> list[tuple[str, str, str, str]]:
    """(where, id, keys, description) for every binding with an id, keymap applied."""
    rows = []
    seen: set[str] = set()
    for where, owner in owners:
        for binding in owner.__dict__.get("BINDINGS", []):
            if not isinstance(binding, Binding) or not binding.id or binding.id in seen:
                continue
            seen.add(binding.id)
            keys = keymap.get(binding.id, binding.key)
            rows.append((where, binding.id, keys, binding.description or binding.action))
    return rows


def unknown_keymap_ids(owners: Iterable[tuple[str, type]], keymap: Mapping[str, str]) -> list[str]:
    """Keymap entries that name no binding (most likely a typo in the config)."""
    known = {row[1] for row in binding_rows(owners, {})}
    return sorted(set(keymap) - known)


class HelpScreen(ModalScreen[None]):
    """Lists the key bindings."""

    DEFAULT_CSS = (
        modal_css("HelpScreen")
        + """
    HelpScreen > Vertical { width: 100; }
    HelpScreen DataTable { height: auto; max-height: 30; }
    """
    )
    BINDINGS = [Binding("escape,f1,q", "dismiss_none", "Close", id="close-help")]

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                'Keys — remap any of them in the config\'s [keymap]: id = "keys"',
                classes="title",
                markup=False,  # [keymap] is text, not a style
            )
            table: DataTable[str] = DataTable(zebra_stripes=True, cursor_type="row")
            table.add_columns("where", "id", "keys", "does")
            for row in self.rows:
                table.add_row(*row)
            yield table
            yield Label("Esc closes · Ctrl+P opens the command palette", classes="hint")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
