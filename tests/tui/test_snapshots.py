"""Snapshot tests of the main screens (pytest-textual-snapshot).

Live numbers are frozen: scripted engines on a virtual clock give exact figures, the rate
sparkline (sampled on the frame clock, so timing-dependent) is cleared, the cursor does not
blink, and the history store is stamped by a fixed clock in UTC. Update the snapshots with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at every changed SVG.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest
from textual.widgets import Input, TextArea

from tedchat.history.store import Store
from tedchat.tui.screens.floorplan import FloorplanScreen
from tedchat.tui.widgets.prompt import PromptInput
from tedchat.tui.widgets.status_bar import StatusLine

from .conftest import PLUGINS, answered, send, wait_for


def small_plan() -> dict[str, Any]:
    """The scripted plugin's hand-made placement (the plugin folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("scripted_plan", PLUGINS / "scripted_engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module.small_plan()


async def settle(pilot: Any) -> None:
    """Freeze what moves by itself: blinking cursors, sparklines, pending freezes."""
    # Every text field blinks, not only the prompt (the settings dialog has several): a blink
    # that lands just before the capture hides a cursor the snapshot shows.
    for field in [*pilot.app.screen.query(TextArea), *pilot.app.screen.query(Input)]:
        field.cursor_blink = False
    for status in pilot.app.screen.query(StatusLine):
        status.reset_rates()
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()


def test_chat_screen_after_an_answer(make_app, snap_compare) -> None:
    app = make_app(engine="frozen")

    async def run_before(pilot: Any) -> None:
        await send(pilot, "Show me a list and some code")
        await answered(pilot)
        await settle(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_chat_screen_in_japanese(make_app, snap_compare) -> None:
    app = make_app(engine="nihongo")

    async def run_before(pilot: Any) -> None:
        await send(pilot, "ウェハースケールの推論について、日本語で簡単に説明してください。")
        await answered(pilot)
        pilot.app.screen.query_one(PromptInput).load_text(
            "次の質問：複数のシステムに分ける場合、リンクの遅延はどれくらい影響しますか？"
        )
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 30), run_before=run_before)


def test_compare_screen_with_its_summary(make_app, snap_compare) -> None:
    app = make_app(compare=["frozen", "frozen2"])

    async def run_before(pilot: Any) -> None:
        await pilot.pause(0.2)
        await send(pilot, "Which of you is faster?")
        await answered(pilot)
        await settle(pilot)

    assert snap_compare(app, terminal_size=(120, 34), run_before=run_before)


def test_arena_screen_blind_then_revealed(make_app, snap_compare) -> None:
    """The arena after the answers (labels only, the vote asked for), then after a vote for A
    (engines, models, figures, the winner, the summary)."""
    app = make_app(compare=["frozen", "frozen2"], blind=True, seed=1)

    async def run_before(pilot: Any) -> None:
        await pilot.pause(0.2)
        await send(pilot, "Which of you is better?")
        await answered(pilot)
        await settle(pilot)

    assert snap_compare(app, terminal_size=(120, 34), run_before=run_before)
    revealed = make_app(compare=["frozen", "frozen2"], blind=True, seed=1)

    async def vote(pilot: Any) -> None:
        await run_before(pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: pilot.app.screen.last_vote_id is not None)
        await settle(pilot)

    assert snap_compare(revealed, terminal_size=(120, 34), run_before=vote)


def test_help_screen(make_app, snap_compare) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        await pilot.press("f1")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(110, 40), run_before=run_before)


def test_floorplan_screen_from_a_hand_made_placement(make_app, snap_compare) -> None:
    app = make_app()

    async def run_before(pilot: Any) -> None:
        screen = FloorplanScreen("wafer-test", small_plan())
        await pilot.app.push_screen(screen)
        await pilot.pause(0.1)
        screen.set_active(1, 3)  # the stage generating now is highlighted
        await settle(pilot)

    assert snap_compare(app, terminal_size=(110, 48), run_before=run_before)


def test_conversation_list(make_app, snap_compare, tui_home, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    stamps = iter(range(1_760_000_000, 1_760_100_000, 3600))
    store = Store.open(tui_home / "fixed.db", wall_clock=lambda: float(next(stamps)))
    for title, prompt in [
        ("Floorplans", "How are layers placed on a wafer?"),
        ("東京の天気", "明日の東京の天気は？"),
        (None, "A conversation without a title yet"),
    ]:
        cid = store.new_conversation(title)
        store.add_user_message(cid, prompt)
    app = make_app(store=store)

    async def run_before(pilot: Any) -> None:
        await pilot.press("ctrl+o")
        await settle(pilot)

    try:
        assert snap_compare(app, terminal_size=(120, 24), run_before=run_before)
    finally:
        store.close()
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("theme", ["light", "cerebras-dark"])
def test_settings_modal_in_other_themes(make_app, snap_compare, theme: str) -> None:
    app = make_app(theme=theme)

    async def run_before(pilot: Any) -> None:
        await pilot.press("f4")
        await wait_for(pilot, lambda: pilot.app.screen.query("#system"))
        await settle(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_chat_with_attachment_chips_and_path_completion(make_app, snap_compare, tmp_path) -> None:
    """A sent prompt with its attachments, chips for the next one, the @path list open."""
    from tests.test_attachments import png_bytes

    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('app')\n")
    (root / "src" / "api.py").write_text("print('api')\n" * 40)
    (root / "pic.png").write_bytes(png_bytes())
    app = make_app(
        f"[tools]\nworkspace = {str(root)!r}\n"
        '[engines.eyes]\ntype = "scripted"\nmodel = "sees"\ntext = "Both are small."\n'
        "virtual = true\nvision = true\nttft_s = 0.1\ntokens_per_s = 30.0\n",
        engine="eyes",
    )

    async def run_before(pilot: Any) -> None:
        chat = app.chat_screen()
        chat.attach("pic.png")
        await send(pilot, "What do @src/app.py and this picture have in common?")
        await answered(pilot)
        chat.attach("src/api.py")
        prompt = chat.query_one(PromptInput)
        prompt.insert("compare with @src/a")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
