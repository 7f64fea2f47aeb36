"""Pure parts of the http engine: chunk shapes, <think> splitting, retry and URL helpers."""

from __future__ import annotations

import email.utils
import itertools
import json

import httpx
import pytest

from tedchat.engine import ReasoningDelta, TextDelta, Timings, Usage
from tedchat.errors import ServerError
from tedchat_http.chunks import ChunkReader, ThinkSplitter, error_text, map_finish_reason
from tedchat_http.engine import (
    connect_reason,
    display_url,
    endpoint_url,
    is_loopback,
    model_display,
    parse_retry_after,
)
from tests.http.fault_server import USAGE, chunk

SRC = "http://srv/v1"


def split(events: list) -> tuple[str, str]:
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    return answer, reasoning


def feed_all(pieces: list[str]) -> list:
    splitter = ThinkSplitter()
    out = []
    for piece in pieces:
        out += splitter.feed(piece)
    return out + splitter.flush()


STREAM = "<think>Paris is in France, a<b> tag </th too</think>\n\nThe capital is <i>Paris</i>."


def test_think_blocks_split_at_any_two_points_come_out_the_same() -> None:
    expected = ("The capital is <i>Paris</i>.", "Paris is in France, a<b> tag </th too")
    for a, b in itertools.combinations(range(1, len(STREAM)), 2):
        events = feed_all([STREAM[:a], STREAM[a:b], STREAM[b:]])
        assert split(events) == expected, (a, b)
        assert all(e.text for e in events), f"empty delta at cuts {(a, b)}"


def test_think_splitter_one_character_at_a_time() -> None:
    events = feed_all(list(STREAM))
    assert split(events) == (
        "The capital is <i>Paris</i>.",
        "Paris is in France, a<b> tag </th too",
    )


def test_text_without_tags_passes_through_unchanged_and_unbuffered() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("a < b") == [TextDelta("a < b")]
    assert splitter.feed("x <") == [TextDelta("x ")]  # '<' could begin <think>: held back
    assert splitter.feed("= y") == [TextDelta("<= y")]
    assert splitter.feed("tail <thi") == [TextDelta("tail ")]
    assert splitter.flush() == [TextDelta("<thi")]  # the stream ended: it was text after all


def test_unclosed_think_block_stays_reasoning() -> None:
    assert split(feed_all(["<think>still thinking", " when cut off</"])) == (
        "",
        "still thinking when cut off</",
    )


def test_answer_after_think_loses_only_leading_whitespace() -> None:
    assert split(feed_all(["<think>r</think>", " \n", "\n", "  A  b "])) == ("A  b ", "r")


def test_reader_skips_role_only_and_empty_chunks() -> None:
    reader = ChunkReader(SRC)
    assert reader.feed(json.dumps(chunk(role="assistant", content=""))) == []
    assert reader.feed(json.dumps(chunk())) == []
    assert reader.feed(json.dumps(chunk("Hi"))) == [TextDelta("Hi")]
    assert reader.end() == []
    assert reader.finish_reason is None


def test_reader_takes_usage_from_a_chunk_with_empty_choices() -> None:
    reader = ChunkReader(SRC)
    reader.feed(json.dumps(chunk("Hi", finish="stop")))
    reader.feed(json.dumps({**chunk(), "choices": [], "usage": USAGE}))
    assert reader.end() == [Usage(prompt_tokens=12, output_tokens=7, source="server")]
    assert reader.finish_reason == "stop"


def test_reader_keeps_the_last_usage_of_many() -> None:
    reader = ChunkReader(SRC)
    for n in (1, 2, 3):
        reader.feed(json.dumps(chunk("x", usage={"prompt_tokens": 5, "completion_tokens": n})))
    assert reader.end() == [Usage(prompt_tokens=5, output_tokens=3, source="server")]


def test_reasoning_tokens_reported_apart_are_left_out_of_the_answer_count() -> None:
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 100,
        "completion_tokens_details": {"reasoning_tokens": 60},
    }
    reader = ChunkReader(SRC)
    reader.feed(json.dumps(chunk("x", usage=usage)))
    assert reader.end() == [Usage(prompt_tokens=5, output_tokens=40, source="server")]


def test_llama_server_timings_become_server_figures_and_counts() -> None:
    reader = ChunkReader(SRC)
    timings = {"prompt_n": 12, "prompt_ms": 30.0, "predicted_n": 7, "predicted_ms": 70.0}
    reader.feed(json.dumps(chunk(finish="stop", timings=timings)))
    usage, figures = reader.end()
    assert usage == Usage(prompt_tokens=12, output_tokens=7, source="server")
    assert isinstance(figures, Timings) and figures.source == "server"
    assert figures.figures == pytest.approx(
        {"prompt_eval_tokens": 12, "prompt_eval_s": 0.03, "eval_tokens": 7, "eval_s": 0.07}
    )


def test_cerebras_time_info_becomes_server_figures() -> None:
    reader = ChunkReader(SRC)
    info = {"queue_time": 0.001, "prompt_time": 0.002, "completion_time": 0.5, "total_time": 0.6}
    reader.feed(json.dumps(chunk(finish="length", time_info=info, usage=USAGE)))
    _, figures = reader.end()
    assert figures.figures == {
        "queue_s": 0.001,
        "prompt_eval_s": 0.002,
        "eval_s": 0.5,
        "total_s": 0.6,
    }
    assert reader.finish_reason == "length"


def test_reasoning_field_names_of_different_servers() -> None:
    reader = ChunkReader(SRC)
    assert reader.feed(json.dumps(chunk(reasoning="a"))) == [ReasoningDelta("a")]
    vllm = chunk()
    vllm["choices"][0]["delta"]["reasoning"] = "b"
    assert reader.feed(json.dumps(vllm)) == [ReasoningDelta("b")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("<html>", "unparseable stream data from http://srv/v1: <html>"),
        ("x" * 200, f"unparseable stream data from http://srv/v1: {'x' * 80}"),
        ("42", "unparseable stream data from http://srv/v1: 42"),
        ('{"error": {"message": "overloaded"}}', "error from http://srv/v1: overloaded"),
        ('{"error": "plain text error"}', "error from http://srv/v1: plain text error"),
    ],
)
def test_bad_data_is_one_clear_server_error(data: str, message: str) -> None:
    with pytest.raises(ServerError) as info:
        ChunkReader(SRC).feed(data)
    assert info.value.message == message


def test_an_sse_error_event_is_a_server_error() -> None:
    with pytest.raises(ServerError, match="error from http://srv/v1: boom"):
        ChunkReader(SRC).feed('{"message": "boom"}', "error")


def test_finish_reasons_map_to_tedchat_vocabulary() -> None:
    assert [map_finish_reason(r) for r in ("stop", "eos", "tool_calls", "length")] == [
        "stop",
        "stop",
        "tool_calls",
        "length",
    ]
    assert map_finish_reason("function_call") == "tool_calls"
    assert map_finish_reason("max_tokens") == "length"
    assert map_finish_reason("abort") == "cancelled"
    assert map_finish_reason("something-new") == "stop"


def test_the_end_says_tool_calls_exactly_when_calls_were_made() -> None:
    """A "tool_calls" finish without a call is a plain stop; calls with "stop" (some servers) end
    "tool_calls"; calls cut by the token limit stay "length"."""
    piece = {"index": 0, "id": "c", "function": {"name": "f"}}
    call = json.dumps({"choices": [{"delta": {"tool_calls": [piece]}}]})
    for calls, server, expected in [
        (False, "tool_calls", "stop"),
        (True, "stop", "tool_calls"),
        (True, "tool_calls", "tool_calls"),
        (True, "length", "length"),
        (True, None, "tool_calls"),
    ]:
        reader = ChunkReader(SRC)
        if calls:
            reader.feed(call)
        if server:
            reader.feed(json.dumps({"choices": [{"delta": {}, "finish_reason": server}]}))
        assert reader.finish() == expected, (calls, server)


def test_error_text_reads_the_shapes_servers_use() -> None:
    assert error_text({"error": {"message": "bad key", "type": "x"}}) == "bad key"
    assert error_text({"detail": [{"msg": "field required"}]}) == "field required"
    assert error_text("  Internal\n  Server Error ") == "Internal Server Error"


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)


def test_urls_are_shown_without_credentials() -> None:
    assert display_url("https://user:sk-secret@host/v1/") == "https://***@host/v1"
    assert display_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    assert (
        display_url("https://h/v1?api-version=1&key=sk-1") == "https://h/v1?api-version=1&key=***"
    )


def test_endpoint_urls_keep_the_base_url_query_as_their_query() -> None:
    base = "https://u:p@h.example/openai/v1/?api-version=2024-06-01"
    assert endpoint_url(base, "chat/completions") == (
        "https://u:p@h.example/openai/v1/chat/completions?api-version=2024-06-01"
    )
    assert endpoint_url("http://h/v1", "models") == "http://h/v1/models"


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("10.0.0.1", "example.com", "api.cerebras.ai"))


def test_connection_refused_is_found_in_the_exception_chain() -> None:
    exc = httpx.ConnectError("All connection attempts failed")
    exc.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert connect_reason(exc) == "connection refused"
    assert connect_reason(httpx.ConnectError("[Errno -2] Name or service not known")) == (
        "host not found"
    )


def test_llama_cpp_server_model_ids_are_shown_short() -> None:
    assert model_display("/models/SmolLM2-135M-Instruct.Q4_1.gguf") == "SmolLM2-135M-Instruct.Q4_1"
    assert model_display("llama3.1-8b") == "llama3.1-8b"
