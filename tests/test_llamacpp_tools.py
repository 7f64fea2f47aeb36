"""Tool calls from the llamacpp engine on the real bundled SmolLM2-135M (one thread, short
answers): forced calls are valid, results go back into the prompt, ``auto`` leaves plain
answers as they were."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tedchat.engine import (
    Done,
    Event,
    GenerationParams,
    Message,
    Runtime,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
    capabilities_of,
)
from tedchat.errors import EngineError
from tedchat_llamacpp.tool_calls import plan_for

WEATHER = ToolSpec(
    "get_weather",
    "Get the current weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Tokyo", "Paris"]}},
        "required": ["city"],
    },
)
TIME = ToolSpec(
    "get_time",
    "Get the current time in an IANA timezone such as Europe/Paris.",
    {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
)
ASK = [Message("user", "What's the weather in Paris?")]


def get_weather(city: str) -> str:
    """The tool the model calls (a real function, run on the model's arguments)."""
    return {"Tokyo": "Rain, 12 °C", "Paris": "Sunny, 21 °C"}[city]


def make_engine(**settings: Any) -> Any:
    from tedchat_llamacpp import SETTINGS
    from tedchat_llamacpp.engine import LlamaCppEngine

    values = {**SETTINGS, "n_threads": 1, "n_ctx": 1024, **settings}
    return LlamaCppEngine("local", values, Runtime(1))


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    import asyncio

    engine = make_engine()
    yield engine
    asyncio.run(engine.close())


async def run(engine: Any, messages: list[Message], **params: Any) -> list[Event]:
    params = {"max_tokens": 48, "temperature": 0.0, "seed": 1, **params}
    return [e async for e in engine.stream(messages, GenerationParams(**params))]


def the_call(events: list[Event]) -> ToolCall:
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert pieces, events
    assert {p.index for p in pieces} == {0}
    first = pieces[0]
    assert first.id and first.id.startswith("call_") and first.name
    assert all(p.id is None and p.name is None for p in pieces[1:])
    return ToolCall(first.id, first.name, "".join(p.arguments for p in pieces))


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_the_llamacpp_engine_declares_tools() -> None:
    assert capabilities_of(make_engine()).tools is True


async def test_a_forced_call_runs_the_tool_and_the_model_answers_with_its_result(
    engine: Any,
) -> None:
    """Model -> a real tool -> model: the named choice gives a call whose arguments validate
    against the enum schema (the grammar allows nothing else), the function runs on them, and
    the second step, with the call and its result in the prompt, is text."""
    first = await run(engine, ASK, tools=(WEATHER,), tool_choice="get_weather")
    call = the_call(first)
    assert call.name == "get_weather"
    arguments = json.loads(call.arguments)
    jsonschema.validate(arguments, WEATHER.parameters)
    assert first[-1] == Done("tool_calls")
    assert not text_of(first)
    (usage,) = [e for e in first if isinstance(e, Usage)]
    assert usage.output_tokens and usage.output_tokens > 0

    result = get_weather(**arguments)
    follow = [
        *ASK,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", result, tool_call_id=call.id),
    ]
    second = await run(engine, follow, tools=(WEATHER,), tool_choice="auto", max_tokens=24)
    assert text_of(second).strip()
    assert not [e for e in second if isinstance(e, ToolCallDelta)]
    assert second[-1] in (Done("stop"), Done("length"))
    # The model saw the call and the result, as plain turns of its ChatML template.
    prompt = engine._formatter(
        messages=[
            {"role": "system", "content": "You are a helpful AI assistant."},
            {"role": "user", "content": ASK[0].content},
            {
                "role": "assistant",
                "content": f'{{"name": "get_weather", "arguments": {json.dumps(arguments)}}}',
            },
            {"role": "user", "content": f"Result of get_weather: {result}"},
        ]
    ).prompt
    (usage,) = [e for e in second if isinstance(e, Usage)]
    assert usage.prompt_tokens == len(engine._llm.tokenize(prompt.encode(), special=True))


async def test_required_with_two_tools_makes_a_valid_call_of_one_of_them(engine: Any) -> None:
    events = await run(
        engine, [Message("user", "What time is it in UTC?")], tools=(WEATHER, TIME),
        tool_choice="required", max_tokens=60,
    )  # fmt: skip
    call = the_call(events)
    tool = {"get_weather": WEATHER, "get_time": TIME}[call.name]
    jsonschema.validate(json.loads(call.arguments), tool.parameters)
    assert events[-1] == Done("tool_calls")


async def test_auto_and_none_leave_the_plain_answer_unchanged(engine: Any) -> None:
    """SmolLM2's template knows no tools: under ``auto`` (and ``none``) the prompt and the
    answer are those of a request without tools, token for token."""
    question = [Message("user", "What is the capital of France?")]
    plain = await run(engine, question, max_tokens=16)
    for choice in ("auto", "none"):
        offered = await run(engine, question, max_tokens=16, tools=(WEATHER,), tool_choice=choice)
        assert [e for e in offered if not isinstance(e, ToolCallDelta)][:-2] == plain[:-2]
        assert not [e for e in offered if isinstance(e, ToolCallDelta)]
        assert offered[-1] == plain[-1]


async def test_a_call_cut_by_max_tokens_ends_length(engine: Any) -> None:
    events = await run(engine, ASK, tools=(WEATHER,), tool_choice="get_weather", max_tokens=3)
    assert events[-1] == Done("length")
    call = the_call(events)  # what was written is kept; the arguments are not whole
    with pytest.raises(ValueError):
        json.loads(call.arguments)


async def test_a_tool_choice_naming_no_offered_tool_is_one_line(engine: Any) -> None:
    with pytest.raises(EngineError) as caught:
        await run(engine, ASK, tools=(WEATHER,), tool_choice="get_time")
    assert caught.value.message == (
        "tool choice 'get_time' is not one of the tools offered (get_weather)"
    )
    assert (await run(engine, ASK, max_tokens=4))[-1] in (Done("stop"), Done("length"))


# --- a GGUF whose template knows tools ------------------------------------------------------

# SmolLM2's ChatML with a tools block in the style of Hermes / Qwen2.5 templates.
TOOLS_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n"
    "{{ messages[0]['content'] if messages[0]['role'] == 'system' else 'You are a helpful AI"
    " assistant.' }}\n\n# Tools\n\nYou may call functions. Their signatures:\n<tools>\n"
    "{%- for tool in tools %}\n{{ tool | tojson }}\n{%- endfor %}\n</tools>\n\n"
    'For a call, write <tool_call>\n{"name": <name>, "arguments": <args>}\n</tool_call>'
    "<|im_end|>\n"
    "{%- elif messages[0]['role'] == 'system' %}<|im_start|>system\n"
    "{{ messages[0]['content'] }}<|im_end|>\n{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}"
    "{%- elif message['role'] == 'tool' %}\n<|im_start|>user\n<tool_response>\n"
    "{{ message['content'] }}\n</tool_response><|im_end|>"
    "{%- elif message.get('tool_calls') %}\n<|im_start|>assistant\n"
    "{%- for call in message['tool_calls'] %}\n<tool_call>\n"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}'
    "\n</tool_call>{%- endfor %}<|im_end|>"
    "{%- else %}\n<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>"
    "{%- endif %}{%- endfor %}\n"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tools_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled GGUF with a chat template that knows tools (gguf-py's gguf-new-metadata)."""
    import subprocess
    import sys

    from tedchat.models.registry import resolve_model

    out = tmp_path_factory.mktemp("tools-gguf") / "smollm2-tools.gguf"
    script = Path(sys.executable).parent / "gguf-new-metadata"
    subprocess.run(
        [str(script), "--chat-template", TOOLS_TEMPLATE, str(resolve_model("smollm2")), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


async def test_a_template_that_knows_tools_gets_them_and_the_calls(tools_gguf: Path) -> None:
    engine = make_engine(model=str(tools_gguf))
    try:
        # auto: the tools are in the prompt, through the template.
        events = await run(engine, ASK, tools=(WEATHER,), tool_choice="auto", max_tokens=24)
        assert engine._template_tools
        ids, _, _ = engine._render(
            engine._llm,
            [Message("system", "S"), *ASK],
            plan_for(GenerationParams(tools=(WEATHER,)), template_tools=True),
        )
        prompt = engine._llm.detokenize(ids, special=True).decode()
        assert '"name": "get_weather"' in prompt and "# Tools" in prompt
        (usage,) = [e for e in events if isinstance(e, Usage)]
        assert usage.prompt_tokens and usage.prompt_tokens > 60
        # Whatever the small model wrote: text, or calls of the offered tool, never both lost.
        calls = [e for e in events if isinstance(e, ToolCallDelta)]
        assert text_of(events) or calls
        if calls:
            assert events[-1] == Done("tool_calls")
        # required: forced through the grammar, the template still shows the tools.
        forced = await run(engine, ASK, tools=(WEATHER,), tool_choice="required")
        call = the_call(forced)
        jsonschema.validate(json.loads(call.arguments), WEATHER.parameters)
        # The next step renders the call and the result as the template wants them.
        follow = [
            *ASK,
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "Sunny, 21 °C", tool_call_id=call.id),
        ]
        second = await run(engine, follow, tools=(WEATHER,), tool_choice="none", max_tokens=16)
        assert second[-1] in (Done("stop"), Done("length"))
        ids, _, _ = engine._render(engine._llm, follow)
        prompt = engine._llm.detokenize(ids, special=True).decode()
        assert "<tool_call>\n" + '{"name": "get_weather", "arguments": {"city": ' in prompt
        assert "<tool_response>\nSunny, 21 °C\n</tool_response>" in prompt
    finally:
        await engine.close()


async def test_a_whole_turn_through_the_toolbox_ends_in_an_answer(engine: Any) -> None:
    """The same, as a front end runs it: run_turn, the real Toolbox with the tool as a
    source's Tool, approval auto. The forced choice applies to the first step only, so the
    turn ends in text (stop or length), not in calls until max_steps."""
    from tedchat.config import ToolSettings
    from tedchat.session import Turn, run_turn
    from tedchat.tools.base import Tool
    from tedchat.tools.toolbox import Toolbox

    weather = Tool(
        "get_weather",
        WEATHER.description,
        WEATHER.parameters,
        lambda args: get_weather(**args),
        source="plugin:test",
    )
    toolbox = Toolbox(ToolSettings(sources=["plugin"], approval="auto"), [weather])
    params = GenerationParams(max_tokens=24, temperature=0.0, tool_choice="get_weather")
    result = await run_turn(Turn(engine, ASK, params), tools=toolbox, max_steps=3)
    [call] = result.tool_calls
    assert call.status == "done" and call.source == "plugin:test"
    assert call.result == get_weather(**json.loads(call.arguments))
    assert result.text.strip() and result.metrics.steps == 2
    assert result.metrics.finish_reason in ("stop", "length")
