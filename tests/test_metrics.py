"""The metrics definition on synthetic timelines (DESIGN.md, "Metrics")."""

from __future__ import annotations

import pytest

from tedchat.engine import Done, EmulatedTimings, ReasoningDelta, TextDelta, Timings, Usage
from tedchat.metrics import StreamMeter, format_metrics_line


def feed(meter: StreamMeter, timeline: list[tuple[float, object]]) -> None:
    for t, event in timeline:
        meter.observe(event, t)


def test_ttft_is_start_to_first_non_empty_text() -> None:
    m = StreamMeter()
    m.start(10.0)
    feed(m, [(10.2, TextDelta("")), (10.5, TextDelta("Hi")), (10.6, TextDelta(" there"))])
    assert m.snapshot().ttft_s == pytest.approx(0.5)


def test_tokens_per_second_is_one_over_tpot() -> None:
    m = StreamMeter()
    m.start(0.0)
    # 11 one-token chunks, first at 1.0 s, last at 2.0 s: 10 intervals in 1 s.
    feed(m, [(1.0 + i * 0.1, TextDelta("x", tokens=1)) for i in range(11)])
    feed(m, [(2.5, Done("stop"))])
    s = m.snapshot()
    assert s.output_tokens == 11
    assert s.output_tokens_source == "deltas"
    assert s.output_tokens_per_s == pytest.approx(10.0)
    assert s.elapsed_s == pytest.approx(2.5)
    assert s.finish_reason == "stop"


def test_usage_count_outranks_deltas_and_chunks() -> None:
    m = StreamMeter()
    m.start(0.0)
    feed(m, [(1.0, TextDelta("ab")), (2.0, TextDelta("cd")), (2.0, Usage(3, 21, "server"))])
    s = m.snapshot()
    assert (s.output_tokens, s.output_tokens_source) == (21, "server")
    assert s.prompt_tokens == 3
    assert s.output_tokens_per_s == pytest.approx(20.0)
    assert not s.approximate


def test_tokenizer_count_outranks_chunks() -> None:
    m = StreamMeter()
    m.start(0.0)
    feed(m, [(1.0, TextDelta("ab")), (3.0, TextDelta("cd"))])
    m.set_tokenizer_count(5)
    s = m.snapshot()
    assert (s.output_tokens, s.output_tokens_source) == (5, "tokenizer")
    assert s.output_tokens_per_s == pytest.approx(2.0)


def test_chunk_count_is_marked_approximate() -> None:
    m = StreamMeter()
    m.start(0.0)
    feed(m, [(1.0, TextDelta("ab", tokens=1)), (2.0, TextDelta("cd")), (3.0, TextDelta("e"))])
    s = m.snapshot()
    assert (s.output_tokens, s.output_tokens_source) == (3, "chunks")
    assert s.approximate
    assert s.tokens_label() == "~3"
    assert "~1.0 tok/s" in format_metrics_line(s)


def test_reasoning_has_its_own_first_token_time_and_does_not_start_ttft() -> None:
    m = StreamMeter()
    m.start(0.0)
    feed(m, [(0.2, ReasoningDelta("hmm")), (0.4, ReasoningDelta("...")), (1.0, TextDelta("A"))])
    s = m.snapshot()
    assert s.time_to_first_reasoning_s == pytest.approx(0.2)
    assert s.ttft_s == pytest.approx(1.0)
    assert s.reasoning_tokens == 2


def test_live_snapshot_before_any_token_and_single_token() -> None:
    m = StreamMeter()
    m.start(0.0)
    s = m.snapshot(now=0.3)
    assert s.ttft_s is None and s.output_tokens_per_s is None and s.elapsed_s == 0.3
    m.observe(TextDelta("x", tokens=1), 0.5)
    assert m.snapshot(now=0.6).output_tokens_per_s is None  # one token has no interval


def test_finish_without_done_and_engine_figures_kept() -> None:
    m = StreamMeter()
    m.start(0.0)
    feed(m, [(0.1, TextDelta("x")), (0.1, Timings({"eval_s": 0.5}, "llama.cpp"))])
    m.finish("cancelled", 0.9)
    m.finish("error", 1.5)  # the first reason stands
    s = m.snapshot()
    assert s.finish_reason == "cancelled"
    assert s.timings == {"eval_s": 0.5}
    assert s.as_dict()["finish_reason"] == "cancelled"


def test_emulated_figures_are_labelled_in_the_line() -> None:
    m = StreamMeter()
    m.start(0.0)
    emulated = EmulatedTimings("cs3", 4, 0.05, 450.0, {"links": 0.1}, "llama-3.1-70b")
    feed(m, [(0.1, TextDelta("x", 1)), (0.2, TextDelta("y", 1)), (0.2, emulated)])
    line = format_metrics_line(m.snapshot())
    assert "emulated 4x cs3 as llama-3.1-70b" in line
    assert "450 tok/s" in line
