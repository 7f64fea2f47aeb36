"""Pilot tests of the side-by-side screen with scripted engines (real plugin path)."""

from __future__ import annotations

from typing import Any

from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.screens.pickers import ComparePicker
from tedchat.tui.widgets.compare_pane import ComparePane
from tedchat.tui.widgets.compare_summary import CompareSummary
from tedchat.tui.widgets.messages import ReplyView

from .conftest import answered, send, wait_for

SIZE = (140, 36)

LOCAL_PAIR = """
[runtime]
threads = 4

[engines.cpu-a]
type = "scripted"
model = "cpu-a"
text = "answer a"
local = true

[engines.cpu-b]
type = "scripted"
model = "cpu-b"
text = "answer b"
local = true
"""


def panes(app: Any) -> list[ComparePane]:
    return list(app.screen.query(ComparePane))


def summary_columns(app: Any) -> dict[str, list[str]]:
    table = app.screen.query_one(CompareSummary).results
    from tedchat.tui.widgets.compare_summary import summary_table

    rendered = summary_table(table)
    return {c.header: [str(cell) for cell in c._cells] for c in rendered.columns}


async def test_one_prompt_to_two_engines_then_a_summary_with_winners(make_app) -> None:
    app = make_app(compare=["frozen", "frozen2"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert not app.screen.query_one(CompareSummary).has_class("-shown")
        await send(pilot, "race")
        await answered(pilot)
        a, b = panes(app)
        assert a.query_one(ReplyView).text.startswith("A frozen answer")
        assert b.query_one(ReplyView).text.startswith("A second, slower")
        # Each pane has its own status line with its own figures (virtual clock: exact).
        assert "TTFT 125 ms · 50.0 tok/s" in a.status.figures_text
        assert "TTFT 250 ms · 20.0 tok/s" in b.status.figures_text
        assert app.screen.query_one(CompareSummary).has_class("-shown")
        columns = summary_columns(app)
        assert columns["TTFT"] == ["★ 125 ms", "250 ms"]
        assert columns["tok/s"] == ["★ 50.0", "20.0"]
        assert columns["to last token"][0].startswith("★")
        # Both engines got the same single prompt at once.
        for name in ("frozen", "frozen2"):
            assert [m.content for m in app.loader.engine(name).requests[0]] == ["race"]
        await app.history_idle()
        [summary] = app.history.store.list_conversations()
        [message] = app.history.store.get_conversation(summary.id).messages
        assert sorted(r.engine for r in message.replies) == ["frozen", "frozen2"]


async def test_local_engines_share_the_thread_budget_while_compared(make_app) -> None:
    app = make_app(LOCAL_PAIR, compare=["cpu-a", "cpu-b"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        runtime = app.context.engines.runtime
        assert runtime.local_engines_at_once == 2
        await send(pilot, "go")
        await answered(pilot)
        for name in ("cpu-a", "cpu-b"):
            assert app.loader.engine(name).threads_seen == [2]  # 4 threads shared by 2
        await pilot.press("f12")  # back to the chat: one engine at a time again
        await wait_for(pilot, lambda: not isinstance(app.screen, CompareScreen))
        assert runtime.local_engines_at_once == 1


async def test_escape_stops_every_pane_and_the_summary_says_cancelled(make_app) -> None:
    app = make_app(compare=["slow", "fast"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await send(pilot, "go")
        await wait_for(pilot, lambda: len(panes(app)[0].query_one(ReplyView).text) > 20)
        await pilot.press("escape")
        await answered(pilot)
        slow_view = panes(app)[0].query_one(ReplyView)
        assert "cancelled" in str(slow_view.caption.render())
        assert slow_view.text.startswith("word word")
        assert summary_columns(app)["finish"] == ["cancelled", "stop"]


async def test_replay_computes_first_then_plays_from_a_common_start(make_app) -> None:
    app = make_app(compare=["emu", "fast"], replay=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert "replay" in str(app.screen.query_one("#notice").render())
        await send(pilot, "go")
        await answered(pilot)
        emu, fast = panes(app)
        assert emu.query_one(ReplyView).text == "Emulated answer."
        # The emulated figures are labelled as a replay.
        assert "replay 2x CS-3" in emu.status.figures_text
        assert fast.query_one(ReplyView).text.startswith("The **answer**")


async def test_compare_from_the_chat_screen_picker(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f12")
        await wait_for(pilot, lambda: isinstance(app.screen, ComparePicker))
        picker = app.screen
        from textual.widgets import SelectionList

        choices = picker.query_one(SelectionList)
        await pilot.click("#ok")  # only the chat's engine is preselected: refused
        await pilot.pause(0.1)
        assert "pick 2 to 4" in str(picker.query_one("#problem").render())
        choices.select("frozen")
        await pilot.pause(0.1)
        await pilot.click("#ok")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert app.screen.engine_names == ["fast", "frozen"]
