"""The tool loop of a turn (tedchat.session.run_turn): model -> tool calls -> results -> model.

The engine is the scripted test plugin (its ``tool_script`` makes the calls, cut into pieces and
interleaved by index as servers send them); the tools are a small runner written here, so the
loop's own rules are tested apart from the toolbox's (tests/tools/ test that one)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tedchat.engine import Done, Engine, GenerationParams, Message, Runtime, ToolCall, ToolSpec
from tedchat.history.store import Store
from tedchat.session import (
    HistoryWriter,
    StepStarted,
    ToolCallFinished,
    ToolCallStarted,
    Turn,
    TurnHistory,
    run_turn,
)
from tedchat.tools.base import Approver, ToolCallRecord

PLUGIN = Path(__file__).resolve().parent / "tui" / "plugins" / "scripted_engine.py"
_spec = importlib.util.spec_from_file_location("session_tools_scripted", PLUGIN)
assert _spec is not None and _spec.loader is not None
scripted = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scripted)


def engine(script: list[dict[str, Any]], text: str = "It is 08:30.", **settings: Any) -> Any:
    values = {
        **scripted.SETTINGS,
        "text": text,
        "ttft_s": 0.0,
        "tokens_per_s": 0.0,
        "count": "usage",
        "tool_script": json.dumps(script),
        **settings,
    }
    return scripted.ScriptedEngine("s", values, Runtime(threads=1))


class Runner:
    """Tools for the loop: ``add`` sums, ``slow`` sleeps; records what ran and when."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.ran: list[str] = []
        self.running = 0
        self.most_at_once = 0

    def specs(self) -> tuple[ToolSpec, ...]:
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        return (ToolSpec("add", "adds", schema), ToolSpec("slow", "sleeps", schema))

    async def call(self, call: ToolCall, record: ToolCallRecord, approver: Approver | None) -> None:
        self.ran.append(call.name)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            record.source = "test"
            try:
                args = json.loads(call.arguments)
            except ValueError as exc:
                record.status, record.error = "error", f"invalid JSON arguments: {exc}"
                return
            record.args = args
            if call.name == "slow":
                await asyncio.sleep(self.delay)
            if call.name not in ("add", "slow"):
                record.status, record.error = "error", f"unknown tool {call.name!r}"
                return
            record.status, record.result = "done", str(sum(args.values()))
            record.elapsed_s = self.delay
        finally:
            self.running -= 1


async def test_calls_run_and_the_model_sees_the_results() -> None:
    script = [
        {
            "text": "Let me add. ",
            "calls": [
                {"name": "add", "arguments": {"a": 2, "b": 40}},
                {"name": "add", "arguments": {"a": 1, "b": 1}},
            ],
        }
    ]
    eng = engine(script, text="The sums are 42 and 2.")
    runner = Runner()
    seen: list[Any] = []
    turn = Turn(eng, [Message("user", "add things")], GenerationParams())
    result = await run_turn(turn, tools=runner, on_event=lambda e, _t: seen.append(e))
    assert result.text == "Let me add. The sums are 42 and 2."
    assert result.metrics.finish_reason == "stop"
    assert result.metrics.steps == 2
    assert result.metrics.output_tokens == 5 + 6  # both steps' Usage, summed
    assert [r.result for r in result.tool_calls] == ["42", "2"]
    assert [r.args for r in result.tool_calls] == [{"a": 2, "b": 40}, {"a": 1, "b": 1}]
    # The tools were offered on every request; the second request carried the step and results.
    assert [p.tools for p in eng.params_seen] == [runner.specs()] * 2
    second = eng.requests[1]
    assert second[0] == Message("user", "add things")
    assert second[1].role == "assistant" and second[1].content == "Let me add. "
    assert [(c.id, c.name) for c in second[1].tool_calls] == [
        ("call_0_0", "add"),
        ("call_0_1", "add"),
    ]
    assert json.loads(second[1].tool_calls[0].arguments) == {"a": 2, "b": 40}
    assert second[2:] == [
        Message("tool", "42", tool_call_id="call_0_0"),
        Message("tool", "2", tool_call_id="call_0_1"),
    ]
    # on_event: the turn's events in order; the first step's Done stays inside.
    kinds = [type(e).__name__ for e in seen if not type(e).__name__.endswith("Delta")]
    assert kinds.count("Done") == 1 and kinds[-1] == "Done"
    started = [e for e in seen if isinstance(e, ToolCallStarted)]
    finished = [e for e in seen if isinstance(e, ToolCallFinished)]
    assert len(started) == len(finished) == 2
    assert [e.step for e in seen if isinstance(e, StepStarted)] == [1]
    assert seen.index(finished[-1]) < seen.index(
        next(e for e in seen if isinstance(e, StepStarted))
    )


async def test_an_engine_without_tools_is_offered_none() -> None:
    eng = engine([], text="plain")
    runner = Runner()
    result = await run_turn(Turn(eng, [Message("user", "q")], GenerationParams()), tools=runner)
    assert result.text == "plain" and result.tool_calls == []
    assert eng.params_seen[0].tools == ()


async def test_calls_of_one_step_run_concurrently_and_tool_time_is_apart() -> None:
    script = [{"calls": [{"name": "slow", "arguments": {"a": 1}}] * 3}]
    eng = engine(script, text="one two three four five", count="deltas", tokens_per_s=0.0)
    runner = Runner(delay=0.3)
    result = await run_turn(Turn(eng, [Message("user", "q")], GenerationParams()), tools=runner)
    assert runner.most_at_once == 3
    m = result.metrics
    assert m.tool_s >= 0.3
    assert m.elapsed_s is not None and m.elapsed_s >= m.tool_s
    # Model time excludes the tools: the text streamed as fast as possible, so tokens/s is
    # far above what a span including the 0.3 s of tools would give ((n-1)/0.3 < 50).
    assert m.output_tokens_per_s is not None and m.output_tokens_per_s > 100


async def test_max_steps_ends_the_turn_as_length_with_one_notice() -> None:
    script = [{"calls": [{"name": "add", "arguments": {"a": 1}}]}] * 5
    eng = engine(script)
    runner = Runner()
    notices: list[str] = []

    def on_event(event: Any, _turn: Turn) -> None:
        if type(event).__name__ == "Notice":
            notices.append(event.text)

    result = await run_turn(
        Turn(eng, [Message("user", "q")], GenerationParams()),
        tools=runner,
        on_event=on_event,
        max_steps=3,
    )
    assert result.metrics.finish_reason == "length"
    assert len(eng.requests) == 3 and len(runner.ran) == 2
    assert notices == ["stopped after 3 model steps (max_steps); the model still asked for: add"]


async def test_bad_arguments_and_unknown_tools_are_results_the_model_sees() -> None:
    script = [
        {"calls": [{"name": "add", "arguments": "{not json"}, {"name": "nope", "arguments": {}}]}
    ]
    eng = engine(script)
    result = await run_turn(Turn(eng, [Message("user", "q")], GenerationParams()), tools=Runner())
    assert [r.status for r in result.tool_calls] == ["error", "error"]
    told = [m.content for m in eng.requests[1] if m.role == "tool"]
    assert told[0].startswith("error: invalid JSON arguments")
    assert told[1] == "error: unknown tool 'nope'"
    assert result.metrics.finish_reason == "stop"


async def test_tool_calls_are_stored_with_the_reply_and_come_back(tmp_path: Path) -> None:
    from tedchat.conversation import build_messages, conversation_from_store, history_pairs

    writer = HistoryWriter(Store.open(tmp_path / "h.db"))
    try:
        eng = engine([{"text": "Checking. ", "calls": [{"name": "add", "arguments": {"a": 5}}]}])
        history = TurnHistory(writer)
        await history.save_prompt("what is 5?", engine=eng)
        buffer = await history.begin_reply(eng)
        turn = Turn(eng, [Message("user", "what is 5?")], GenerationParams())
        await run_turn(turn, tools=Runner(), recorder=buffer)
        await writer.idle()
        assert history.conversation_id is not None
        stored = writer.store.get_conversation(history.conversation_id)
        reply = stored.messages[0].replies[0]
        assert reply.content == "Checking. It is 08:30."
        assert reply.finish_reason == "stop"
        assert [
            (c["name"], c["arguments"], c["result"], c["offset"]) for c in reply.tool_calls
        ] == [("add", {"a": 5}, "5", len("Checking. "))]
        # Resumed: the next request carries the step, the result and the rest of the text.
        conv = conversation_from_store(stored)
        built = build_messages("", history_pairs(conv.exchanges), "and 6?", 10_000, tools=True)
        assert [m.role for m in built.messages] == [
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
        ]
        assert built.messages[1].content == "Checking. "
        assert built.messages[1].tool_calls[0].name == "add"
        assert built.messages[2] == Message("tool", "5", tool_call_id="call_0_0")
        assert built.messages[3] == Message("assistant", "It is 08:30.")
        # An engine without tools gets the reply's text alone.
        plain = build_messages("", history_pairs(conv.exchanges), "and 6?", 10_000)
        assert [m.role for m in plain.messages] == ["user", "assistant", "user"]
        assert plain.messages[1].content == "Checking. It is 08:30."
        # The JSON export carries the calls and an import brings them back.
        exported = writer.store.export_json(history.conversation_id)
        again = writer.store.get_conversation(writer.store.import_json(exported))
        assert again.messages[0].replies[0].tool_calls == reply.tool_calls
        assert "**tool** `add`" in writer.store.export_markdown(history.conversation_id)
    finally:
        writer.close()


async def test_cancelling_during_a_tool_keeps_the_text_and_the_finished_calls(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    writer = HistoryWriter(Store.open(path))
    try:
        script = [
            {"calls": [{"name": "add", "arguments": {"a": 1}}]},
            {"text": "Now the slow one. ", "calls": [{"name": "slow", "arguments": {"a": 2}}]},
        ]
        eng = engine(script)
        history = TurnHistory(writer)
        await history.save_prompt("q", engine=eng)
        buffer = await history.begin_reply(eng)
        turn = Turn(eng, [Message("user", "q")], GenerationParams())
        task = asyncio.create_task(run_turn(turn, tools=Runner(delay=30), recorder=buffer))
        for _ in range(500):
            if any(r.name == "slow" for r in turn.tool_calls):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await writer.idle()
        with sqlite3.connect(path) as conn:
            content, finish, calls = conn.execute(
                "SELECT content, finish_reason, tool_calls FROM messages"
                " WHERE parent_id IS NOT NULL"
            ).fetchone()
        assert (content, finish) == ("Now the slow one. ", "cancelled")
        assert [(c["name"], c["status"]) for c in json.loads(calls)] == [
            ("add", "done"),
            ("slow", "cancelled"),
        ]
    finally:
        writer.close()


def test_done_is_the_last_event_of_a_plain_answer() -> None:
    # The contract's Done stays the end of the turn: the scripted engine with no script still
    # ends with one Done (a guard that the tool_script setting changed nothing else).
    eng: Engine = engine([], text="x")

    async def collect() -> list[Any]:
        return [e async for e in eng.stream([Message("user", "q")], GenerationParams())]

    events = asyncio.run(collect())
    assert isinstance(events[-1], Done) and sum(isinstance(e, Done) for e in events) == 1


async def test_a_forced_tool_choice_applies_to_the_first_step_only() -> None:
    script = [{"calls": [{"name": "add", "arguments": {"a": 1}}]}]
    eng = engine(script, text="one.")
    params = GenerationParams(tool_choice="add")
    result = await run_turn(Turn(eng, [Message("user", "q")], params), tools=Runner())
    assert [p.tool_choice for p in eng.params_seen] == ["add", "auto"]
    assert result.metrics.finish_reason == "stop" and result.text == "one."
