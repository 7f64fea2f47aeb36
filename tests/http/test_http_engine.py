"""The http engine against the scripted fault server: streams, faults, retries, cancellation."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tedchat.engine import (
    Done,
    GenerationParams,
    Message,
    ReasoningDelta,
    TextDelta,
    Timings,
    Usage,
)
from tedchat.errors import AuthError, ConfigError, EngineConnectionError, ServerError
from tedchat.session import Turn, TurnResult, run_turn
from tedchat_http.engine import HttpEngine
from tests.http.fault_server import FaultServer

ASK = [Message("user", "What is the capital of France?")]
MakeEngine = Callable[..., HttpEngine]


async def turn(engine: HttpEngine) -> TurnResult:
    await engine.load()
    try:
        return await run_turn(Turn(engine, ASK, GenerationParams(max_tokens=32)))
    finally:
        await engine.close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_streams_an_answer_with_server_usage(
    make_engine: MakeEngine, fault_server: FaultServer
) -> None:
    engine = make_engine("ok", tag="usage")
    result = await turn(engine)
    assert result.error is None
    assert result.text == "The capital of France is Paris."
    m = result.metrics
    assert (m.output_tokens, m.output_tokens_source, m.prompt_tokens) == (7, "server", 12)
    assert m.finish_reason == "stop" and m.ttft_s is not None and m.ttft_s > 0
    sent = fault_server.requests["ok~usage"]
    body = sent[-1].body
    assert sent[0].path.endswith("/v1/models")  # the model came from the server's list
    assert body["model"] == "fault-model" and engine.model == "fault-model"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "temperature" not in body and "top_p" not in body  # unset: the server's defaults
    assert body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]


async def test_sampling_settings_are_sent_when_set(
    make_engine: MakeEngine, fault_server: FaultServer
) -> None:
    engine = make_engine("ok", tag="params")
    params = GenerationParams(max_tokens=9, temperature=0.0, top_p=0.5, seed=3, stop=("\n",))
    await engine.load()
    await run_turn(Turn(engine, ASK, params))
    await engine.close()
    body = fault_server.requests["ok~params"][-1].body
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (9, 0.0, 0.5)
    assert (body["seed"], body["stop"]) == (3, ["\n"])


@pytest.mark.parametrize("scenario", ["crlf", "cr", "multiline"])
async def test_sse_line_ends_comments_fields_and_multiline_data(
    make_engine: MakeEngine, scenario: str
) -> None:
    result = await turn(make_engine(scenario))
    assert result.error is None
    expected = "Paris it is." if scenario == "multiline" else "The capital of France is Paris."
    assert result.text == expected


async def test_without_server_usage_the_count_is_approximate(make_engine: MakeEngine) -> None:
    m = (await turn(make_engine("nousage"))).metrics
    assert (m.output_tokens, m.output_tokens_source, m.tokens_label()) == (2, "chunks", "~2")


async def test_without_server_usage_a_configured_tokenizer_counts(make_engine: MakeEngine) -> None:
    from llama_cpp import Llama

    from tedchat.models.registry import resolve_model

    result = await turn(make_engine("nousage", tokenizer="smollm2"))
    vocab = Llama(str(resolve_model("smollm2")), vocab_only=True, verbose=False)
    expected = len(vocab.tokenize(result.text.encode(), add_bos=False, special=False))
    vocab.close()
    m = result.metrics
    assert result.text == "The capital of France is Paris."
    assert (m.output_tokens, m.output_tokens_source) == (expected, "tokenizer")
    assert expected == 7  # not the 2 chunks it came in


async def test_server_usage_wins_over_the_tokenizer(make_engine: MakeEngine) -> None:
    m = (await turn(make_engine("ok", tokenizer="smollm2"))).metrics
    assert (m.output_tokens, m.output_tokens_source) == (7, "server")


async def test_llama_server_timings_are_shown_as_server_figures(make_engine: MakeEngine) -> None:
    m = (await turn(make_engine("llamaserver"))).metrics
    assert (m.output_tokens, m.output_tokens_source, m.prompt_tokens) == (7, "server", 12)
    assert m.timings["eval_s"] == pytest.approx(0.07)
    assert m.timings["eval_tokens_per_s"] == 100.0


async def test_cerebras_time_info_and_finish_length(make_engine: MakeEngine) -> None:
    m = (await turn(make_engine("cerebras"))).metrics
    assert m.timings == pytest.approx(
        {"queue_s": 0.0001, "prompt_eval_s": 0.002, "eval_s": 0.004, "total_s": 0.0065}
    )
    assert m.finish_reason == "length"


async def test_a_json_answer_to_a_stream_request_is_accepted(make_engine: MakeEngine) -> None:
    result = await turn(make_engine("json"))
    assert (result.text, result.metrics.output_tokens, result.error) == ("Paris.", 2, None)


async def test_reasoning_content_is_kept_apart_and_ttft_waits_for_the_answer(
    make_engine: MakeEngine,
) -> None:
    events: list = []
    engine = make_engine("reasoning")
    await engine.load()
    result = await run_turn(
        Turn(engine, ASK, GenerationParams()), on_event=lambda e, _t: events.append(e)
    )
    await engine.close()
    assert result.reasoning == "The user asks about France."
    assert result.text == "Paris is the capital."
    kinds = [type(e) for e in events if isinstance(e, (TextDelta, ReasoningDelta))]
    assert kinds == [ReasoningDelta] * 3 + [TextDelta] * 5
    m = result.metrics
    # The server pauses 0.4 s between its reasoning and its answer (0.3: slack for a busy
    # machine; a TTFT taken at the first reasoning token would make this about 0).
    assert m.time_to_first_reasoning_s is not None and m.ttft_s is not None
    assert m.ttft_s - m.time_to_first_reasoning_s >= 0.3
    assert m.reasoning_tokens == 3 and m.output_tokens == 5


async def test_think_blocks_split_over_chunks_are_reasoning(make_engine: MakeEngine) -> None:
    result = await turn(make_engine("think"))
    assert result.reasoning == "The user asks about France."
    assert result.text == "Paris is <b>the</b> capital.<"
    m = result.metrics
    assert m.ttft_s is not None and m.time_to_first_reasoning_s is not None
    assert m.ttft_s - m.time_to_first_reasoning_s >= 0.3  # not at the "\n\n" after </think>


# --- faults --------------------------------------------------------------------------------


async def test_connection_refused_is_retried_then_one_clear_error(make_engine: MakeEngine) -> None:
    engine = make_engine("ok", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    start = time.monotonic()
    result = await turn(engine)
    waited = time.monotonic() - start
    assert isinstance(result.error, EngineConnectionError)
    assert result.error.message == f"cannot connect to {engine.url}: connection refused"
    assert 0.75 <= waited < 5  # backoff 0.25 s + 0.5 s: it did retry, and not forever
    assert result.metrics.finish_reason == "error"


async def test_401_is_an_auth_error_naming_the_key_variable(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULT_KEY", "sk-test-0123456789")
    result = await turn(make_engine("auth", api_key_env="FAULT_KEY"))
    assert isinstance(result.error, AuthError)
    assert result.error.message.startswith("401 from http://127.0.0.1:")
    assert result.error.message.endswith(
        "/auth/v1/chat/completions: Incorrect API key provided: ***; check FAULT_KEY"
    )


async def test_429_then_success_honours_retry_after(
    make_engine: MakeEngine, fault_server: FaultServer
) -> None:
    start = time.monotonic()
    result = await turn(make_engine("ratelimit", tag="engine"))
    assert result.error is None and result.text == "The capital of France is Paris."
    assert time.monotonic() - start >= 1.0  # Retry-After: 1
    posts = [r for r in fault_server.requests["ratelimit~engine"] if r.method == "POST"]
    assert len(posts) == 2


async def test_503_retries_are_bounded(make_engine: MakeEngine, fault_server: FaultServer) -> None:
    result = await turn(make_engine("busy", tag="bounded", max_retries=3))
    assert isinstance(result.error, ServerError)
    assert result.error.message.endswith("server overloaded (after 3 retries)")
    posts = [r for r in fault_server.requests["busy~bounded"] if r.method == "POST"]
    assert len(posts) == 4


async def test_a_retry_after_beyond_the_cap_fails_at_once(make_engine: MakeEngine) -> None:
    start = time.monotonic()
    result = await turn(make_engine("busylong"))
    assert time.monotonic() - start < 2
    assert isinstance(result.error, ServerError)
    assert "asks to wait 3600 s" in result.error.message


async def test_500_carries_the_servers_message(make_engine: MakeEngine) -> None:
    result = await turn(make_engine("error500"))
    assert isinstance(result.error, ServerError)
    assert result.error.message.startswith("500 from http://127.0.0.1:")
    assert result.error.message.endswith("/chat/completions: model crashed: out of memory")


@pytest.mark.parametrize("scenario", ["stall", "stallbody"])
async def test_no_first_byte_before_the_read_timeout(
    make_engine: MakeEngine, scenario: str
) -> None:
    start = time.monotonic()
    result = await turn(make_engine(scenario, read_timeout=0.5))
    assert 0.5 <= time.monotonic() - start < 3
    assert isinstance(result.error, EngineConnectionError)
    assert result.error.message.endswith("within 0.5 s (read_timeout)")
    assert result.text == ""


@pytest.mark.parametrize(
    ("scenario", "kept", "error", "message"),
    [
        ("drop", "The capital of", EngineConnectionError, "broke mid-answer"),
        ("nofinish", "The capital of", EngineConnectionError, "ended without a finish reason"),
        ("garbage", "The capital", ServerError, "unparseable stream data from "),
        ("midstream_error", "The capital", ServerError, ": upstream model overloaded"),
    ],
)
async def test_a_stream_that_breaks_keeps_its_text(
    make_engine: MakeEngine, scenario: str, kept: str, error: type, message: str
) -> None:
    result = await turn(make_engine(scenario))
    assert result.text == kept
    assert isinstance(result.error, error) and message in result.error.message
    assert "\n" not in result.error.message
    assert result.metrics.finish_reason == "error"


async def test_an_empty_stream_is_a_server_error(make_engine: MakeEngine) -> None:
    result = await turn(make_engine("empty"))
    assert isinstance(result.error, ServerError)
    assert "ended the stream without sending anything" in result.error.message


async def test_garbage_message_shows_the_first_80_characters(make_engine: MakeEngine) -> None:
    result = await turn(make_engine("garbage"))
    assert result.error is not None
    assert result.error.message.endswith(
        ": <html><body>502 Bad Gateway from the proxy in front</body></html>"
    )


async def test_stream_options_rejected_falls_back_once_and_remembers(
    make_engine: MakeEngine, fault_server: FaultServer
) -> None:
    engine = make_engine("no_stream_options", tag="fallback")
    await engine.load()
    for _ in range(2):
        result = await run_turn(Turn(engine, ASK, GenerationParams()))
        assert result.error is None and result.text == "The capital of France is Paris."
    await engine.close()
    posts = [r.body for r in fault_server.requests["no_stream_options~fallback"] if r.body]
    assert ["stream_options" in b for b in posts] == [True, False, False]


async def test_closing_the_stream_closes_the_connection_at_once(
    make_engine: MakeEngine, fault_server: FaultServer
) -> None:
    engine = make_engine("slow", tag="close")
    await engine.load()
    events = engine.stream(ASK, GenerationParams())
    async for event in events:
        if isinstance(event, TextDelta):
            break
    closed_at = time.monotonic()
    await events.aclose()
    for _ in range(200):  # the server notices within one 50 ms tick
        if "slow~close" in fault_server.hangups:
            break
        await asyncio.sleep(0.01)
    await engine.close()
    assert (
        fault_server.hangups.get("slow~close", float("inf")) - closed_at < 1.0
    )  # else: 10 s of stream


async def test_cancelling_the_turn_closes_the_connection(
    make_engine: MakeEngine, fault_server: FaultServer
) -> None:
    engine = make_engine("slow", tag="cancel")
    await engine.load()
    current = Turn(engine, ASK, GenerationParams())
    task = asyncio.ensure_future(run_turn(current))
    while not current.parts:
        await asyncio.sleep(0.01)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if "slow~cancel" in fault_server.hangups:
            break
        await asyncio.sleep(0.01)
    await engine.close()
    assert current.meter.finish_reason == "cancelled"
    assert fault_server.hangups.get("slow~cancel", float("inf")) - cancelled_at < 1.0


async def test_events_end_with_usage_then_done(make_engine: MakeEngine) -> None:
    engine = make_engine("llamaserver")
    events = [e async for e in engine.stream(ASK, GenerationParams())]
    await engine.close()
    assert [type(e) for e in events[-3:]] == [Usage, Timings, Done]
    assert events[-1] == Done("stop")


# --- status, models, warnings --------------------------------------------------------------


async def test_status_reports_a_reachable_server(make_engine: MakeEngine) -> None:
    engine = make_engine("ok", model="")
    status = await engine.status()
    await engine.close()
    assert status.ready and "1 model" in status.detail
    assert engine.model == "fault-model"


async def test_status_of_a_dead_server_is_quick_and_says_why(make_engine: MakeEngine) -> None:
    engine = make_engine("ok", base_url=f"http://127.0.0.1:{free_port()}/v1")
    status = await engine.status()
    await engine.close()
    assert not status.ready
    assert status.detail == f"cannot connect to {engine.url}: connection refused"


async def test_status_of_a_stalled_server_gives_up_after_a_short_timeout(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine("stall")
    start = time.monotonic()
    status = await engine.status()
    await engine.close()
    assert not status.ready and "no answer" in status.detail
    assert time.monotonic() - start < 3


async def test_list_models(make_engine: MakeEngine) -> None:
    engine = make_engine("ok")
    models = await engine.list_models()
    await engine.close()
    assert [m["id"] for m in models] == ["fault-model"]


async def test_a_key_over_plain_http_to_a_remote_host_warns_once(
    make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # load() sends nothing when the model is set, so no traffic leaves this machine.
    engine = make_engine("ok", base_url="http://llm.example.invalid/v1", model="m", api_key="k1")
    with caplog.at_level(logging.WARNING, logger="tedchat.http"):
        await engine.load()
        await engine.load()
    await engine.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "warning: engine 'fault-ok' sends its API key over plain http to "
        "llm.example.invalid; use https"
    ]


@pytest.mark.parametrize(
    "base_url", ["https://llm.example.invalid/v1", "http://127.0.0.1:1/v1", "http://localhost/v1"]
)
async def test_no_warning_over_https_or_loopback(
    make_engine: MakeEngine, caplog: pytest.LogCaptureFixture, base_url: str
) -> None:
    engine = make_engine("ok", base_url=base_url, model="m", api_key="k1")
    with caplog.at_level(logging.WARNING, logger="tedchat.http"):
        await engine.load()
    await engine.close()
    assert caplog.records == []


def test_a_base_url_without_scheme_is_a_config_error(make_engine: MakeEngine) -> None:
    with pytest.raises(ConfigError, match=r"base_url must start with http:// or https://"):
        make_engine("ok", base_url="127.0.0.1:8080/v1")


def test_the_plain_http_warning_is_one_line_on_stderr_by_default() -> None:
    """Outside pytest no logging is configured: the warning must still reach stderr."""
    code = (
        "import asyncio\n"
        "from tedchat.engine import Runtime\n"
        "from tedchat_http import SETTINGS\n"
        "from tedchat_http.engine import HttpEngine\n"
        "s = {**SETTINGS, 'base_url': 'http://llm.example.invalid/v1', 'model': 'm',"
        " 'api_key': 'sk-not-shown'}\n"
        "e = HttpEngine('remote', s, Runtime(1))\n"
        "asyncio.run(e.load()); asyncio.run(e.load())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "warning: engine 'remote' sends its API key over plain http to llm.example.invalid;"
        " use https\n"
    )


def test_describe_hides_every_credential(make_engine: MakeEngine) -> None:
    engine = make_engine(
        "ok",
        base_url="https://user:pw-secret-1@llm.example.invalid/v1",
        api_key="sk-secret-2",
        headers={"X-Api-Key": "secret-3", "X-Org": "acme"},
    )
    shown = repr(engine.describe())
    assert not any(s in shown for s in ("pw-secret-1", "sk-secret-2", "secret-3"))
    assert "acme" in shown and "llm.example.invalid" in shown
