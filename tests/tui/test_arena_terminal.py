"""The arena in a real terminal: tmux runs the installed command with the real llama.cpp engine
(``local``, the bundled SmolLM2) against a scripted one (``fast``, the TUI tests' config).
Skipped, saying why, where tmux is not installed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .test_terminal import FIGURES, _needs_tmux, home_with_config, start, type_prompt

__all__ = ["_needs_tmux"]  # autouse: skipped, saying why, without tmux

NAMES = re.compile(r"\blocal\b|\bfast\b|smollm2|script-fast|TTFT|tok/s|\d ms\b")


@pytest.mark.slow
def test_a_blind_vote_with_real_engines_then_chat_with_the_winner(tmp_path: Path) -> None:
    from tests.tui.test_terminal import TmuxSession

    home = home_with_config(tmp_path)
    with TmuxSession(140, 36) as tmux:
        args = ("arena", "local", "fast", "--seed", "1", "--temperature", "0")
        start(tmux, home, *args, "--max-tokens", "12")
        first = tmux.capture()
        assert not NAMES.search(first), first
        assert "same text model" not in first
        type_prompt(tmux, "Name a colour.")
        asked = tmux.wait_for(lambda s: "t tie · x all bad" in s, 300)
        assert asked is not None, tmux.capture()
        assert not NAMES.search(asked.screen), asked.screen
        assert asked.screen.count("Name a colour.") == 2
        tmux.send_keys("a")
        # Until a whole frame is on screen: a capture can catch one half drawn (seen in CI: the
        # winner and the hint drawn, one pane's figures not yet).
        shown = tmux.wait_for(
            lambda s: "★ winner" in s and "saved" in s and len(FIGURES.findall(s)) >= 2, 30
        )
        assert shown is not None, tmux.capture()
        winner = re.search(r"A · (local · smollm2|fast · script-fast) ★ winner", shown.screen)
        assert winner is not None, shown.screen
        assert len(FIGURES.findall(shown.screen)) >= 2, shown.screen
        engine = winner.group(1)
        tmux.send_keys("w")
        chat = tmux.wait_for(lambda s: "arena" not in s and "Name a colour." in s, 30)
        assert chat is not None, tmux.capture()
        type_prompt(tmux, "And another?")
        caption = re.compile(rf"{engine} · " + FIGURES.pattern)
        answered = tmux.wait_for(
            lambda s: "And another?" in s and len(caption.findall(s)) >= 2, 300
        )
        assert answered is not None, tmux.capture()
