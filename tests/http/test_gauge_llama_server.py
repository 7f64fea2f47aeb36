"""The context gauge of an http engine with ``tokenizer = "smollm2"`` against a real
``llama_cpp.server`` on the bundled model: within 2% of the ``usage.prompt_tokens`` the server
reports for the same messages; without a tokenizer, the estimate (``~``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tedchat.conversation import engine_context_tokens
from tedchat.engine import GenerationParams, Message, TextDelta
from tedchat.engines import load_context
from tedchat.gauges import measure_context
from tests.conftest import serve_llama_cpp

pytestmark = pytest.mark.slow

CONVERSATION = [
    Message("system", "You are a helpful AI assistant."),
    Message("user", "What is the capital of France?"),
    Message("assistant", "The capital of France is Paris."),
    Message("user", "And of Japan? 日本の首都はどこですか？ Answer in one word."),
]
PARAMS = GenerationParams(max_tokens=8, temperature=0.0)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_llama_cpp(tmp_path_factory.mktemp("llama-server")) as url:
        yield url


def engines(home: Path, base_url: str) -> object:
    config = home / "config.toml"
    config.write_text(
        f'[engines.counted]\ntype = "http"\nbase_url = "{base_url}"\ntokenizer = "smollm2"\n'
        f'[engines.plain]\ntype = "http"\nbase_url = "{base_url}"\n'
    )
    return load_context(config).engines


def reported_prompt_tokens(base_url: str, messages: list[Message]) -> int:
    """A real request (not streamed: llama_cpp.server reports usage there)."""
    body = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "max_tokens": 1,
        "temperature": 0.0,
    }
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    return int(response.json()["usage"]["prompt_tokens"])


async def test_the_gauge_counts_like_llama_cpp_server(
    tedchat_home: Path, llama_server: str
) -> None:
    known = engines(tedchat_home, llama_server)
    engine = known.get("counted")
    try:
        await engine.load()
        # The engine answers through the server as in a chat (the request the gauge is for).
        text = "".join(
            [e.text async for e in engine.stream(CONVERSATION, PARAMS) if isinstance(e, TextDelta)]
        )
        assert text.strip()
        for messages in (CONVERSATION[1:2], CONVERSATION):
            gauge = await measure_context(
                engine, messages, PARAMS, engine_context_tokens(engine, 2048)
            )
            reported = reported_prompt_tokens(llama_server, messages)
            assert gauge.exact and not gauge.text().startswith("ctx ~")
            assert abs(gauge.used - reported) <= 0.02 * reported, (gauge.used, reported)
    finally:
        await engine.close()


async def test_without_a_tokenizer_the_gauge_is_estimated(
    tedchat_home: Path, llama_server: str
) -> None:
    engine = engines(tedchat_home, llama_server).get("plain")
    try:
        gauge = await measure_context(engine, CONVERSATION, PARAMS, (8192, False))
        assert not gauge.exact and gauge.text().startswith("ctx ~")
    finally:
        await engine.close()
