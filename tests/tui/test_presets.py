"""Presets in the UI: ``chat --preset`` and ``compare --preset`` through the real parser and
the commands' own option building, and the preset picker (Pilot, scripted engines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tedchat.cli import build_parser
from tedchat.commands import chat as chat_command
from tedchat.commands import compare as compare_command
from tedchat.engines import load_context
from tedchat.errors import UsageError
from tedchat.tui.app import TedchatApp
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.screens.pickers import PresetPicker

from .conftest import BASE_CONFIG, answered, send, virtual_clock, wait_for

SIZE = (140, 36)

PRESETS = """
[presets.terse]
system_prompt = "Answer in one line."
engine = "frozen"
temperature = 0.2
top_p = 0.9
max_tokens = 64
seed = 7
tools = []

[presets.toolless]
engine = "toolful"
tools = []

[presets.builtin]
engine = "toolful"
tools = ["builtin"]

[engines.toolful]
type = "scripted"
model = "script-tools"
text = "ok"
tools = true

[presets.nihongo]
system_prompt = "日本語で答えてください。"
engine = "nihongo"
temperature = 0.7
"""


@pytest.fixture
def preset_home(tui_home: Path) -> Path:
    (tui_home / "config" / "config.toml").write_text(BASE_CONFIG + PRESETS, encoding="utf-8")
    return tui_home


def app_for(command: Any, *argv: str) -> TedchatApp:
    """The app exactly as ``tedchat chat|compare ARGV`` would build it."""
    args = build_parser().parse_args(list(argv))
    context = load_context(getattr(args, "config", None))
    return TedchatApp(context, clock_for=virtual_clock, **command.app_options(args, context))


async def test_chat_preset_sets_engine_system_and_params_and_flags_win(preset_home) -> None:
    app = app_for(chat_command, "chat", "--preset", "terse", "--temperature", "0.5")
    assert app.context.settings.tools.sources == []  # the preset's tools: none
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await answered(pilot)
        engine = app.loader.engine("frozen")  # the preset's engine
        [messages] = engine.requests
        assert [(m.role, m.content) for m in messages] == [
            ("system", "Answer in one line."),
            ("user", "hi"),
        ]
        [params] = engine.params_seen
        assert (params.temperature, params.top_p, params.max_tokens, params.seed) == (
            0.5,  # the command line wins over the preset
            0.9,
            64,
            7,
        )


async def test_compare_preset_ignores_its_engine(preset_home) -> None:
    app = app_for(compare_command, "compare", "fast", "frozen2", "--preset", "nihongo")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await send(pilot, "こんにちは")
        await answered(pilot)
        for name in ("fast", "frozen2"):
            engine = app.loader.engine(name)
            [messages] = engine.requests
            assert messages[0].content == "日本語で答えてください。"
            assert engine.params_seen[0].temperature == 0.7
        assert not app.loader.engine("nihongo").requests  # the preset's engine is not used


def test_unknown_preset_names_the_valid_ones(preset_home) -> None:
    for command, argv in (
        (chat_command, ["chat", "--preset", "nope"]),
        (compare_command, ["compare", "fast", "slow", "--preset", "nope"]),
    ):
        args = build_parser().parse_args(argv)
        with pytest.raises(UsageError) as err:
            command.app_options(args, load_context(getattr(args, "config", None)))
        assert err.value.message == (
            "unknown preset 'nope'; configured presets: terse, toolless, builtin, nihongo"
        )
        assert err.value.exit_code == 2


async def test_the_picker_applies_a_preset_from_the_next_prompt(preset_home) -> None:
    app = app_for(chat_command, "chat")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f11")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetPicker))
        await pilot.press("down", "down", "down", "enter")  # terse, toolless, builtin, nihongo
        await wait_for(pilot, lambda: not isinstance(app.screen, PresetPicker))
        await send(pilot, "こんにちは")
        await answered(pilot)
        engine = app.loader.engine("nihongo")
        [messages] = engine.requests
        assert [m.content for m in messages] == ["日本語で答えてください。", "こんにちは"]
        assert engine.params_seen[0].temperature == 0.7
        assert not app.loader.engine("fast").requests


async def test_a_preset_picked_in_the_ui_changes_the_tools_offered(preset_home) -> None:
    app = app_for(chat_command, "chat", "--preset", "toolless")
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "one")
        await answered(pilot)
        engine = app.loader.engine("toolful")
        assert engine.params_seen[-1].tools == ()  # the preset offers none
        app.chat_screen().use_preset("builtin")
        await app.workers.wait_for_complete()
        await send(pilot, "two")
        await answered(pilot)
        assert {s.name for s in engine.params_seen[-1].tools} >= {"read_file", "list_directory"}
