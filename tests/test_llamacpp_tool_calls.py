"""The pieces of local tool calling that need no model: plans, grammars' schemas, the tools
note, calls and results as plain turns, reading calls back from an answer."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.engine import GenerationParams, Message, ToolCall, ToolSpec
from tedchat.errors import EngineError
from tedchat.models.prompt_formats import PLAIN_FORMATS, tool_turns_as_text
from tedchat_llamacpp.tool_calls import (
    NAMED,
    OFF,
    REQUIRED,
    TEMPLATE,
    CallSpotter,
    grammar_schema,
    parse_calls,
    plan_for,
    read_required,
    template_knows_tools,
    template_messages,
    tools_note,
    with_note,
)

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
NAMES = {"get_weather", "get_time"}


def params(choice: str, *tools: ToolSpec) -> GenerationParams:
    return GenerationParams(tools=tools, tool_choice=choice)


def test_plans_for_each_tool_choice() -> None:
    both = (WEATHER, TIME)
    assert plan_for(params("auto", *both), template_tools=False).mode == OFF
    assert plan_for(params("auto", *both), template_tools=True).mode == TEMPLATE
    assert plan_for(params("none", *both), template_tools=True).mode == OFF
    assert plan_for(params("required"), template_tools=True).mode == OFF  # no tools offered
    assert plan_for(params("required", *both), template_tools=False).mode == REQUIRED
    one = plan_for(params("required", TIME), template_tools=False)
    assert (one.mode, one.tool) == (NAMED, TIME)  # one tool to choose from: it is named
    named = plan_for(params("get_weather", *both), template_tools=False)
    assert (named.mode, named.tool) == (NAMED, WEATHER)
    with pytest.raises(EngineError) as caught:
        plan_for(params("get_news", *both), template_tools=False)
    assert caught.value.message == (
        "tool choice 'get_news' is not one of the tools offered (get_weather, get_time)"
    )


def test_grammar_schemas() -> None:
    named = plan_for(params("get_weather", WEATHER, TIME), template_tools=False)
    assert grammar_schema(named) == dict(WEATHER.parameters)
    required = plan_for(params("required", WEATHER, TIME), template_tools=False)
    branches = grammar_schema(required)["anyOf"]
    assert [b["properties"]["name"] for b in branches] == [
        {"const": "get_weather"},
        {"const": "get_time"},
    ]
    assert branches[1]["properties"]["arguments"] == dict(TIME.parameters)


def test_the_tools_note_names_the_tools_and_their_schemas() -> None:
    required = plan_for(params("required", WEATHER, TIME), template_tools=False)
    note = tools_note(required)
    assert note.startswith("You can call these tools.")
    assert "- get_time: The time now in an IANA timezone. Arguments (JSON Schema): " in note
    assert json.dumps(dict(WEATHER.parameters)) in note
    named = tools_note(plan_for(params("get_time", WEATHER, TIME), template_tools=False))
    assert named.startswith("Call the tool get_time") and "get_weather" not in named
    assert tools_note(plan_for(params("auto", WEATHER), template_tools=True)) == ""
    system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert with_note(system, "NOTE")[0]["content"] == "Be brief.\n\nNOTE"
    assert with_note(system[1:], "NOTE")[0] == {"role": "system", "content": "NOTE"}


HISTORY = [
    Message("system", "Be brief."),
    Message("user", "Weather and time in Tokyo?"),
    Message(
        "assistant",
        "Let me look.",
        tool_calls=(
            ToolCall("call_1", "get_weather", '{"city": "Tokyo"}'),
            ToolCall("call_2", "get_time", "not json"),
        ),
    ),
    Message("tool", "Sunny, 21 °C", tool_call_id="call_1"),
    Message("tool", "error: invalid JSON arguments", tool_call_id="call_2"),
    Message("assistant", "Sunny and 21 °C."),
    Message("tool", "late", tool_call_id="call_9"),
]


def test_calls_and_results_as_plain_turns() -> None:
    assert tool_turns_as_text(HISTORY) == [
        Message("system", "Be brief."),
        Message("user", "Weather and time in Tokyo?"),
        Message(
            "assistant",
            'Let me look.\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n'
            '{"name": "get_time", "arguments": "not json"}',
        ),
        Message(
            "user",
            "Result of get_weather: Sunny, 21 °C\n"
            "Result of get_time: error: invalid JSON arguments",
        ),
        Message("assistant", "Sunny and 21 °C."),
        Message("user", "Result of call call_9: late"),
    ]


def test_the_plain_formats_show_calls_results_and_the_note() -> None:
    """The TEDLLM prompt path (plain-ja is TEDLLM's format): tool turns and a note."""
    text = PLAIN_FORMATS["plain-ja"].render(HISTORY[:5], note="TOOLS NOTE")
    assert text == (
        "Be brief.\n\nTOOLS NOTE\n\n"
        "ユーザー: Weather and time in Tokyo?\n"
        'アシスタント: Let me look.\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n'
        '{"name": "get_time", "arguments": "not json"}\n'
        "ユーザー: Result of get_weather: Sunny, 21 °C\n"
        "Result of get_time: error: invalid JSON arguments\n"
        "アシスタント:"
    )
    # Without tools nothing changes.
    plain = [Message("user", "Hi")]
    assert PLAIN_FORMATS["plain"].render(plain) == (
        f"{PLAIN_FORMATS['plain'].preamble}\n\nUser: Hi\nAssistant:"
    )


def test_template_messages_follow_the_hugging_face_convention() -> None:
    out = template_messages(HISTORY[:5])
    assert out[2]["tool_calls"][0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}},
    }
    assert out[2]["tool_calls"][1]["function"]["arguments"] == "not json"
    assert out[3] == {
        "role": "tool",
        "content": "Sunny, 21 °C",
        "tool_call_id": "call_1",
        "name": "get_weather",
    }
    assert template_knows_tools("{% if tools %}{{ tools | tojson }}{% endif %}")
    assert not template_knows_tools("{{ message['content'] }} toolsy")
    assert not template_knows_tools(None)


def test_reading_a_required_answer() -> None:
    whole = '{ "name": "get_time", "arguments": { "timezone": "UTC" } }'
    assert read_required(whole) == ("get_time", '{"timezone": "UTC"}')
    assert read_required('{"name": "get_time", "arguments": {"time') == (
        "get_time",
        '{"time',
    )
    assert read_required('{"na') == (None, "")


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        (
            '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "UTC"}}\n</tool_call>',
            [("get_time", '{"timezone": "UTC"}')],
        ),
        (
            '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>\n'
            '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'
            "</tool_call>",
            [("get_time", "{}"), ("get_weather", '{"city": "Paris"}')],
        ),
        (
            '{"name": "get_weather", "parameters": {"city": "Paris"}}',  # Llama 3.1's shape
            [("get_weather", '{"city": "Paris"}')],
        ),
        ('[{"name": "get_time", "arguments": {}}]', [("get_time", "{}")]),
        ('{"name": "get_news", "arguments": {}}', None),  # not an offered tool: text
        ('{"city": "Paris"}', None),
        ("<tool_call>{broken</tool_call>", None),
        ('<tool_call>{"name": "get_time", "arguments": {}}</tool_call> and more', None),
    ],
)
def test_calls_in_an_answer(text: str, calls: list[tuple[str, str]] | None) -> None:
    assert parse_calls(text, NAMES) == calls


def spot(pieces: list[str]) -> tuple[str, list[tuple[str, str]]]:
    spotter = CallSpotter(NAMES)
    shown = "".join(spotter.feed(p) for p in pieces)
    rest, calls = spotter.end()
    return shown + rest, calls


def test_the_spotter_streams_text_and_holds_back_calls() -> None:
    call = '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "UTC"}}\n</tool_call>'
    assert spot(["Let me ", "check.\n", call[:5], call[5:]]) == (
        "Let me check.\n",
        [("get_time", '{"timezone": "UTC"}')],
    )
    spotter = CallSpotter(NAMES)
    assert spotter.feed("Hello <tool") == "Hello "  # a possible tag waits
    assert spotter.feed("kit> there") == "<toolkit> there"
    assert spot(["  ", '{"name": "get_time", ', '"arguments": {}}']) == ("", [("get_time", "{}")])
    assert spot(['{"a": 1} is JSON']) == ('{"a": 1} is JSON', [])  # not a call: text
    assert spot(["Use {braces} freely"]) == ("Use {braces} freely", [])


@settings(max_examples=200)
@given(text=st.text(max_size=60), cuts=st.lists(st.integers(0, 60), max_size=6))
def test_the_spotter_loses_no_text(text: str, cuts: list[int]) -> None:
    """Whatever the model writes and however it is cut, the text shown plus the calls read
    account for all of it: text that is not calls comes out whole."""
    bounds = [0, *sorted({min(c, len(text)) for c in cuts}), len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    shown, calls = spot(pieces)
    if not calls:
        assert shown == text
