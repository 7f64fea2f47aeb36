"""Tool calling in the http engine: the request carries OpenAI ``tools`` / ``tool_choice`` and
tool messages, and every stream shape servers really send becomes ToolCallDelta events that
assemble into the calls made (the scripted fault server plays each shape)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tedchat.engine import (
    Done,
    Event,
    GenerationParams,
    Message,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
    capabilities_of,
)
from tedchat.errors import EngineError, ServerError
from tedchat_http.engine import HttpEngine
from tests.http.fault_server import TIME_ARGS, WEATHER_ARGS, FaultServer, pieces_of

MakeEngine = Callable[..., HttpEngine]

WEATHER = ToolSpec(
    "get_weather",
    "The current weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Tokyo", "Paris"]}},
        "required": ["city"],
    },
)
TIME = ToolSpec(
    "get_time",
    "The time now in an IANA timezone.",
    {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
)
ASK = [Message("user", "Weather and time in Tokyo?")]


async def events_of(
    engine: HttpEngine,
    messages: list[Message] = ASK,
    params: GenerationParams | None = None,
) -> list[Event]:
    params = params or GenerationParams(max_tokens=64, tools=(WEATHER, TIME))
    out: list[Event] = []
    try:
        async for event in engine.stream(messages, params):
            out.append(event)
    finally:
        await engine.close()
    return out


def assemble(events: list[Event]) -> list[ToolCall]:
    """The calls the deltas make, as the turn loop builds them: by index, the first piece's
    id and name, arguments concatenated (a second id or name for a call is a bug)."""
    calls: dict[int, dict[str, Any]] = {}
    for e in events:
        if isinstance(e, ToolCallDelta):
            call = calls.setdefault(e.index, {"id": None, "name": None, "arguments": ""})
            for key in ("id", "name"):
                value = getattr(e, key)
                if value is not None:
                    assert call[key] is None, f"{key} sent twice for call {e.index}"
                    call[key] = value
            call["arguments"] += e.arguments
    return [ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]


def done(events: list[Event]) -> str:
    assert isinstance(events[-1], Done)
    assert sum(isinstance(e, Done) for e in events) == 1
    return events[-1].finish_reason


def test_the_http_engine_declares_tools(make_engine: MakeEngine) -> None:
    assert capabilities_of(make_engine("ok")).tools is True


# --- the request ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        ("get_time", {"type": "function", "function": {"name": "get_time"}}),
    ],
)
async def test_the_request_carries_tools_and_tool_choice(
    make_engine: MakeEngine, fault_server: FaultServer, choice: str, sent: Any
) -> None:
    tag = f"choice-{choice}"
    params = GenerationParams(max_tokens=16, tools=(WEATHER, TIME), tool_choice=choice)
    await events_of(make_engine("ok", tag=tag), params=params)
    body = fault_server.requests[f"ok~{tag}"][-1].body
    assert body["tool_choice"] == sent
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The current weather in a city.",
                "parameters": dict(WEATHER.parameters),
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "The time now in an IANA timezone.",
                "parameters": dict(TIME.parameters),
            },
        },
    ]


async def test_without_tools_the_request_has_no_tool_fields(
    make_engine: MakeEngine, fault_server: FaultServer
) -> None:
    params = GenerationParams(max_tokens=16, tool_choice="required")  # no tools: nothing sent
    await events_of(make_engine("ok", tag="notools"), params=params)
    body = fault_server.requests["ok~notools"][-1].body
    assert "tools" not in body and "tool_choice" not in body


async def test_tool_calls_and_results_are_sent_back_as_openai_messages(
    make_engine: MakeEngine, fault_server: FaultServer
) -> None:
    history = [
        *ASK,
        Message(
            "assistant",
            "",
            tool_calls=(
                ToolCall("call_a", "get_weather", WEATHER_ARGS),
                ToolCall("call_b", "get_time", TIME_ARGS),
            ),
        ),
        Message("tool", "Sunny, 21 °C", tool_call_id="call_a"),
        Message("tool", "2026-12-05T16:30:00+09:00", tool_call_id="call_b"),
        Message("assistant", "Checking again.", tool_calls=(ToolCall("call_c", "get_time", "{}"),)),
        Message("tool", "error: timezone is required", tool_call_id="call_c"),
    ]
    events = await events_of(make_engine("ok", tag="history"), history)
    assert done(events) == "stop"
    messages = fault_server.requests["ok~history"][-1].body["messages"]
    assert messages[1:] == [
        {
            "role": "assistant",
            "content": "",  # not null: llama_cpp.server refuses null (see message_json)
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": TIME_ARGS},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "Sunny, 21 °C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "2026-12-05T16:30:00+09:00"},
        {
            "role": "assistant",
            "content": "Checking again.",
            "tool_calls": [
                {
                    "id": "call_c",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_c", "content": "error: timezone is required"},
    ]


async def test_a_tool_choice_naming_no_offered_tool_is_one_line_before_any_request(
    make_engine: MakeEngine, fault_server: FaultServer
) -> None:
    params = GenerationParams(max_tokens=16, tools=(WEATHER,), tool_choice="get_time")
    with pytest.raises(EngineError) as caught:
        await events_of(make_engine("ok", tag="badchoice"), params=params)
    assert caught.value.message == (
        "tool choice 'get_time' is not one of the tools offered (get_weather)"
    )
    assert all(r.path.endswith("/models") for r in fault_server.requests.get("ok~badchoice", []))


# --- the stream shapes ---------------------------------------------------------------------


async def test_arguments_split_across_chunks_after_text(make_engine: MakeEngine) -> None:
    events = await events_of(make_engine("tools_split"))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me check."
    assert assemble(events) == [ToolCall("call_w1", "get_weather", WEATHER_ARGS)]
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(pieces) == 1 + len(pieces_of(WEATHER_ARGS, 5))  # streamed as they came
    assert pieces[0] == ToolCallDelta(0, "call_w1", "get_weather", "")
    assert all(p.id is None and p.name is None for p in pieces[1:])
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage and usage[-1].output_tokens == 7
    assert done(events) == "tool_calls"


async def test_interleaved_calls_are_told_apart_by_index(make_engine: MakeEngine) -> None:
    events = await events_of(make_engine("tools_interleaved"))
    indices = [e.index for e in events if isinstance(e, ToolCallDelta)]
    assert indices[:4] == [0, 1, 1, 0]  # really interleaved
    assert assemble(events) == [
        ToolCall("call_a", "get_weather", WEATHER_ARGS),
        ToolCall("call_b", "get_time", TIME_ARGS),
    ]
    assert done(events) == "tool_calls"


async def test_whole_calls_in_one_chunk(make_engine: MakeEngine) -> None:
    events = await events_of(make_engine("tools_whole"))
    assert [e for e in events if isinstance(e, ToolCallDelta)] == [
        ToolCallDelta(0, "call_w", "get_weather", WEATHER_ARGS),
        ToolCallDelta(1, "call_t", "get_time", TIME_ARGS),
    ]
    assert done(events) == "tool_calls"


async def test_pieces_without_index_and_a_stop_finish(make_engine: MakeEngine) -> None:
    events = await events_of(make_engine("tools_noindex"))
    assert assemble(events) == [
        ToolCall("call_1", "get_weather", WEATHER_ARGS),
        ToolCall("call_2", "get_time", TIME_ARGS),
    ]
    assert done(events) == "tool_calls"  # calls were made, whatever the server said


async def test_id_and_name_repeated_in_every_piece(make_engine: MakeEngine) -> None:
    """llama_cpp.server's shape: the repeats are dropped, so pieces concatenate cleanly."""
    events = await events_of(make_engine("tools_repeat"))
    assert assemble(events) == [ToolCall("call__0_get_weather_cmpl-1", "get_weather", WEATHER_ARGS)]
    assert not [e for e in events if isinstance(e, TextDelta)]
    assert done(events) == "tool_calls"


async def test_a_non_streamed_answer_with_calls(make_engine: MakeEngine) -> None:
    events = await events_of(make_engine("tools_json"))
    assert assemble(events) == [
        ToolCall("call_j1", "get_weather", WEATHER_ARGS),
        ToolCall("call_j2", "get_time", TIME_ARGS),
    ]
    assert done(events) == "tool_calls"


async def test_a_forced_tool_choice_is_honoured_by_a_well_behaved_server(
    make_engine: MakeEngine,
) -> None:
    params = GenerationParams(max_tokens=16, tools=(WEATHER, TIME), tool_choice="get_weather")
    events = await events_of(make_engine("ok", tag="forced"), params=params)
    (call,) = assemble(events)
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Tokyo"})
    assert done(events) == "tool_calls"


async def test_a_malformed_tool_call_is_one_server_error_after_the_good_pieces(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine("tools_bad")
    seen: list[Event] = []
    with pytest.raises(ServerError) as caught:
        async for event in engine.stream(ASK, GenerationParams(max_tokens=16, tools=(WEATHER,))):
            seen.append(event)
    await engine.close()
    assert seen == [ToolCallDelta(0, "call_x", "get_weather", "")]
    message = caught.value.message
    assert message.startswith("unparseable stream data from http://127.0.0.1:")
    assert "\n" not in message
