"""The JSON shape of one answer: the engine, the text and its figures (the metrics of
:mod:`tedchat.metrics`, the emulated figures of a wafer engine, the cost where the engine has
prices). ``ask --json`` prints it; every ``bench`` run record holds it."""

from __future__ import annotations

from typing import Any

from tedchat.gauges import reply_cost


def answer_record(engine: Any, text: str, metrics: Any, prices: Any = None) -> dict[str, Any]:
    """The JSON shape of one answer, shared by ``ask --json`` and ``bench`` records; with the
    engine's ``prices`` (:class:`tedchat.gauges.Prices`) it holds ``cost_usd``."""
    m = metrics.as_dict()
    record: dict[str, Any] = {
        "engine": engine.name,
        "model": engine.model,
        "text": text,
        "prompt_tokens": m["prompt_tokens"],
        "output_tokens": m["output_tokens"],
        "output_tokens_source": m["output_tokens_source"],
        "ttft_s": m["ttft_s"],
        "output_tokens_per_s": m["output_tokens_per_s"],
        "elapsed_s": m["elapsed_s"],
        "finish_reason": m["finish_reason"],
        "timings": m["timings"],
    }
    if prices is not None:
        cost = reply_cost(prices, m["prompt_tokens"], m["output_tokens"])
        record["cost_usd"] = cost.as_dict() if cost is not None else None
    if m["reasoning_tokens"]:
        record["reasoning_tokens"] = m["reasoning_tokens"]
        record["time_to_first_reasoning_s"] = m["time_to_first_reasoning_s"]
    if metrics.emulated is not None:
        e = metrics.emulated
        record["emulated"] = {
            "hardware": e.hardware,
            "systems": e.systems,
            "timing_target": e.timing_target,
            "ttft_s": e.ttft_s,
            "output_tokens_per_s": e.output_tokens_per_s,
            "breakdown": dict(e.breakdown),
            "replay": e.replay,
        }
        if e.speculative is not None:
            record["emulated"]["speculative"] = dict(e.speculative)
    return record
