"""The http engine against a real OpenAI-compatible server: llama-cpp-python's
``llama_cpp.server`` on the bundled SmolLM2, started on 127.0.0.1 for this module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tedchat.engine import GenerationParams, Message, Runtime, Usage
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
