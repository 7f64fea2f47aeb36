"""Asking a person whether a tool may run: the dialog, and the queue that shows one at a time.

:class:`ApprovalDialog` shows the tool (as the model named it), its source, its description and
its arguments, and answers ``once`` (O or Enter), ``always`` for this tool (A), ``deny`` (D or
Esc), or ``stop``: deny and stop the whole answer (S).

:class:`ApprovalDialogs` is what a screen's approver calls: the calls of one step run
concurrently and compare panes answer at once, so several may ask together; they wait their
turn and the dialogs come one after the other. A turn cancelled while its question waits or
shows (Esc on the screen, ``stop``) takes its dialog away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Literal

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from tedchat.tools.base import Approval, ApprovalRequest
from tedchat.tui.screens.pickers import modal_css

#: A dialog's answer: an :data:`~tedchat.tools.base.Approval`, or deny and stop the answer.
DialogAnswer = Literal["once", "always", "deny", "stop"]

#: Characters of the arguments shown in the dialog (it scrolls; a huge argument is cut).
MAX_SHOWN_ARGUMENTS = 4000


def arguments_json(request: ApprovalRequest) -> str:
    """The request's arguments, pretty-printed and cut to :data:`MAX_SHOWN_ARGUMENTS`."""
    text = json.dumps(dict(request.args), ensure_ascii=False, indent=2, default=str)
    if len(text) > MAX_SHOWN_ARGUMENTS:
        text = text[:MAX_SHOWN_ARGUMENTS] + f"\n… ({len(text) - MAX_SHOWN_ARGUMENTS:,} more)"
    return text


class ApprovalDialog(ModalScreen[DialogAnswer]):
    """May this tool call run? (see the module docstring)"""

    DEFAULT_CSS = (
        modal_css("ApprovalDialog")
        + """
    ApprovalDialog > Vertical { width: 84; border: thick $warning 70%; }
    ApprovalDialog .source { color: $text-muted; }
    ApprovalDialog .description { color: $text-muted; margin: 0 0 1 0; }
    ApprovalDialog VerticalScroll {
        height: auto;
        max-height: 16;
        background: $boost;
        padding: 0 1;
    }
    """
    )

    BINDINGS = [
        Binding("o", "answer('once')", "Allow once", id="approve-once"),
        Binding("a", "answer('always')", "Always for this tool", id="approve-always"),
        Binding("d,escape", "answer('deny')", "Deny", id="approve-deny"),
        Binding("s", "answer('stop')", "Deny and stop the answer", id="approve-stop"),
    ]

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__()
        self.request = request

    def compose(self) -> ComposeResult:
        request = self.request
        with Vertical():
            yield Label(
                Text.assemble("Run the tool ", (request.name, "bold"), "?"), classes="title"
            )
            yield Label(Text(f"from {request.source or 'an unknown source'}"), classes="source")
            if request.description:
                yield Label(Text(request.description.strip()), classes="description")
            with VerticalScroll():
                yield Static(Text(arguments_json(request)), id="arguments")
            with Horizontal(classes="buttons"):
                yield Button("Allow once (O)", id="once", variant="primary")
                yield Button("Always for this tool (A)", id="always")
                yield Button("Deny (D/Esc)", id="deny", variant="error")
                yield Button("Stop answer (S)", id="stop")

    def on_mount(self) -> None:
        self.query_one("#once", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("once", "always", "deny", "stop"):
            self.action_answer(event.button.id)

    def action_answer(self, answer: str) -> None:
        if answer == "once":
            self.dismiss("once")
        elif answer == "always":
            self.dismiss("always")
        elif answer == "stop":
            self.dismiss("stop")
        else:
            self.dismiss("deny")


class ApprovalDialogs:
    """Approval questions of the whole app, one dialog at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._waiting = 0
        self.shown: ApprovalDialog | None = None

    @property
    def waiting(self) -> int:
        """Questions asked and not yet answered (the one shown included)."""
        return self._waiting

    async def ask(
        self,
        app: App[Any],
        request: ApprovalRequest,
        *,
        stop: Callable[[], None] | None = None,
    ) -> Approval:
        """Show the dialog for ``request`` once no other is shown, and return the answer.

        ``stop`` is called when the person chooses to stop the answer (it cancels the task
        that asked, so this then raises ``CancelledError``; the answer is ``deny`` if not)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._waiting += 1
        try:
            async with self._lock:
                answer = await self._show(app, request)
        finally:
            self._waiting -= 1
        if answer == "stop":
            if stop is not None:
                stop()
                await asyncio.sleep(0)  # the cancellation, if stop cancelled this task
            return "deny"
        return answer

    async def _show(self, app: App[Any], request: ApprovalRequest) -> DialogAnswer:
        future: asyncio.Future[DialogAnswer] = asyncio.get_running_loop().create_future()
        dialog = ApprovalDialog(request)

        def answered(answer: DialogAnswer | None) -> None:
            if not future.done():
                future.set_result(answer or "deny")

        self.shown = dialog
        app.push_screen(dialog, answered)
        try:
            return await future
        except asyncio.CancelledError:
            _take_away(app, dialog)
            raise
        finally:
            self.shown = None


def _take_away(app: App[Any], dialog: ApprovalDialog) -> None:
    """Close a dialog nobody waits for any more (its turn was cancelled)."""
    if dialog not in app.screen_stack:
        return
    if app.screen is not dialog:
        dialog.pop_until_active()
    dialog.dismiss(None)
