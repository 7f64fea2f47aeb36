"""The external editor key without an editor, and reading ``$VISUAL``/``$EDITOR``; the round
trip itself runs in a real terminal (test_terminal.py)."""

from __future__ import annotations

import pytest

from tedchat.tui.editor import EditorError, editor_command
from tedchat.tui.widgets.prompt import PromptInput

from .conftest import wait_for


def test_visual_wins_over_editor_and_words_are_split() -> None:
    assert editor_command({"VISUAL": "code -w", "EDITOR": "vi"}) == ["code", "-w"]
    assert editor_command({"VISUAL": " ", "EDITOR": "nano"}) == ["nano"]
    with pytest.raises(EditorError, match="set \\$VISUAL or \\$EDITOR"):
        editor_command({})
    with pytest.raises(EditorError, match="cannot be read as a command"):
        editor_command({"EDITOR": "vi 'unclosed"})


async def test_ctrl_g_without_an_editor_says_so_and_keeps_the_prompt(make_app, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        prompt = app.screen.query_one(PromptInput)
        await pilot.press(*"draft")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: bool(app._notifications))
        [note] = list(app._notifications)
        assert note.message == "no editor: set $VISUAL or $EDITOR (e.g. export EDITOR=nano)"
        assert prompt.text == "draft"
