"""The conversation settings modal: system prompt and generation parameters.

Dismisses with ``(system, GenerationParams)`` or None. Bad numbers are refused in place with a
line saying which field and why; nothing is applied until every field is valid.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from tedchat.engine import GenerationParams
from tedchat.tui.screens.pickers import modal_css

Result = tuple[str, GenerationParams]


def _text(value: float | None) -> str:
    return "" if value is None else str(value)


def parse_params(
    base: GenerationParams, max_tokens: str, temperature: str, top_p: str, seed: str
) -> GenerationParams:
    """Parse the fields; raises ValueError with a message naming the bad field."""

    def number(label: str, text: str, kind: type, low: float, high: float | None) -> float | int:
        try:
            value = kind(text.strip())
        except ValueError:
            raise ValueError(
                f"{label} must be {'an integer' if kind is int else 'a number'}"
            ) from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"{label} must be {bound}, got {text.strip()}")
        return value

    def optional(label: str, text: str, kind: type, low: float, high: float | None) -> Any:
        return None if not text.strip() else number(label, text, kind, low, high)

    return dataclasses.replace(
        base,
        max_tokens=int(number("max tokens", max_tokens, int, 1, None)),
        temperature=optional("temperature", temperature, float, 0.0, 2.0),
        top_p=optional("top p", top_p, float, 0.0, 1.0),
        seed=optional("seed", seed, int, 0, None),
    )


class ParamsScreen(ModalScreen[Result | None]):
    """Edit the system prompt and sampling settings of the current conversation."""

    DEFAULT_CSS = (
        modal_css("ParamsScreen")
        + """
    ParamsScreen > Vertical { width: 80; }
    ParamsScreen #system { height: 5; margin: 0 0 1 0; }
    ParamsScreen #numbers { height: auto; }
    ParamsScreen #numbers > Vertical { height: auto; width: 1fr; margin: 0 1 0 0; }
    ParamsScreen #problem { color: $error; height: auto; }
    """
    )
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", id="close-modal"),
        Binding("ctrl+s", "save", "Save", id="save-settings"),
    ]

    def __init__(self, system: str, params: GenerationParams) -> None:
        super().__init__()
        self.system = system
        self.params = params

    def compose(self) -> ComposeResult:
        p = self.params
        with Vertical():
            yield Label("Conversation settings", classes="title")
            yield Label("System prompt")
            yield TextArea(self.system, id="system", soft_wrap=True)
            with Horizontal(id="numbers"):
                fields: list[tuple[str, str, str, Literal["integer", "number"]]] = [
                    ("max_tokens", "max tokens", str(p.max_tokens), "integer"),
                    ("temperature", "temperature", _text(p.temperature), "number"),
                    ("top_p", "top p", _text(p.top_p), "number"),
                    ("seed", "seed", _text(p.seed), "integer"),
                ]
                for field, label, value, kind in fields:
                    with Vertical():
                        yield Label(label)
                        yield Input(value, id=field, type=kind)
            yield Static("", id="problem")
            yield Static(
                "Empty temperature or top p: the model's own; empty seed: random. "
                "They apply from the next prompt.",
                classes="hint",
            )
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save", id="save", variant="primary")

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        value = {i.id: i.value for i in self.query(Input)}
        try:
            params = parse_params(
                self.params,
                value["max_tokens"] or "",
                value["temperature"] or "",
                value["top_p"] or "",
                value["seed"] or "",
            )
        except ValueError as exc:
            self.query_one("#problem", Static).update(str(exc))
            return
        self.dismiss((self.query_one("#system", TextArea).text, params))

    @on(Button.Pressed, "#cancel")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)
