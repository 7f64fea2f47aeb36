"""Small modal pickers: an engine, engines to compare, a code block, a line of text.

Each is a :class:`~textual.screen.ModalScreen` that dismisses with its answer (None when
closed with Escape), so callers use ``push_screen(picker, callback)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, OptionList, SelectionList
from textual.widgets.option_list import Option

MODAL_CSS = """
{name} {{
    align: center middle;
}}
{name} > Vertical {{
    width: 72;
    max-width: 95%;
    height: auto;
    max-height: 85%;
    border: thick $primary 70%;
    background: $surface;
    padding: 1 2;
}}
{name} .title {{
    text-style: bold;
    margin: 0 0 1 0;
}}
{name} .hint {{
    color: $text-muted;
    margin: 1 0 0 0;
}}
{name} Horizontal.buttons {{
    height: auto;
    align: right middle;
    margin: 1 0 0 0;
}}
{name} Horizontal.buttons Button {{
    margin: 0 0 0 1;
}}
"""


def modal_css(name: str) -> str:
    """The shared look of the modals, for the screen class ``name``."""
    return MODAL_CSS.format(name=name)


@dataclass(frozen=True)
class EngineChoice:
    """An engine as a picker lists it."""

    name: str
    detail: str  # type, model, and whether it is loaded


class EnginePicker(ModalScreen[str | None]):
    """Pick the engine for the next prompts."""

    DEFAULT_CSS = modal_css("EnginePicker")
    BINDINGS = [Binding("escape", "dismiss_none", "Close", id="close-modal")]
    HEADING = "Switch engine"
    HINT = "Enter picks · Esc closes · the next prompt goes to it"

    def __init__(self, choices: Sequence[EngineChoice], current: str) -> None:
        super().__init__()
        self.choices = list(choices)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.HEADING, classes="title")
            options = [
                Option(
                    Text.assemble(
                        ("● " if c.name == self.current else "  ", "bold"),
                        (c.name, "bold"),
                        ("  " + c.detail, "dim"),
                    ),
                    id=c.name,
                )
                for c in self.choices
            ]
            yield OptionList(*options)
            yield Label(self.HINT, classes="hint")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        names = [c.name for c in self.choices]
        if self.current in names:
            options.highlighted = names.index(self.current)

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class PresetPicker(EnginePicker):
    """Pick a ``[presets.NAME]`` for the next prompts (the same list as the engine picker)."""

    DEFAULT_CSS = modal_css("PresetPicker")
    HEADING = "Use a preset"
    HINT = "Enter picks · Esc closes · it applies from the next prompt"


class ComparePicker(ModalScreen[list[str] | None]):
    """Pick 2 to 4 engines to answer side by side."""

    DEFAULT_CSS = modal_css("ComparePicker")
    BINDINGS = [Binding("escape", "dismiss_none", "Close", id="close-modal")]

    def __init__(self, choices: Sequence[EngineChoice], preselected: Sequence[str] = ()) -> None:
        super().__init__()
        self.choices = list(choices)
        self.preselected = set(preselected)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Compare engines side by side (pick 2 to 4)", classes="title")
            yield SelectionList[str](
                *[
                    (f"{c.name}  {c.detail}", c.name, c.name in self.preselected)
                    for c in self.choices
                ]
            )
            yield Label("", id="problem", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Compare", id="ok", variant="primary")

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        picked = list(self.query_one(SelectionList).selected)
        if not 2 <= len(picked) <= 4:
            self.query_one("#problem", Label).update(f"pick 2 to 4 engines ({len(picked)} picked)")
            return
        self.dismiss(picked)

    @on(Button.Pressed, "#cancel")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class CodeBlockPicker(ModalScreen[int | None]):
    """Pick one of a reply's code blocks to copy."""

    DEFAULT_CSS = modal_css("CodeBlockPicker")
    BINDINGS = [Binding("escape", "dismiss_none", "Close", id="close-modal")]

    def __init__(self, blocks: Sequence[str]) -> None:
        super().__init__()
        self.blocks = list(blocks)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Copy which code block?", classes="title")
            options = []
            for i, block in enumerate(self.blocks):
                lines = block.splitlines() or [""]
                first = lines[0].strip() or "(blank first line)"
                options.append(
                    Option(
                        Text.assemble(
                            (f"{i + 1}. ", "bold"), first, (f"  {len(lines)} lines", "dim")
                        ),
                        id=str(i),
                    )
                )
            yield OptionList(*options)

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class TextPrompt(ModalScreen[str | None]):
    """Ask for one line of text (a conversation's new title, a path to attach)."""

    DEFAULT_CSS = modal_css("TextPrompt")
    BINDINGS = [Binding("escape", "dismiss_none", "Close", id="close-modal")]

    def __init__(
        self,
        title: str,
        value: str = "",
        placeholder: str = "",
        *,
        suggester: Suggester | None = None,
        hint: str = "Enter saves · Esc closes",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.suggester = suggester
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title", markup=False)
            yield Input(self.value, placeholder=self.placeholder, suggester=self.suggester)
            yield Label(self.hint, classes="hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
