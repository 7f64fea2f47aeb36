"""Attachments in the chat: the chips above the prompt, the ``@path`` completion list, and the
path suggester of the attach command. The rules (what a mention attaches, what completes) are
in :mod:`tedchat.attachments`; these widgets only show them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.containers import Horizontal
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tedchat.attachments import complete, human_size


@dataclass(frozen=True)
class ChipInfo:
    """One chip: the file, its size and estimated tokens, and whether the attach command
    added it (removable by a click) or an ``@path`` in the prompt (remove the word instead)."""

    name: str
    kind: str
    size: int
    tokens: int
    removable: bool


class Chip(Static):
    """One attachment before sending; a click removes one added by the attach command."""

    DEFAULT_CSS = """
    Chip {
        width: auto;
        height: 1;
        margin: 0 1 0 0;
        padding: 0 1;
        background: $primary 30%;
        color: $text;
    }
    Chip.error { background: $error 40%; }
    """

    class Removed(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, info: ChipInfo) -> None:
        icon = "▣" if info.kind == "image" else "≡"
        label = f"{icon} {info.name} · {human_size(info.size)} · ~{info.tokens} tok"
        super().__init__(Text(label + (" ✕" if info.removable else "")))
        self.info = info

    def on_click(self) -> None:
        if self.info.removable:
            self.post_message(self.Removed(self.info.name))


class AttachmentChips(Horizontal):
    """The attachments the next prompt will carry (hidden when there are none)."""

    DEFAULT_CSS = """
    AttachmentChips { height: auto; max-height: 3; padding: 0 1; display: none; }
    AttachmentChips.shown { display: block; }
    """

    def show(self, chips: Sequence[ChipInfo]) -> None:
        current = [c.info for c in self.query(Chip)]
        if current == list(chips):
            return
        self.remove_children()
        self.mount_all([Chip(info) for info in chips])
        self.set_class(bool(chips), "shown")

    @property
    def names(self) -> list[str]:
        return [c.info.name for c in self.query(Chip)]


class CompletionList(OptionList):
    """Paths completing the ``@word`` being typed; Tab in the prompt takes the first, a click
    any."""

    DEFAULT_CSS = """
    CompletionList { height: auto; max-height: 8; display: none; border: none; padding: 0 1; }
    CompletionList.shown { display: block; }
    """

    def show(self, candidates: Sequence[str]) -> None:
        self.clear_options()
        self.add_options([Option(Text(c), id=c) for c in candidates])
        if candidates:
            self.highlighted = 0
        self.set_class(bool(candidates), "shown")

    @property
    def candidates(self) -> list[str]:
        return [str(self.get_option_at_index(i).id) for i in range(self.option_count)]


class PathSuggester(Suggester):
    """Suggests the first path under ``root`` completing what is typed (Right accepts)."""

    def __init__(self, root: Path) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.root = root

    async def get_suggestion(self, value: str) -> str | None:
        found = complete(value, self.root, limit=1)
        return found[0] if found else None
