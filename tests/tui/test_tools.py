"""Pilot tests of tools in the TUI: call blocks in replies, the approval dialog, Esc during a
tool, resumed tool calls, and tools in every compare pane.

The scripted test engine (``tool_script``) asks for the calls, through the real plugin path;
turns run through the real session loop, the real :class:`~tedchat.tools.toolbox.Toolbox`
(holding two small tools of a "dictionary" plugin, or the built-in tools from the config) and
the real SQLite history.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tedchat.config import ToolSettings
from tedchat.engine import ToolCall
from tedchat.history.store import Store
from tedchat.tools.base import ApprovalRequest, Tool, ToolCallRecord
from tedchat.tools.toolbox import Toolbox
from tedchat.tui.screens.approval import ApprovalDialog
from tedchat.tui.screens.chat import ChatScreen
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.screens.history import HistoryScreen
from tedchat.tui.widgets.compare_pane import ComparePane
from tedchat.tui.widgets.markdown_view import MarkdownView
from tedchat.tui.widgets.messages import Notice, ReplyView
from tedchat.tui.widgets.prompt import PromptInput
from tedchat.tui.widgets.status_bar import StatusLine
from tedchat.tui.widgets.tool_call import ToolCallBlock, block_content

from .conftest import answered, send, wait_for

SIZE = (110, 36)

LOOKUP_PARAMS = {
    "type": "object",
    "properties": {"word": {"type": "string"}},
    "required": ["word"],
}
SLOW_PARAMS = {"type": "object", "properties": {"s": {"type": "number"}}}


def script(*steps: dict[str, Any]) -> str:
    """A ``tool_script`` setting as a TOML literal string."""
    return "'" + json.dumps(list(steps)) + "'"


def lookup(word: str) -> dict[str, Any]:
    return {"name": "lookup", "arguments": {"word": word}}


BUSY_SCRIPT = script(
    {"text": "Working on it.", "calls": [lookup("pup"), {"name": "slow", "arguments": {"s": 60}}]}
)

TOOL_ENGINES = f"""
[engines.tooly]
type = "scripted"
model = "script-tools"
text = "A pup is a young dog."
ttft_s = 0.01
tokens_per_s = 400.0
tool_script = {script({"text": "Let me look it up.", "calls": [lookup("pup")]})}

[engines.tooly2]
type = "scripted"
model = "script-tools-2"
text = "Done with both."
ttft_s = 0.01
tokens_per_s = 400.0
tool_script = {script({"text": "", "calls": [lookup("kit")]})}

[engines.twice]
type = "scripted"
model = "script-twice"
text = "Both words found."
ttft_s = 0.01
tokens_per_s = 400.0
tool_script = {script({"calls": [lookup("pup")]}, {"calls": [lookup("kit")]})}

[engines.busy]
type = "scripted"
model = "script-busy"
text = "never reached"
ttft_s = 0.01
tokens_per_s = 400.0
tool_script = {BUSY_SCRIPT}
"""


def lookup_word(args: dict[str, Any]) -> str:
    word = args["word"]
    return f"{word}: a young animal\nsee also: puppy\nline three\nline four"


async def take_a_while(args: dict[str, Any]) -> str:
    await asyncio.sleep(float(args.get("s", 1)))
    return "slept"


def dictionary(approval: str = "ask") -> Toolbox:
    """The real toolbox holding a plugin's two tools: ``lookup`` answers at once, ``slow``
    sleeps ``s`` seconds."""
    return Toolbox(
        ToolSettings(approval=approval),
        [
            Tool("lookup", "Look a word up", LOOKUP_PARAMS, lookup_word, "plugin:dictionary"),
            Tool("slow", "Take a while", SLOW_PARAMS, take_a_while, "plugin:dictionary"),
        ],
    )


def questions(app: Any) -> list[ApprovalRequest]:
    """Every approval the app's dialogs are asked for from now on, in order."""
    approvals = app.services.approvals
    asked: list[ApprovalRequest] = []
    ask = approvals.ask

    async def spy(app_: Any, request: ApprovalRequest, **kwargs: Any) -> Any:
        asked.append(request)
        return await ask(app_, request, **kwargs)

    approvals.ask = spy
    return asked


def chat(app: Any) -> ChatScreen:
    screen = app.chat_screen()
    assert screen is not None
    return screen


def replies(app: Any) -> list[ReplyView]:
    return list(chat(app).query(ReplyView))


def block_text(block: ToolCallBlock) -> str:
    return str(block.render())


def stored_reply(app: Any) -> Any:
    store = app.history.store
    assert store is not None
    [summary] = store.list_conversations()
    return store.get_conversation(summary.id).messages[0].replies[0]


def tool_messages(engine: Any, request: int) -> list[tuple[str | None, Any]]:
    return [(m.tool_call_id, m.content) for m in engine.requests[request] if m.role == "tool"]


async def approve(pilot: Any, key: str) -> None:
    """Answer the approval dialog (the next one, if one shows) with ``key``."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ApprovalDialog))
    dialog = pilot.app.screen
    await pilot.pause(0.05)
    await pilot.press(key)
    await wait_for(pilot, lambda: dialog not in pilot.app.screen_stack)


async def test_a_tool_call_is_a_block_between_the_step_texts_with_its_result(make_app) -> None:
    tools = dictionary("auto")
    app = make_app(TOOL_ENGINES, engine="tooly", tools=tools)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what is a pup?")
        await answered(pilot)
        [view] = replies(app)
        # Drawn in order: the first step's text, the call, the answer after it.
        parts = [w for w in view.children if isinstance(w, (MarkdownView, ToolCallBlock))]
        assert [type(p).__name__ for p in parts] == [
            "MarkdownView",
            "ToolCallBlock",
            "MarkdownView",
        ]
        assert parts[0].source == "Let me look it up."  # type: ignore[union-attr]
        assert parts[2].source == "A pup is a young dog."  # type: ignore[union-attr]
        assert view.text == "Let me look it up.A pup is a young dog."
        [block] = view.tool_blocks
        text = block_text(block)
        assert "lookup" in text and "plugin:dictionary" in text
        assert '{"word": "pup"}' in text
        assert "done" in text
        assert "pup: a young animal" in text and "line three" in text
        assert "line four" not in text and "1 more line" in text  # a preview, not all of it
        # Tool time apart from the model's figures, in the caption and the status bar.
        caption = str(view.caption.render())
        assert "tools " in caption and "in 2 steps" in caption
        assert "TTFT" in chat(app).query_one(StatusLine).figures_text
        assert "running" not in chat(app).query_one(StatusLine).figures_text
        # The model was told the result.
        engine = app.loader.engine("tooly")
        assert tool_messages(engine, 1) == [("call_0_0", block.record.result)]
        # A click shows the whole arguments and result; another folds it again.
        await pilot.click(block)
        await pilot.pause(0.05)
        assert block.expanded and "line four" in block_text(block)
        assert '"word": "pup"' in block_text(block) and "result:" in block_text(block)
        await pilot.click(block)
        await pilot.pause(0.05)
        assert not block.expanded and "line four" not in block_text(block)
        # Ctrl+T (typing in the prompt) expands every call of the reply; Enter on a focused
        # block folds it.
        chat(app).query_one(PromptInput).focus()
        await pilot.press("ctrl+t")
        await pilot.pause(0.05)
        assert block.expanded
        block.focus()
        await pilot.press("enter")
        await pilot.pause(0.05)
        assert not block.expanded
        # The history keeps the call with the reply.
        await app.history_idle()
        reply = stored_reply(app)
        assert reply.content == view.text
        [call] = reply.tool_calls
        assert call["name"] == "lookup" and call["status"] == "done"
        assert call["result"].startswith("pup: a young animal")


async def test_allow_once_then_always_then_no_more_questions(make_app) -> None:
    tools = dictionary()
    app = make_app(TOOL_ENGINES, engine="twice", tools=tools)
    asked = questions(app)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "two words please")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        dialog = app.screen
        assert isinstance(dialog, ApprovalDialog)
        shown = " ".join(str(w.render()) for w in dialog.query("Label, Static"))
        assert "lookup" in shown and "plugin:dictionary" in shown and '"word": "pup"' in shown
        # The status bar says what waits meanwhile.
        assert "running lookup" in chat(app).query_one(StatusLine).figures_text
        await approve(pilot, "o")  # once: the next call asks again
        await approve(pilot, "a")  # always for lookup
        await answered(pilot)
        assert [r.args["word"] for r in asked] == ["pup", "kit"]
        blocks = replies(app)[0].tool_blocks
        assert [b.record.status for b in blocks] == ["done", "done"]
        # Another turn: lookup runs unasked now.
        await send(pilot, "again")
        await answered(pilot)
        assert len(asked) == 2
        assert not isinstance(app.screen, ApprovalDialog)
        assert [b.record.status for b in replies(app)[1].tool_blocks] == ["done", "done"]


async def test_deny_with_escape_tells_the_model_and_shows_denied(make_app) -> None:
    tools = dictionary()
    app = make_app(TOOL_ENGINES, engine="tooly", tools=tools)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what is a pup?")
        await approve(pilot, "escape")
        await answered(pilot)
        [block] = replies(app)[0].tool_blocks
        assert block.record.status == "denied"
        assert "denied" in block_text(block)
        engine = app.loader.engine("tooly")
        [(call_id, content)] = tool_messages(engine, 1)
        assert call_id == "call_0_0" and "denied" in content
        # The answer went on after the refusal, and the screen is still the chat.
        assert replies(app)[0].text.endswith("A pup is a young dog.")
        assert isinstance(app.screen, ChatScreen)


async def test_escape_during_a_slow_tool_cancels_and_keeps_text_and_finished_calls(
    make_app,
) -> None:
    tools = dictionary("auto")
    app = make_app(TOOL_ENGINES, engine="busy", tools=tools)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "work")
        await wait_for(
            pilot, lambda: len(replies(app)) == 1 and len(replies(app)[0].tool_blocks) == 2
        )
        view = replies(app)[0]
        fast, slow = view.tool_blocks
        await wait_for(pilot, lambda: fast.record.status == "done")
        await wait_for(
            pilot, lambda: "running slow" in chat(app).query_one(StatusLine).figures_text
        )
        await wait_for(pilot, lambda: " s" in block_text(slow) and "running…" in block_text(slow))
        assert chat(app).busy
        await pilot.press("escape")
        await answered(pilot)
        assert slow.record.status == "cancelled"
        assert "cancelled" in block_text(slow) and "done" in block_text(fast)
        assert "cancelled" in str(view.caption.render())
        assert "running" not in chat(app).query_one(StatusLine).figures_text
        assert view.text == "Working on it."
        # The history file keeps the text and both calls: the finished one with its result.
        await app.history_idle()
        path = app.settings.history_path()
    with Store.open(path) as store:
        [summary] = store.list_conversations()
        reply = store.get_conversation(summary.id).messages[0].replies[0]
    assert reply.finish_reason == "cancelled"
    assert reply.content == "Working on it."
    calls = {c["name"]: c for c in reply.tool_calls}
    assert calls["lookup"]["status"] == "done" and calls["lookup"]["result"].startswith("pup")
    assert calls["slow"]["status"] == "cancelled"


async def test_stop_in_the_approval_dialog_cancels_the_answer(make_app) -> None:
    tools = dictionary()
    app = make_app(TOOL_ENGINES, engine="tooly", tools=tools)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what is a pup?")
        await approve(pilot, "s")
        await answered(pilot)
        assert isinstance(app.screen, ChatScreen)
        view = replies(app)[0]
        [block] = view.tool_blocks
        assert block.record.status == "cancelled"
        assert "cancelled" in str(view.caption.render())
        assert len(app.loader.engine("tooly").requests) == 1  # the model was not asked again
        await app.history_idle()
        reply = stored_reply(app)
        assert reply.finish_reason == "cancelled" and reply.content == "Let me look it up."


async def test_a_turn_cancelled_while_its_dialog_shows_takes_the_dialog_away(make_app) -> None:
    tools = dictionary()
    app = make_app(TOOL_ENGINES, engine="tooly", tools=tools)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what is a pup?")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        chat(app).action_cancel()  # what the screen's Esc does (the dialog has the keys now)
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        await answered(pilot)
        assert replies(app)[0].tool_blocks[0].record.status == "cancelled"
        assert app.services.approvals.waiting == 0


async def test_a_resumed_conversation_shows_its_tool_calls_and_sends_them_again(
    make_app, tui_home
) -> None:
    from tedchat.config import load_settings

    settings = load_settings()
    call = ToolCallRecord(
        "call_7",
        "lookup",
        '{"word": "kit"}',
        source="plugin:dictionary",
        offset=len("Looking. "),
        args={"word": "kit"},
        status="done",
        result="kit: a young fox",
        elapsed_s=0.25,
    )
    with Store.open(settings.history_path()) as store:
        cid = store.new_conversation("Foxes")
        mid = store.add_user_message(cid, "what is a kit?")
        writer = store.begin_reply(cid, mid, "tooly", "script-tools")
        writer.append("Looking. ")
        writer.add_tool_call(call.as_dict())
        writer.append("A kit is a young fox.")
        writer.finish("stop", {"ttft_s": 0.1, "output_tokens_per_s": 10.0, "output_tokens": 9})
    tools = dictionary("auto")
    app = make_app(TOOL_ENGINES, engine="tooly", tools=tools)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen))
        await pilot.pause(0.1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat(app).conversation.id == cid)
        await pilot.pause(0.1)
        [view] = replies(app)
        [block] = view.tool_blocks
        text = block_text(block)
        assert "lookup" in text and "kit: a young fox" in text and "0.25 s" in text
        parts = [w for w in view.children if isinstance(w, (MarkdownView, ToolCallBlock))]
        assert [type(p).__name__ for p in parts] == [
            "MarkdownView",
            "ToolCallBlock",
            "MarkdownView",
        ]
        assert view.text == "Looking. A kit is a young fox."
        # The next prompt sends the stored steps to the tool engine.
        await send(pilot, "and a pup?")
        await answered(pilot)
        first = app.loader.engine("tooly").requests[0]
        assert [(m.role, m.content) for m in first[:4]] == [
            ("user", "what is a kit?"),
            ("assistant", "Looking. "),
            ("tool", "kit: a young fox"),
            ("assistant", "A kit is a young fox."),
        ]
        assert first[1].tool_calls == (ToolCall("call_7", "lookup", '{"word": "kit"}'),)


async def test_every_compare_pane_gets_its_calls_done_through_one_dialog_at_a_time(
    make_app,
) -> None:
    tools = dictionary()
    app = make_app(TOOL_ENGINES, compare=["tooly", "tooly2"], tools=tools)
    asked = questions(app)
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        await send(pilot, "define your word")
        await approve(pilot, "o")
        await approve(pilot, "o")
        await wait_for(pilot, lambda: not screen.busy)  # type: ignore[attr-defined]
        await pilot.pause(0.05)
        assert sorted(r.args["word"] for r in asked) == ["kit", "pup"]
        for pane in screen.query(ComparePane):
            [view] = pane.query(ReplyView)
            [block] = view.tool_blocks
            assert block.record.status == "done"
            assert f"{block.record.args['word']}: a young animal" in block_text(block)
            assert "in 2 steps" in str(view.caption.render())


async def test_questions_asked_at_once_get_one_dialog_after_the_other(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        approvals = app.services.approvals
        first = asyncio.ensure_future(approvals.ask(app, ApprovalRequest("one", "builtin")))
        second = asyncio.ensure_future(approvals.ask(app, ApprovalRequest("two", "builtin")))
        await wait_for(pilot, lambda: approvals.waiting == 2)
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        assert app.screen.request.name == "one"  # type: ignore[attr-defined]
        assert sum(isinstance(s, ApprovalDialog) for s in app.screen_stack) == 1
        await approve(pilot, "o")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        assert app.screen.request.name == "two"  # type: ignore[attr-defined]
        await approve(pilot, "d")
        assert (await first, await second) == ("once", "deny")
        # One cancelled while it waits for its turn never shows.
        shown = asyncio.ensure_future(approvals.ask(app, ApprovalRequest("three", "builtin")))
        dropped = asyncio.ensure_future(approvals.ask(app, ApprovalRequest("four", "builtin")))
        await wait_for(pilot, lambda: approvals.waiting == 2)
        dropped.cancel()
        await approve(pilot, "a")
        assert await shown == "always"
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ApprovalDialog) and approvals.waiting == 0


def test_block_content_says_status_time_and_error() -> None:
    record = ToolCallRecord("c", "read_file", '{"path": "x"}', source="builtin")
    running = block_content(record, expanded=False, running_s=1.26).plain
    assert "running…" in running and "1.26 s" in running and "read_file" in running
    record.args = {"path": "x" * 300}
    record.status, record.error, record.elapsed_s = "error", "no such file: x", 0.5
    shown = block_content(record, expanded=False, running_s=None).plain
    assert "error" in shown and "no such file" in shown and "0.50 s" in shown
    assert max(len(line) for line in shown.splitlines()) < 200  # arguments cut to one line
    full = block_content(record, expanded=True, running_s=None).plain
    assert "x" * 300 in full


async def test_max_steps_from_the_config_ends_the_turn_with_a_notice(make_app) -> None:
    tools = dictionary("auto")
    app = make_app(TOOL_ENGINES + "\n[tools]\nmax_steps = 2\n", engine="twice", tools=tools)
    assert app.services.max_steps == 2
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "two words please")
        await answered(pilot)
        [view] = replies(app)
        # Step 1 ran its call; step 2 asked for another and the turn stopped there.
        assert [b.record.args["word"] for b in view.tool_blocks] == ["pup"]
        notes = [str(n.render()) for n in view.query(Notice)]
        assert any("max_steps" in n for n in notes), notes
        assert "length" in str(view.caption.render())


# --- the real toolbox ([tools] in the config, the built-in tools) ------------------------------


def reader_config(workspace: Any, approval: str) -> str:
    steps = script(
        {"text": "Reading.", "calls": [{"name": "read_file", "arguments": {"path": "notes.txt"}}]},
        {"calls": [{"name": "read_file", "arguments": {"path": "notes.txt", "start_line": 2}}]},
    )
    return f"""
[engines.reader]
type = "scripted"
model = "script-reader"
text = "The notes say hello."
ttft_s = 0.01
tokens_per_s = 400.0
tool_script = {steps}

[tools]
sources = ["builtin"]
approval = "{approval}"
workspace = {str(workspace)!r}
"""


async def test_the_built_in_read_file_runs_from_the_config_with_approval_auto(
    make_app, tmp_path
) -> None:
    (tmp_path / "notes.txt").write_text("first line\nsecond line\n", encoding="utf-8")
    app = make_app(reader_config(tmp_path, "auto"), engine="reader")
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what do my notes say?")
        await answered(pilot)
        assert not isinstance(app.screen, ApprovalDialog)
        [view] = replies(app)
        first, second = view.tool_blocks
        assert first.record.source == "builtin" and first.record.status == "done"
        assert "first line" in first.record.result and "second line" in first.record.result
        assert "read_file" in block_text(first) and "builtin" in block_text(first)
        assert "first line" in block_text(first)
        assert "first line" not in second.record.result
        engine = app.loader.engine("reader")
        assert [m.content for m in engine.requests[1] if m.role == "tool"] == [first.record.result]
        assert {s.name for s in engine.params_seen[0].tools} >= {"read_file", "list_directory"}
        assert view.text == "Reading.The notes say hello."


async def test_the_real_toolbox_asks_and_always_holds_for_the_next_call(make_app, tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("first line\nsecond line\n", encoding="utf-8")
    app = make_app(reader_config(tmp_path, "ask"), engine="reader")
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what do my notes say?")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalDialog))
        dialog = app.screen
        assert isinstance(dialog, ApprovalDialog)
        assert dialog.request.name == "read_file" and dialog.request.source == "builtin"
        await approve(pilot, "a")
        await answered(pilot)
        assert not isinstance(app.screen, ApprovalDialog)  # the second call was not asked
        assert [b.record.status for b in replies(app)[0].tool_blocks] == ["done", "done"]


async def test_the_real_toolbox_tells_the_model_a_denied_call_was_denied(
    make_app, tmp_path
) -> None:
    (tmp_path / "notes.txt").write_text("secret\n", encoding="utf-8")
    app = make_app(reader_config(tmp_path, "ask"), engine="reader")
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what do my notes say?")
        await approve(pilot, "d")
        await approve(pilot, "d")
        await answered(pilot)
        blocks = replies(app)[0].tool_blocks
        assert [b.record.status for b in blocks] == ["denied", "denied"]
        told = [m.content for m in app.loader.engine("reader").requests[1] if m.role == "tool"]
        assert len(told) == 1 and "denied" in told[0] and "secret" not in told[0]


def test_the_tui_opens_the_tools_at_start_without_importing_mcp(tui_home) -> None:
    import subprocess
    import sys

    from tests.conftest import cli_env

    code = (
        "import asyncio, sys\n"
        "from tedchat.engines import load_context\n"
        "from tedchat.tui.app import TedchatApp\n"
        "async def main():\n"
        "    app = TedchatApp(load_context(), preload=False)\n"
        "    async with app.run_test() as pilot:\n"
        "        await pilot.pause(0.3)\n"
        "        names = sorted(s.name for s in app.services.tools.specs())\n"
        "        print(names, 'mcp' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cli_env(tui_home),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    names, mcp_imported = out.stdout.strip().rsplit(" ", 1)
    assert "read_file" in names and "shell" in names
    assert mcp_imported == "False"


async def test_an_mcp_server_starts_with_the_app_answers_a_call_and_stops_with_it(
    make_app,
) -> None:
    import datetime as dt
    import sys
    from zoneinfo import ZoneInfo

    from tests.tools.mcp_helpers import marker, pids_with, wait_gone

    tag = marker()
    convert = {
        "name": "convert_time",
        "arguments": {
            "source_timezone": "Asia/Tokyo",
            "time": "12:00",
            "target_timezone": "Asia/Kolkata",
        },
    }
    config = f"""
[engines.clock]
type = "scripted"
model = "script-clock"
text = "It is 08:30 in Kolkata."
ttft_s = 0.01
tokens_per_s = 400.0
tool_script = {script({"calls": [convert]})}

[tools]
sources = ["mcp:time"]
approval = "auto"

[mcp.time]
command = {sys.executable!r}
args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]
env = {{ TAG = "{tag}" }}
"""
    app = make_app(config, engine="clock")
    async with app.run_test(size=SIZE) as pilot:
        # Started in the background with the app, before any prompt.
        await wait_for(pilot, lambda: len(pids_with(tag)) == 1, timeout=30)
        tokyo = ZoneInfo("Asia/Tokyo")
        before = dt.datetime.now(tokyo).date()
        await send(pilot, "12:00 in Tokyo is what time in Kolkata?")
        await answered(pilot, timeout=60)
        after = dt.datetime.now(tokyo).date()
        [block] = replies(app)[0].tool_blocks
        assert block.record.source == "mcp:time" and block.record.status == "done"
        expected = {
            dt.datetime(d.year, d.month, d.day, 12, 0, tzinfo=tokyo)
            .astimezone(ZoneInfo("Asia/Kolkata"))
            .isoformat()
            for d in (before, after)
        }
        assert any(e in block.record.result for e in expected), block.record.result
        assert "convert_time" in block_text(block) and "mcp:time" in block_text(block)
    # The app has ended: its server is gone (no orphan).
    assert wait_gone(tag) == []
