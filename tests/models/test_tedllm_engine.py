"""The llamacpp engine's robustness: files it refuses, prompt formats, long conversations,
cancelling a long prompt (acceptance 3 and 4 of the TEDLLM issue)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tedchat.engine import GenerationParams, Message, Notice, Runtime, TextDelta, Usage
from tedchat.errors import ConfigError, ModelFormatError
from tedchat.models.prompt_formats import PLAIN_FORMATS
from tests.conftest import one_error_line, run_cli
from tests.models.conftest import ONE_THREAD, Pulled


def make_engine(model: str, **settings: Any) -> Any:
    from tedchat_llamacpp import SETTINGS
    from tedchat_llamacpp.engine import LlamaCppEngine

    return LlamaCppEngine("t", {**SETTINGS, "model": model, "n_threads": 1, **settings}, Runtime(1))


async def answer(
    engine: Any, messages: list[Message], notes: list[str] | None = None, **params: Any
) -> tuple[str, Usage]:
    text, usage = "", None
    async for event in engine.stream(messages, GenerationParams(temperature=0.0, **params)):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Notice) and notes is not None:
            assert not text, "a notice comes before the answer"
            notes.append(event.text)
    assert usage is not None
    return text, usage


# --- files llama.cpp must not be handed (acceptance 4) ------------------------------------------


def foreign_architecture(source: Path, out: Path) -> None:
    """A copy of a valid GGUF whose general.architecture names one llama.cpp does not run."""
    data = bytearray(source.read_bytes())
    at = data.index(b"general.architecture") + len(b"general.architecture") + 4 + 8
    assert data[at : at + 5] == b"llama"
    data[at : at + 5] = b"wafer"  # same length: the rest of the header stays valid
    out.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("truncated-data", r"truncated GGUF file: .* is [\d,]+ bytes but its tensors need"),
        ("truncated-header", r"truncated GGUF file: .* ends inside its header"),
        ("not-gguf", r"not a GGUF model file: "),
        (
            "architecture",
            r"unsupported model architecture 'wafer' in .*; llama.cpp here runs: llama",
        ),
    ],
)
def test_a_bad_model_file_is_one_clear_line(
    pulled: Pulled, tedchat_home: Path, kind: str, expected: str
) -> None:
    import re

    bad = tedchat_home / f"{kind}.gguf"
    data = pulled.gguf.read_bytes()
    if kind == "truncated-data":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "truncated-header":
        bad.write_bytes(data[:5000])
    elif kind == "not-gguf":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(4096))
    else:
        foreign_architecture(pulled.gguf, bad)
    config = tedchat_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[engines.bad]\ntype = "llamacpp"\nmodel = "{bad}"\n')
    result = run_cli(tedchat_home, "ask", "--engine", "bad", "hi", **ONE_THREAD)
    assert result.returncode == 1, result.stderr
    assert re.search(expected, one_error_line(result.stderr)), result.stderr


def test_header_check_never_crashes_on_a_cut_file(pulled: Pulled, tmp_path: Path) -> None:
    """Every cut point (in the header, the tensor infos, the data) is a ModelFormatError."""
    from tedchat_llamacpp.gguf_header import read_gguf_header

    data = pulled.gguf.read_bytes()
    info = read_gguf_header(pulled.gguf)
    assert info.architecture == "llama" and info.data_end == len(data)
    cut = tmp_path / "cut.gguf"
    for size in [0, 3, 4, 10, 23, 24, 100, 1000, 20000, 40000, len(data) // 3, len(data) - 1]:
        cut.write_bytes(data[:size])
        with pytest.raises(ModelFormatError):
            read_gguf_header(cut)


# --- prompt formats ---------------------------------------------------------------------


def test_plain_formats_render_completion_prompts() -> None:
    messages = [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello."),
        Message("user", "Capital of France?"),
    ]
    plain = PLAIN_FORMATS["plain"]
    assert plain.render(messages) == (
        "Be brief.\n\nUser: Hi\nAssistant: Hello.\nUser: Capital of France?\nAssistant:"
    )
    assert plain.stops() == ("\nUser:",)
    ja = PLAIN_FORMATS["plain-ja"].render([Message("user", "こんにちは")])
    assert ja.startswith(PLAIN_FORMATS["plain-ja"].preamble + "\n\n")
    assert ja.endswith("ユーザー: こんにちは\nアシスタント:")


async def test_a_base_model_gets_its_registry_format_never_llama2(
    pulled: Pulled, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEDCHAT_HOME", str(pulled.home))
    engine = make_engine("tedllm", n_ctx=512)
    question = [Message("user", "東京の天気は？")]
    _, usage = await answer(engine, question, max_tokens=4)
    assert engine.describe()["prompt_format_used"] == "plain-ja"
    expected = engine._llm.tokenize(PLAIN_FORMATS["plain-ja"].render(question).encode())
    assert usage.prompt_tokens == len(expected)
    await engine.close()
    # The same GGUF by path: no registry entry, no chat template -> "plain".
    by_path = make_engine(str(pulled.gguf), n_ctx=512)
    await answer(by_path, question, max_tokens=2)
    assert by_path.describe()["prompt_format_used"] == "plain"
    await by_path.close()


async def test_chat_template_on_a_gguf_without_one_is_a_config_error(pulled: Pulled) -> None:
    engine = make_engine(str(pulled.gguf), prompt_format="chat-template")
    with pytest.raises(ConfigError, match="has no chat template"):
        await engine.load()
    with pytest.raises(ConfigError, match="prompt_format must be one of auto, chat-template"):
        make_engine(str(pulled.gguf), prompt_format="llama-2")


async def test_a_gguf_with_a_chat_template_uses_it() -> None:
    engine = make_engine("smollm2", n_ctx=512)
    _, usage = await answer(engine, [Message("user", "Hi")], max_tokens=2)
    assert engine.describe()["prompt_format_used"] == "chat-template"
    # The registry's default system message is added, then SmolLM2's ChatML template.
    prompt = engine._formatter(
        messages=[
            {"role": "system", "content": "You are a helpful AI assistant."},
            {"role": "user", "content": "Hi"},
        ]
    ).prompt
    assert "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" in prompt
    assert usage.prompt_tokens == len(engine._llm.tokenize(prompt.encode(), special=True))
    await engine.close()


# --- a conversation longer than the context -----------------------------------------------


async def test_long_conversation_drops_oldest_exchanges_and_says_so(pulled: Pulled) -> None:
    engine = make_engine(str(pulled.gguf), n_ctx=256)
    filler = "the wafer keeps every weight on the chip " * 4
    messages = [Message("system", "You answer briefly.")]
    for i in range(12):
        messages += [Message("user", f"question {i}: {filler}"), Message("assistant", filler)]
    messages.append(Message("user", "last question?"))
    notes: list[str] = []
    _, usage = await answer(engine, messages, notes, max_tokens=16)
    trim = engine.last_trim
    assert trim is not None and trim.dropped_messages >= 2 and trim.dropped_messages % 2 == 0
    assert notes == [trim.text()]
    assert usage.prompt_tokens == trim.prompt_tokens <= 256 - 16
    assert "the oldest" in trim.text() and "256-token context" in trim.text()
    # The kept part still has the system message and the newest question.
    kept = PLAIN_FORMATS["plain"].render([messages[0], *messages[1 + trim.dropped_messages :]])
    assert usage.prompt_tokens == len(engine._llm.tokenize(kept.encode()))
    # The next turn keeps the same cut while it fits: the prompt's prefix (and KV cache) stays.
    more = [*messages, Message("assistant", "ok"), Message("user", "and then?")]
    await answer(engine, more, max_tokens=16)
    assert engine.last_trim is not None
    assert engine.last_trim.dropped_messages == trim.dropped_messages
    # A short conversation is not trimmed, and says nothing.
    notes.clear()
    await answer(engine, [Message("user", "hi")], notes, max_tokens=4)
    assert engine.last_trim is None and notes == []
    await engine.close()


# --- cancel during prompt processing (acceptance 3) ---------------------------------------


async def test_cancel_during_a_2000_token_prompt_lets_go_at_once() -> None:
    engine = make_engine("smollm2", n_ctx=4096)
    await engine.load()
    paragraph = "The history of computing spans centuries, from the abacus to the wafer. "
    prompt = paragraph * 150
    assert len(engine._llm.tokenize(prompt.encode())) >= 2000

    async def consume() -> None:
        async for _ in engine.stream([Message("user", prompt)], GenerationParams(max_tokens=4)):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(1.0)
    assert not task.done()  # still processing the prompt (~8 s here at 250 tokens/s)
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(engine._lock.acquire)  # the worker has really stopped
    released = time.perf_counter() - started
    engine._lock.release()
    assert released < 1.5, released  # measured 0.01-0.06 s; without the callback, seconds
    text, _ = await answer(engine, [Message("user", "Say hi.")], max_tokens=4)
    assert text  # and the engine answers afterwards
    await engine.close()


# --- tool calls on the TEDLLM prompt path -----------------------------------------------------


async def test_tool_calls_and_results_on_the_tedllm_prompt_path(
    pulled: Pulled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TEDLLM's plain-ja format on the synthetic checkpoint: a forced call is valid whatever
    the (random) weights say, and the next prompt carries the tools note, the call as JSON in
    the assistant's turn and the result as a user turn."""
    import json

    import jsonschema

    from tedchat.engine import Done, ToolCall, ToolCallDelta, ToolSpec
    from tedchat_llamacpp.tool_calls import plan_for, tools_note

    monkeypatch.setenv("TEDCHAT_HOME", str(pulled.home))
    weather = ToolSpec(
        "get_weather",
        "Current weather in a city.",
        {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Tokyo", "Paris"]}},
            "required": ["city"],
        },
    )
    engine = make_engine("tedllm", n_ctx=512)
    question = [Message("user", "東京の天気は？")]
    params = GenerationParams(
        temperature=0.0, max_tokens=48, tools=(weather,), tool_choice="get_weather"
    )
    events = [e async for e in engine.stream(question, params)]
    assert engine.describe()["prompt_format_used"] == "plain-ja"
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert pieces and pieces[0].name == "get_weather" and pieces[0].id
    arguments = "".join(p.arguments for p in pieces)
    jsonschema.validate(json.loads(arguments), weather.parameters)
    assert events[-1] == Done("tool_calls")
    (usage,) = [e for e in events if isinstance(e, Usage)]
    note = tools_note(plan_for(params, template_tools=False))
    forced_prompt = PLAIN_FORMATS["plain-ja"].render(question, note=note)
    assert usage.prompt_tokens == len(engine._llm.tokenize(forced_prompt.encode()))

    call = ToolCall(pieces[0].id or "", "get_weather", arguments)
    follow = [
        *question,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "晴れ、21 °C", tool_call_id=call.id),
    ]
    _, usage = await answer(engine, follow, max_tokens=8)
    prompt = PLAIN_FORMATS["plain-ja"].render(follow)
    expected = json.dumps({"name": "get_weather", "arguments": json.loads(arguments)})
    assert f"ユーザー: 東京の天気は？\nアシスタント: {expected}\n" in prompt
    assert "ユーザー: Result of get_weather: 晴れ、21 °C\nアシスタント:" in prompt
    assert usage.prompt_tokens == len(engine._llm.tokenize(prompt.encode()))
    await engine.close()
