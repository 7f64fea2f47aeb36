"""The http engine against a real OpenAI-compatible server: llama-cpp-python's
``llama_cpp.server`` on the bundled SmolLM2, started on 127.0.0.1 for this module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tedchat.engine import (
    Done,
    GenerationParams,
    Message,
    Runtime,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from tedchat.models.registry import resolve_model
from tedchat.session import Turn, run_turn
from tedchat_http import SETTINGS
from tedchat_http.engine import HttpEngine, load_vocab
from tests.conftest import run_cli, serve_llama_cpp

pytestmark = pytest.mark.slow

# SmolLM2 answers this question on task with this short system prompt (see tedchat.models.registry).
SYSTEM = "You are a helpful AI assistant."
QUESTION = "What is the capital of France?"
GREEDY = ["--system", SYSTEM, "--temperature", "0", "--max-tokens", "40"]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port; its base_url. Stopped after."""
    with serve_llama_cpp(tmp_path_factory.mktemp("llama-server")) as url:
        yield url


def write_config(home: Path, base_url: str, **extra: object) -> Path:
    lines = ["[engines.srv]", 'type = "http"', f'base_url = "{base_url}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path = home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ask_streams_paris_with_ttft_and_tokens_per_second(
    tedchat_home: Path, llama_server: str
) -> None:
    config = write_config(tedchat_home, llama_server)
    result = run_cli(
        tedchat_home, "--config", str(config), "ask", "--engine", "srv", *GREEDY, QUESTION
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("[srv · SmolLM2-135M-Instruct.Q4_1] TTFT ")
    assert " ms · " in line and " tok/s · " in line
    # llama_cpp.server ignores stream_options.include_usage (checked below): with no tokenizer
    # configured the count is the number of chunks, marked approximate.
    assert "· ~" in line and " tokens" in line


def test_ask_json_counts_with_the_configured_tokenizer(
    tedchat_home: Path, llama_server: str
) -> None:
    config = write_config(tedchat_home, llama_server, tokenizer="smollm2")
    result = run_cli(
        tedchat_home, "--config", str(config), "ask", "--engine", "srv", "--json", *GREEDY, QUESTION
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert "Paris" in record["text"]
    assert record["output_tokens_source"] == "tokenizer"
    vocab = load_vocab(resolve_model("smollm2"))
    expected = len(vocab.tokenize(record["text"].encode(), add_bos=False, special=False))
    assert record["output_tokens"] == expected
    assert record["ttft_s"] > 0 and record["output_tokens_per_s"] > 0
    assert record["finish_reason"] == "stop"
    assert result.stderr.strip() == ""  # no llama.cpp chatter from loading the tokenizer


async def test_server_usage_is_taken_when_sent_and_the_server_sends_none(
    llama_server: str,
) -> None:
    """The engine asks for usage; whatever the server does, the count follows the rules."""
    engine = HttpEngine("srv", {**SETTINGS, "base_url": llama_server}, Runtime(threads=1))
    await engine.load()
    events: list = []
    messages = [Message("system", SYSTEM), Message("user", QUESTION)]
    result = await run_turn(
        Turn(engine, messages, GenerationParams(max_tokens=40, temperature=0)),
        on_event=lambda e, _t: events.append(e),
    )
    await engine.close()
    assert result.error is None and "Paris" in result.text
    usage = [e for e in events if isinstance(e, Usage) and e.source == "server"]
    m = result.metrics
    if usage:
        assert m.output_tokens == usage[-1].output_tokens and m.output_tokens_source == "server"
    else:  # what llama-cpp-python 0.3.x does: no usage chunk even when asked
        assert m.output_tokens_source == "chunks" and m.tokens_label().startswith("~")
    assert m.ttft_s is not None and m.output_tokens_per_s is not None


def test_what_the_real_server_sends_of_timings(tedchat_home: Path, llama_server: str) -> None:
    """llama-cpp-python's server (unlike llama.cpp's llama-server, which the fault server plays)
    sends no ``timings`` object in any streamed chunk: so no prompt speed, cached tokens or
    draft acceptance can be shown for it, and tedchat invents none."""
    import httpx

    body = {
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        "max_tokens": 16,
        "temperature": 0,
        "stream": True,
    }
    chunks = []
    with httpx.stream("POST", f"{llama_server}/chat/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    assert chunks and not [c for c in chunks if "timings" in c]
    config = write_config(tedchat_home, llama_server)
    result = run_cli(
        tedchat_home, "--config", str(config), "ask", "--engine", "srv", "--json", *GREEDY, QUESTION
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["timings"] == {}


async def test_status_and_model_list_of_the_real_server(llama_server: str) -> None:
    engine = HttpEngine("srv", {**SETTINGS, "base_url": llama_server}, Runtime(threads=1))
    status = await engine.status()
    models = await engine.list_models()
    await engine.close()
    assert status.ready
    assert models[0]["id"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert engine.model == "SmolLM2-135M-Instruct.Q4_1"


def test_a_failure_after_200_is_one_clear_line(tedchat_home: Path, llama_server: str) -> None:
    """A prompt beyond n_ctx: llama_cpp.server answers 200, then fails inside the stream and
    closes it empty (the reason goes to its log only)."""
    config = write_config(tedchat_home, llama_server)
    too_long = "word " * 3000
    args = ["ask", "--engine", "srv", "--max-tokens", "8", too_long]
    result = run_cli(tedchat_home, "--config", str(config), *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {llama_server} ended the stream without sending anything "
        "(no answer, no error; the server's log may say why)"
    ]


# --- tool calls ----------------------------------------------------------------------------

WEATHER = ToolSpec(
    "get_weather",
    "The current weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Tokyo", "Paris"]}},
        "required": ["city"],
    },
)


async def test_a_forced_tool_choice_gets_a_call_from_the_real_server(llama_server: str) -> None:
    """llama_cpp.server (the GGUF's template, no chat_format set) honours a named
    ``tool_choice`` with a grammar made from the tool's schema, streams the call with its id
    and name repeated in every piece, and ends ``tool_calls``. The result goes back as a
    ``tool`` message and the model answers in text."""
    import jsonschema

    engine = HttpEngine("srv", {**SETTINGS, "base_url": llama_server}, Runtime(threads=1))
    ask = [Message("system", SYSTEM), Message("user", "What is the weather in Paris?")]
    params = GenerationParams(
        max_tokens=40, temperature=0, tools=(WEATHER,), tool_choice="get_weather"
    )
    events = [e async for e in engine.stream(ask, params)]
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert pieces and {p.index for p in pieces} == {0}
    assert pieces[0].id and pieces[0].name == "get_weather"
    assert all(p.id is None and p.name is None for p in pieces[1:])  # repeats dropped
    arguments = json.loads("".join(p.arguments for p in pieces))
    jsonschema.validate(arguments, WEATHER.parameters)
    assert events[-1] == Done("tool_calls")
    assert not [e for e in events if isinstance(e, TextDelta)]

    call = ToolCall(pieces[0].id or "", "get_weather", "".join(p.arguments for p in pieces))
    follow = [
        *ask,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "Sunny, 21 °C", tool_call_id=call.id),
    ]
    again = [e async for e in engine.stream(follow, GenerationParams(max_tokens=24, temperature=0))]
    await engine.close()
    assert "".join(e.text for e in again if isinstance(e, TextDelta)).strip()
    assert again[-1] in (Done("stop"), Done("length"))


@pytest.mark.parametrize("choice", ["required", "auto"])
async def test_what_the_real_server_does_with_required_and_auto(
    llama_server: str, choice: str
) -> None:
    """llama-cpp-python 0.3.36 constrains only a *named* tool choice; with ``required`` or
    ``auto`` its template handler (SmolLM2's template never mentions tools) answers in text.
    This pins that behaviour: if a later server version starts calling, the README's note
    on servers must change."""
    engine = HttpEngine("srv", {**SETTINGS, "base_url": llama_server}, Runtime(threads=1))
    ask = [Message("system", SYSTEM), Message("user", "What is the weather in Paris?")]
    params = GenerationParams(max_tokens=12, temperature=0, tools=(WEATHER,), tool_choice=choice)
    events = [e async for e in engine.stream(ask, params)]
    await engine.close()
    assert not [e for e in events if isinstance(e, ToolCallDelta)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta))
    assert events[-1] in (Done("stop"), Done("length"))
