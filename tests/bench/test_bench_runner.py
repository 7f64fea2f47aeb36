"""The bench runner in-process, on the scripted engines (fast and deterministic)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tedchat.bench.prompts import Prompt
from tedchat.bench.record import BenchRecord, engine_entry
from tedchat.bench.runner import BenchPlan, Listener, run_bench, schedule
from tedchat.bench.schema import validate
from tedchat.engine import GenerationParams
from tedchat.engines import load_context

PROMPTS = (Prompt("one", "first prompt"), Prompt("two", "second prompt"))


def setup(names: list[str], **plan: Any) -> tuple[BenchPlan, dict[str, Any], BenchRecord]:
    context = load_context()
    engines = {n: context.engines.get(n) for n in names}
    params = plan.pop("params", GenerationParams(max_tokens=8, temperature=0))
    bench_plan = BenchPlan(PROMPTS, params=params, **plan)
    config = {
        "engines": names,
        "prompts": "test",
        "runs": bench_plan.runs,
        "warmup": bench_plan.warmup,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
        "concurrency": bench_plan.concurrency,
    }
    entries = [engine_entry(context.engines.describe(n), e) for n, e in engines.items()]
    return bench_plan, engines, BenchRecord(config, PROMPTS, entries)


def done(record: BenchRecord) -> dict[str, Any]:
    record.finish()
    data = record.to_dict()
    assert validate(data) == []
    return data


def test_schedule_interleaves_engines_within_each_round() -> None:
    plan = BenchPlan(PROMPTS, runs=2, warmup=1)
    order = [(s.phase, s.round, s.prompt.id, s.engine) for s in schedule(plan, ["a", "b"])]
    assert order == [
        ("warmup", 1, "one", "a"),
        ("warmup", 1, "one", "b"),
        ("measured", 1, "one", "a"),
        ("measured", 1, "one", "b"),
        ("measured", 1, "two", "a"),
        ("measured", 1, "two", "b"),
        ("measured", 2, "one", "a"),
        ("measured", 2, "one", "b"),
        ("measured", 2, "two", "a"),
        ("measured", 2, "two", "b"),
    ]


async def test_runs_are_recorded_in_interleaved_order_with_caches_and_token_ids(
    bench_home: Path,
) -> None:
    plan, engines, record = setup(["steady", "plain"], runs=2, warmup=1)
    await run_bench(plan, engines, record)
    data = done(record)
    assert [(r["engine"], r["phase"]) for r in data["runs"][:4]] == [
        ("steady", "warmup"),
        ("plain", "warmup"),
        ("steady", "measured"),
        ("plain", "measured"),
    ]
    assert len(data["runs"]) == 2 * (1 + 2 * 2)
    # steady offers reset_cache(): called before every batch; plain has none, and says so.
    assert engines["steady"].resets == 5
    steady, plain = data["engines"]
    assert steady["cache_cleared"] is True and steady["cache_note"] is None
    assert plain["cache_cleared"] is False and "no reset_cache()" in plain["cache_note"]
    assert all(r["cache_cleared"] is (r["engine"] == "steady") for r in data["runs"])
    # token ids where exposed (steady), none where not (plain)
    for r in data["runs"]:
        if r["engine"] == "steady":
            assert r["token_ids"] is not None and len(r["token_ids"]) == r["output_tokens"] == 8
        else:
            assert r["token_ids"] is None
    # secrets are redacted in both the registry's settings and the engine's own describe()
    assert steady["settings"]["api_key"] == "***" and steady["details"]["api_key"] == "***"
    assert "sk-secret-value" not in repr(data)


async def test_figures_are_the_stream_meters_and_the_summary_pools_measured_runs(
    bench_home: Path,
) -> None:
    plan, engines, record = setup(["steady", "slow"], runs=3, warmup=1)
    await run_bench(plan, engines, record)
    data = done(record)
    measured = [r for r in data["runs"] if r["phase"] == "measured"]
    assert all(r["ttft_s"] > 0 and r["output_tokens_per_s"] > 0 for r in measured)
    slow_runs = [r for r in measured if r["engine"] == "slow"]
    rows = {row["engine"]: row for row in data["summary"]["engines"]}
    slow = rows["slow"]
    assert slow["runs"] == slow["ok"] == 6 and slow["errors"] == 0
    rates = sorted(r["output_tokens_per_s"] for r in slow_runs)
    assert slow["output_tokens_per_s"]["median"] == pytest.approx((rates[2] + rates[3]) / 2)
    assert slow["output_tokens_per_s"]["min"] == rates[0]
    assert slow["output_tokens_per_s"]["p90"] is None  # fewer than 10 runs
    # 0.02 s between tokens is ~50 tok/s; steady's 0.002 s is far faster
    assert 20 < slow["output_tokens_per_s"]["median"] < 51
    assert rows["steady"]["ratio_output_tokens_per_s"] == 1.0
    assert slow["ratio_output_tokens_per_s"] == pytest.approx(
        slow["output_tokens_per_s"]["median"] / rows["steady"]["output_tokens_per_s"]["median"]
    )
    assert slow["ratio_output_tokens_per_s"] < 0.5
    per_prompt = [p for p in data["summary"]["prompts"] if p["engine"] == "slow"]
    assert [p["prompt_id"] for p in per_prompt] == ["one", "two"]
    assert all(p["runs"] == 3 for p in per_prompt)


async def test_failing_engine_is_reported_and_the_others_still_run(bench_home: Path) -> None:
    plan, engines, record = setup(["steady", "flaky", "broken"], runs=2, warmup=1)
    await run_bench(plan, engines, record)
    data = done(record)
    rows = {row["engine"]: row for row in data["summary"]["engines"]}
    # flaky: call 1 is the warm-up; calls 2 and 4 raise ServerError, call 3 a RuntimeError.
    flaky = rows["flaky"]
    assert (flaky["runs"], flaky["ok"], flaky["errors"]) == (4, 1, 3)
    messages = {m["message"] for m in flaky["error_messages"]}
    assert messages == {
        "scripted failure on call 2",
        "scripted failure on call 4",
        "unexpected RuntimeError: scripted crash on call 3",
    }
    failed = [r for r in data["runs"] if r["error"]]
    assert all(r["finish_reason"] == "error" for r in failed)
    assert all(r["text"] for r in failed)  # the partial text is kept
    assert flaky["output_tokens_per_s"]["n"] == 1  # failed runs are counted, not averaged
    # broken never loaded: reported, no runs; steady unaffected
    broken = next(e for e in data["engines"] if e["name"] == "broken")
    assert "model file not found" in broken["load_error"]
    assert rows["broken"]["runs"] == 0 and rows["broken"]["ttft_s"] is None
    assert rows["steady"]["ok"] == rows["steady"]["runs"] == 4


async def test_concurrency_reports_aggregate_and_per_request_rates(bench_home: Path) -> None:
    plan, engines, record = setup(["slow"], runs=2, warmup=0, concurrency=4)
    plan = BenchPlan(PROMPTS[:1], runs=2, warmup=0, params=plan.params, concurrency=4)
    await run_bench(plan, engines, record)
    data = done(record)
    assert len(data["runs"]) == 8 and len(data["batches"]) == 2
    assert {r["slot"] for r in data["runs"]} == {0, 1, 2, 3}
    assert all(r["token_ids"] is None for r in data["runs"])  # ambiguous when concurrent
    batch = data["batches"][0]
    assert batch["requests"] == 4 and batch["ok"] == 4 and batch["output_tokens"] == 32
    assert batch["aggregate_output_tokens_per_s"] == pytest.approx(32 / batch["wall_s"])
    row = data["summary"]["engines"][0]
    per_request = row["output_tokens_per_s"]["median"]
    aggregate = row["aggregate_output_tokens_per_s"]["median"]
    # Four streams that sleep between tokens overlap: together ~4x one of them.
    assert aggregate > 2.5 * per_request


async def test_emulated_figures_are_kept_beside_measured_ones(bench_home: Path) -> None:
    plan, engines, record = setup(["steady", "emu"], runs=1, warmup=0)
    await run_bench(plan, engines, record)
    data = done(record)
    emu_run = next(r for r in data["runs"] if r["engine"] == "emu")
    assert emu_run["emulated"]["output_tokens_per_s"] == 2000.0
    row = next(r for r in data["summary"]["engines"] if r["engine"] == "emu")
    assert row["emulated"]["label"] == "4x CS-3 as llama-3.1-70b (emulated)"
    assert row["emulated"]["output_tokens_per_s"]["median"] == 2000.0
    assert row["output_tokens_per_s"]["median"] != 2000.0  # the measured figure is its own


async def test_cancelling_keeps_the_finished_batches(bench_home: Path) -> None:
    plan, engines, record = setup(["slow"], runs=5, warmup=0)

    class StopAfterTwo(Listener):
        def step_done(self, index: int, total: int, step: Any, runs: Any) -> None:
            if index == 2:
                task.cancel()

    task = asyncio.ensure_future(run_bench(plan, engines, record, StopAfterTwo()))
    with pytest.raises(asyncio.CancelledError):
        await task
    record.finish("cancelled in a test")
    data = record.to_dict()
    assert validate(data) == []
    assert data["incomplete"] is True and len(data["runs"]) == 2
    assert data["summary"]["engines"][0]["ok"] == 2
