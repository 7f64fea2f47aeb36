"""Pilot tests of the chat screen, driving the scripted test engine through the real plugin
path (a local plugin folder), the real history store and the real session path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tedchat import paths
from tedchat.history.store import Store
from tedchat.tui.screens.chat import ChatScreen
from tedchat.tui.screens.floorplan import FloorplanScreen
from tedchat.tui.screens.help import HelpScreen
from tedchat.tui.screens.history import HistoryScreen
from tedchat.tui.screens.params import ParamsScreen
from tedchat.tui.screens.pickers import CodeBlockPicker, EnginePicker
from tedchat.tui.widgets.floorplan import Floorplan
from tedchat.tui.widgets.messages import Notice, ReplyView, UserMessage
from tedchat.tui.widgets.prompt import PromptInput
from tedchat.tui.widgets.status_bar import StatusLine

from .conftest import answered, send, wait_for

SIZE = (100, 32)


def chat(app: Any) -> ChatScreen:
    screen = app.chat_screen()
    assert screen is not None
    return screen


def replies(app: Any) -> list[ReplyView]:
    return list(chat(app).query(ReplyView))


def figures(app: Any) -> str:
    return chat(app).query_one(StatusLine).figures_text


def stored(app: Any) -> Any:
    store = app.history.store
    assert store is not None
    [summary] = store.list_conversations()
    return store.get_conversation(summary.id)


async def test_send_streams_the_answer_with_live_figures_then_cancel_keeps_it(make_app) -> None:
    app = make_app(engine="slow")
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "count words")
        # Live: part of the answer is on screen and the status bar has figures already.
        await wait_for(pilot, lambda: replies(app) and len(replies(app)[0].text) > 40)
        live = figures(app)
        assert "TTFT" in live and "tok/s" in live and "TTFT -" not in live
        partial_screen = replies(app)[0].text
        assert partial_screen.startswith("word word")
        assert chat(app).busy
        await pilot.pause(0.3)
        assert figures(app) != live  # the figures move while tokens stream
        await pilot.press("escape")
        await answered(pilot)
        view = replies(app)[0]
        assert len(view.text) >= len(partial_screen)  # the partial answer stays
        assert len(view.text) < len("word " * 400)
        assert "cancelled" in str(view.caption.render())
        assert "cancelled" in figures(app)
        await app.history_idle()
        reply = stored(app).messages[0].replies[0]
        assert reply.finish_reason == "cancelled"
        assert reply.content == view.text
        assert reply.metrics.ttft_s is not None


async def test_a_whole_answer_is_drawn_recorded_and_captioned(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what is the answer?")
        await answered(pilot)
        [view] = replies(app)
        assert view.text.startswith("The **answer** is 42.")
        caption = str(view.caption.render())
        assert caption.startswith("fast · script-fast · TTFT ")
        assert "12 tokens" in caption and "tok/s" in caption
        assert "12 tokens" in figures(app)
        await app.history_idle()
        conv = stored(app)
        [message] = conv.messages
        assert message.content == "what is the answer?"
        [reply] = message.replies
        assert (reply.engine, reply.model, reply.finish_reason) == ("fast", "script-fast", "stop")
        assert reply.content == view.text
        assert reply.metrics.output_tokens == 12


async def test_regenerate_replaces_the_shown_answer_and_keeps_both_in_history(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "again please")
        await answered(pilot)
        first = replies(app)[0]
        await pilot.press("ctrl+r")
        await answered(pilot)
        [second] = replies(app)
        assert second is not first and first.parent is None
        assert second.text.startswith("The **answer**")
        engine = app.loader.engine("fast")
        # Both requests carried the same single prompt: regenerating does not add to it.
        assert [m.content for m in engine.requests[1]] == ["again please"]
        await app.history_idle()
        assert len(stored(app).messages[0].replies) == 2


async def test_switch_engine_with_the_picker_and_the_palette(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "one")
        await answered(pilot)
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, EnginePicker))
        picker = app.screen
        names = [c.name for c in picker.choices]
        await pilot.press(*["down"] * (names.index("frozen") - names.index("fast")), "enter")
        await wait_for(pilot, lambda: chat(app).engine_name == "frozen")
        await send(pilot, "two")
        await answered(pilot)
        # Every reply keeps the engine and model that made it.
        assert [(r.engine_name, r.model_name) for r in replies(app)] == [
            ("fast", "script-fast"),
            ("frozen", "script-frozen"),
        ]
        # The new engine saw the whole conversation.
        frozen = app.loader.engine("frozen")
        assert [m.content for m in frozen.requests[0]][:2] == ["one", replies(app)[0].text]
        # The palette has a command per engine.
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Engine: nihongo")
        await pilot.pause(0.4)
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat(app).engine_name == "nihongo")
        assert "nihongo · tedllm-ja" in str(chat(app).query_one("#engine").render())
        await app.history_idle()
        engines = [m.replies[0].engine for m in stored(app).messages]
        assert engines == ["fast", "frozen"]


async def test_resume_a_conversation_from_history(make_app, tui_home: Path) -> None:
    from tedchat.config import load_settings

    settings = load_settings()
    with Store.open(settings.history_path()) as store:
        cid = store.new_conversation("Old talk", "talk like a pirate", {"temperature": 0.0})
        mid = store.add_user_message(cid, "hello there")
        writer = store.begin_reply(cid, mid, "frozen", "script-frozen")
        writer.append("Ahoy **matey**!")
        writer.finish("stop", {"ttft_s": 0.2, "output_tokens_per_s": 12.5, "output_tokens": 3})
        store.new_conversation("Another one")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.pause(0.1)
        listing = app.screen
        titles = [str(o.prompt) for o in listing.query_one("#conversations").options]
        assert any("Old talk" in t for t in titles) and any("Another one" in t for t in titles)
        # Search finds it by its content, then Enter opens it.
        await pilot.press("slash", *"matey", "enter")
        await pilot.pause(0.1)
        assert len(listing.query_one("#conversations").options) == 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat(app).conversation.id == cid)
        await pilot.pause(0.1)
        [user] = chat(app).query(UserMessage)
        assert user.prompt == "hello there"
        [reply] = replies(app)
        assert reply.text == "Ahoy **matey**!"
        assert "TTFT 200 ms · 12.5 tok/s · 3 tokens" in str(reply.caption.render())
        assert chat(app).sub_title == "Old talk"
        # The next prompt continues it, with its system prompt and history.
        await send(pilot, "and then?")
        await answered(pilot)
        request = app.loader.engine("fast").requests[0]
        assert [(m.role, m.content) for m in request] == [
            ("system", "talk like a pirate"),
            ("user", "hello there"),
            ("assistant", "Ahoy **matey**!"),
            ("user", "and then?"),
        ]
        await app.history_idle()
        with Store.open(settings.history_path()) as store:
            assert len(store.get_conversation(cid).messages) == 2


async def test_rename_and_delete_in_the_conversation_list(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first conversation")
        await answered(pilot)
        await app.history_idle()
        cid = chat(app).conversation.id
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.press("r")
        await pilot.pause(0.2)
        app.screen.query_one("Input").value = ""
        await pilot.press(*"Renamed", "enter")
        await pilot.pause(0.2)
        assert app.history.store.get_conversation(cid).title == "Renamed"
        await pilot.press("d")
        assert app.history.store.list_conversations()  # one press only arms the deletion
        await pilot.press("d")
        await pilot.pause(0.1)
        assert app.history.store.list_conversations() == []
        await pilot.press("escape")
        await pilot.pause(0.2)
        # The conversation on screen was deleted: the chat starts afresh.
        assert chat(app).conversation.id is None
        assert not replies(app)


async def test_edit_last_prompt_resends_it_in_place(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first")
        await answered(pilot)
        await send(pilot, "secnd")
        await answered(pilot)
        await pilot.press("ctrl+l")
        prompt = chat(app).query_one(PromptInput)
        assert prompt.text == "secnd"
        prompt.load_text("second")
        await pilot.press("enter")
        await answered(pilot)
        prompts = [u.prompt for u in chat(app).query(UserMessage)]
        assert prompts == ["first", "second"]
        assert len(replies(app)) == 2
        last_request = app.loader.engine("fast").requests[-1]
        assert [m.content for m in last_request if m.role == "user"] == ["first", "second"]


async def test_copy_reply_and_one_code_block(make_app) -> None:
    app = make_app()
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "code please")
        await answered(pilot)
        await pilot.press("f8")
        assert copied[-1] == replies(app)[0].text
        await pilot.press("f9")  # one code block: copied at once
        await pilot.pause(0.1)
        assert copied[-1] == "print('hi')"
        # Two blocks: a picker asks which.
        await chat(app)._reset(chat(app).conversation)
        replies(app)[0].write("\n```sh\necho two\n```\n")
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, CodeBlockPicker))
        await pilot.press("down", "enter")
        await pilot.pause(0.1)
        assert copied[-1] == "echo two"
        # With two replies, F8 copies the newest, or the one the reader clicked.
        await send(pilot, "and again")
        await answered(pilot)
        first, second = replies(app)
        first.write(" (the first)")
        await pilot.press("f8")
        assert copied[-1] == second.text
        await pilot.click(first.caption)
        await pilot.press("f8")
        assert copied[-1] == first.text and first.text.endswith("(the first)")
        assert first.caption.has_class("-chosen") and not second.caption.has_class("-chosen")


async def test_settings_modal_sets_system_prompt_and_parameters(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, ParamsScreen))
        modal = app.screen
        modal.query_one("#system").load_text("Answer in French.")
        modal.query_one("#max_tokens").value = "3"
        modal.query_one("#temperature").value = "9"
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert "temperature must be between" in str(modal.query_one("#problem").render())
        modal.query_one("#temperature").value = "0"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ParamsScreen))
        await send(pilot, "bonjour")
        await answered(pilot)
        engine = app.loader.engine("fast")
        assert engine.requests[0][0].content == "Answer in French."
        # max_tokens reached the engine: the scripted answer stops after 3 pieces, "length".
        assert replies(app)[0].text == "The **answer** is"
        assert "length" in str(replies(app)[0].caption.render())
        # Changed mid-conversation, the settings are kept in the history too.
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, ParamsScreen))
        app.screen.query_one("#system").load_text("Answer in Japanese.")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ParamsScreen))
        await pilot.pause(0.1)
        await app.history_idle()
        stored = app.history.store.get_conversation(chat(app).conversation.id)
        assert stored.system == "Answer in Japanese."
        assert stored.params["max_tokens"] == 3


async def test_the_oldest_exchanges_are_left_out_when_the_context_is_outgrown(make_app) -> None:
    app = make_app(
        """
        [engines.tiny]
        type = "scripted"
        model = "tiny-ctx"
        text = "ok"
        context = 200
        ttft_s = 0.0
        """,
        engine="tiny",
        params=__import__("tedchat.engine", fromlist=["x"]).GenerationParams(max_tokens=50),
    )
    async with app.run_test(size=SIZE) as pilot:
        for i in range(3):
            await send(pilot, f"question {i} " + "x" * 240)  # ~60 tokens each, estimated
            await answered(pilot)
        notices = [str(n.render()) for n in chat(app).query(Notice)]
        assert notices and "tiny's context of 200 tokens" in notices[-1]
        assert "oldest 1 exchange was left out" in notices[-1]
        last = app.loader.engine("tiny").requests[-1]
        assert not any(m.content.startswith("question 0") for m in last)
        assert last[-1].content.startswith("question 2")


#: An engine that takes 0.8 s to load.
SLUGGISH = """
[engines.sluggish]
type = "scripted"
model = "slow-load"
text = "loaded answer"
load_s = 0.8
"""


async def test_a_prompt_sent_while_the_engine_loads_waits_for_it(make_app) -> None:
    app = make_app(SLUGGISH, engine="sluggish")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        state = app.loader.state("sluggish")
        assert state is not None and state.loading  # the load started on its own
        assert "loading sluggish" in figures(app)
        await send(pilot, "hurry")
        await pilot.pause(0.1)
        assert "waiting for the engine to load" in str(replies(app)[0].caption.render())
        await answered(pilot)
        assert replies(app)[0].text == "loaded answer"
        assert app.loader.is_ready("sluggish")


async def test_an_engine_error_keeps_the_partial_text_and_says_why(make_app) -> None:
    app = make_app(
        """
        [engines.broken]
        type = "scripted"
        model = "broken-1"
        text = "one two three four five six"
        fail = "the server hung up"
        """,
        engine="broken",
    )
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "go")
        await answered(pilot)
        view = replies(app)[0]
        assert view.text == "one two three"
        caption = str(view.caption.render())
        assert "error" in caption and "the server hung up" in caption


async def test_input_history_with_up_and_down_and_ctrl_j_newline(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        for text in ("alpha", "beta"):
            await send(pilot, text)
            await answered(pilot)
        prompt = chat(app).query_one(PromptInput)
        await pilot.press(*"draft")
        await pilot.press("up")
        assert prompt.text == "beta"
        await pilot.press("up")
        assert prompt.text == "alpha"
        await pilot.press("down", "down")
        assert prompt.text == "draft"
        await pilot.press("ctrl+j", *"line two")
        assert prompt.text == "draft\nline two"
        await pilot.press("enter")
        await answered(pilot)
        assert chat(app).query(UserMessage).last().prompt == "draft\nline two"


async def test_keymap_remaps_bindings_and_the_help_screen_lists_them(make_app) -> None:
    app = make_app(
        """
        [keymap]
        regenerate = "ctrl+g"
        regenrate = "ctrl+t"
        """
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        warnings = [n.message for n in app._notifications]
        assert any("regenrate" in w for w in warnings)
        await send(pilot, "hi")
        await answered(pilot)
        first = replies(app)[0]
        await pilot.press("ctrl+r")  # the old key no longer regenerates
        await pilot.pause(0.2)
        assert replies(app) == [first]
        await pilot.press("ctrl+g")
        await answered(pilot)
        assert replies(app)[0] is not first
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = {row[1]: row for row in app.screen.rows}
        assert rows["regenerate"][2] == "ctrl+g"
        assert rows["send"][2] == "enter"


async def test_history_off_records_nothing(make_app, tui_home: Path) -> None:
    app = make_app("\n[history]\nenabled = false\n")
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "secret")
        await answered(pilot)
        assert replies(app)[0].text
        await pilot.press("ctrl+o")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, HistoryScreen)
        assert any("history is disabled" in n.message for n in app._notifications)
    assert not list(tui_home.rglob("*.db"))


async def test_theme_switch_is_remembered_unless_flag_or_env(make_app, monkeypatch) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "tokyo-electron"  # the config default
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Theme", "enter")
        await pilot.pause(0.3)
        await pilot.press(*"cerebras")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "cerebras-dark")
    state = json.loads((paths.state_dir() / "ui.json").read_text())
    assert state["theme"] == "cerebras-dark"
    again = make_app()
    assert again.theme == "cerebras-dark"  # remembered over the config's default
    assert make_app(theme="light").theme == "light"  # --theme wins
    monkeypatch.setenv("TEDCHAT_THEME", "light")
    assert make_app().theme == "light"  # and so does the environment
    monkeypatch.delenv("TEDCHAT_THEME")
    bad = make_app(theme="no-such-theme")
    assert bad.theme == "tokyo-electron"
    assert any("no-such-theme" in p for p in bad._problems)


async def test_floorplan_for_wafer_engines_only(make_app) -> None:
    app = make_app(engine="emu")
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "plan?")
        await answered(pilot)
        assert "emulated 2x CS-3" in figures(app)  # emulated figures, labelled
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, FloorplanScreen))
        floorplan = app.screen.query_one(Floorplan)
        await wait_for(pilot, lambda: floorplan.plan is not None)
        text = "\n".join(str(line) for line in floorplan._lines(floorplan.plan, None))
        assert "system 0" in text and "system 1" in text and "Predicted TTFT" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat(app).set_engine("fast")
        await pilot.pause(0.1)
        await pilot.press("f10")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ChatScreen)
        assert any("has no floorplan" in n.message for n in app._notifications)


async def test_japanese_wraps_in_messages_and_in_the_prompt(make_app) -> None:
    app = make_app(engine="nihongo")
    async with app.run_test(size=(60, 30)) as pilot:
        long_prompt = "日本語の入力欄でも長い文章が正しく折り返されることを確かめるための文です。"
        await send(pilot, long_prompt)
        await answered(pilot)
        user = chat(app).query_one(UserMessage)
        # 36 wide characters are 72 cells: more than one line at this width, none cut off.
        assert user.size.height >= 2
        assert replies(app)[0].text.startswith("ウェハースケール")
        prompt = chat(app).query_one(PromptInput)
        prompt.load_text(long_prompt)
        await pilot.pause(0.1)
        assert prompt.wrapped_document.height >= 2


LONG_ANSWER_CONFIG = """
[engines.long]
type = "scripted"
model = "long-1"
file = "{file}"
tokens_per_s = 1500.0
ttft_s = 0.0
"""


def long_markdown() -> str:
    parts = ["# Heading\n\nIntro paragraph with **bold** and `code`.\n"]
    for i in range(12):
        parts.append(f"\n## Section {i}\n\nParagraph {i} " + "words " * 30 + "\n")
        parts.append(f"\n- item {i}a\n- item {i}b\n")
        if i % 4 == 0:
            parts.append(f"\n```python\nfor n in range({i}):\n    print(n)\n```\n")
    return "".join(parts)


def screen_lines(app: Any) -> list[list[Any]]:
    """The screen as segments (text and style): what the terminal would be sent."""
    return [list(strip) for strip in app.screen._compositor.render_strips()]


async def test_a_long_answer_is_one_widget_of_lines_that_reflow_and_recolour(
    make_app, tmp_path: Path
) -> None:
    from tedchat.tui.markdown import MarkdownLines
    from tedchat.tui.widgets.markdown_view import MarkdownView, renderer_for

    answer = tmp_path / "long.md"
    answer.write_text(long_markdown(), encoding="utf-8")
    app = make_app(LONG_ANSWER_CONFIG.format(file=answer), engine="long")
    async with app.run_test(size=(90, 40)) as pilot:
        await send(pilot, "a long one")
        await answered(pilot)
        view = replies(app)[0]
        assert view.text == answer.read_text()
        # No widget per block: the streamed answer is a body, a caption and nothing else.
        assert len(list(view.walk_children())) == 2
        body = view.query_one(MarkdownView)
        # Streamed frame by frame, the lines are those of the whole text drawn at once.
        whole = MarkdownLines()
        whole.append(view.text)
        expected = whole.update(renderer_for(app), body.size.width)
        assert body.document.lines == expected
        assert body.size.height == len(expected)
        heading_colour = next(s for s in expected if s.text.startswith("Section 0"))
        # A narrower terminal draws them again at the new width.
        await pilot.resize_terminal(60, 40)
        await wait_for(pilot, lambda: body.size.width < 60)
        await pilot.pause(0.05)
        await wait_for(pilot, lambda: len(body.document.lines) == body.size.height)
        assert all(strip.cell_length == body.size.width for strip in body.document.lines)
        assert len(body.document.lines) > len(expected)  # wrapped over more lines
        # A new theme draws them in its colours.
        app.theme = "light"
        await pilot.pause(0.1)
        body.render_line(0)  # what a repaint asks for
        heading = next(s for s in body.document.lines if s.text.startswith("Section 0"))
        assert next(iter(heading)).style != next(iter(heading_colour)).style
        assert "".join(s.text for s in body.document.lines).count("Section 11") == 1


async def test_the_view_follows_the_answer_until_scrolled_up_and_again_at_the_bottom(
    make_app, tmp_path: Path
) -> None:
    answer = tmp_path / "long.md"
    answer.write_text(long_markdown() * 3, encoding="utf-8")
    # Slow enough that the answer still streams through every step on a loaded 2-core machine
    # (at 400 tokens/s it sometimes ended before the last check, about one run in five).
    config = LONG_ANSWER_CONFIG.format(file=answer).replace("1500.0", "150.0")
    app = make_app(config, engine="long")
    async with app.run_test(size=(90, 30)) as pilot:
        log = chat(app).log_view
        await send(pilot, "a long one")

        def at_bottom() -> bool:
            return log.scroll_y == log.max_scroll_y

        await wait_for(pilot, lambda: log.max_scroll_y > 20 and at_bottom(), timeout=20)
        log.scroll_to(y=5, animate=False)  # the reader scrolls up
        await pilot.pause(0.1)
        grown = log.max_scroll_y
        await wait_for(pilot, lambda: log.max_scroll_y > grown + 10, timeout=20)
        assert log.scroll_y == 5  # left where the reader put it
        log.scroll_to(y=log.max_scroll_y, animate=False)  # back at the bottom: follows again
        bottom = log.max_scroll_y
        await wait_for(pilot, lambda: log.max_scroll_y > bottom + 10 and at_bottom(), timeout=20)
        assert chat(app).busy  # all of this while the answer was still streaming
        # Done with it: cancel the rest of the answer rather than wait minutes for it.
        await pilot.press("escape")
        await wait_for(pilot, lambda: not chat(app).busy, timeout=20)
        await wait_for(pilot, at_bottom, timeout=5)
        await wait_for(pilot, at_bottom, timeout=2)


async def test_engine_notices_and_the_active_wafer_stage_reach_the_screen(make_app) -> None:
    app = make_app(
        """
        [engines.staged]
        type = "scripted"
        model = "staged-1"
        text = "one two three four five six seven eight"
        tokens_per_s = 20.0
        stages = 4
        floorplan = true
        notice = "the oldest 3 messages were left out"
        """,
        engine="staged",
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f10")  # the floorplan, open while the answer streams
        await wait_for(pilot, lambda: isinstance(app.screen, FloorplanScreen))
        floorplan = app.screen.query_one(Floorplan)
        chat(app).send("go")  # the floorplan has the keyboard: send from the chat screen
        await wait_for(pilot, lambda: floorplan.active is not None)
        seen = set()
        while chat(app).busy:
            if floorplan.active is not None:
                seen.add(floorplan.active["system"])
            await pilot.pause(0.02)
        assert seen == {0, 1}  # the highlight followed the engine's active system
        await wait_for(pilot, lambda: floorplan.active is None)  # and cleared at the end
        await pilot.press("escape")
        await pilot.pause(0.1)
        notes = [str(n.render()) for n in replies(app)[0].query(Notice)]
        assert notes == ["note: the oldest 3 messages were left out"]


async def test_escape_while_the_engine_loads_cancels_that_prompt_only(make_app) -> None:
    app = make_app(SLUGGISH, engine="sluggish")
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "never mind")
        await pilot.pause(0.1)
        await pilot.press("escape")
        await answered(pilot)
        assert "cancelled before it began" in str(replies(app)[0].caption.render())
        await send(pilot, "now then")  # the load went on: this one is answered
        await answered(pilot)
        assert replies(app)[-1].text == "loaded answer"
        # The cancelled prompt stays in the conversation (and the history) without a reply.
        request = app.loader.engine("sluggish").requests[-1]
        assert [m.content for m in request] == ["never mind", "now then"]


async def test_a_damaged_history_offers_a_fresh_one_in_a_dialog(make_app, tui_home: Path) -> None:
    import hashlib

    from textual.widgets import Button

    from tedchat.tui.screens.history import FreshHistoryDialog

    db = tui_home / "data" / "history.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, FreshHistoryDialog))
        assert str(db) in app.screen.problem
        app.screen.query_one("#fresh", Button).press()
        await wait_for(pilot, lambda: app.history.store is not None)
        await send(pilot, "kept in the fresh history")
        await answered(pilot)
        await app.history_idle()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # the old file is untouched
    fresh = [p for p in db.parent.glob("history*.db") if p != db]
    assert len(fresh) == 1
    from tedchat.history.store import Store

    with Store.open(fresh[0]) as store:
        assert store.list_conversations()[0].title == "kept in the fresh history"
