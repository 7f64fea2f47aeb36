"""Runs a bench: every prompt on every engine, interleaved, every answer through ``run_turn``.

Order: first the warm-up rounds (the first prompt, each engine in turn), then ``runs`` rounds of
every prompt with the engines interleaved (A B A B ...), so that drift on the machine — another
process, heat, a cache warming up — hits every engine alike instead of whichever ran last.

Before every batch the engine's prompt cache is cleared when the engine can do it: an engine
that declares ``capabilities.cache_reset`` offers ``reset_cache()`` (plain or async; see
:class:`tedchat.engine.CacheResetting`). Without one, a repeated prompt
may be served partly from cache (llama.cpp reuses the longest matching prefix of its KV cache),
which lowers TTFT; the record says, per run and per engine, whether the cache was cleared.

Generated token ids are recorded where the engine exposes them: an engine that declares
``capabilities.token_ids`` keeps ``last_token_ids`` (a sequence of ints), the ids of the answer
it streamed last (:class:`tedchat.engine.HasTokenIds`). It is read after each answer, so only
when requests run one at a time (``concurrency == 1``).

Failures stay with their engine: an engine that does not load is skipped, a run that fails is
recorded with its error, and every other engine's runs go on.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tedchat.answer_record import answer_record
from tedchat.bench.prompts import Prompt
from tedchat.bench.record import BenchRecord, now_iso
from tedchat.bench.stats import aggregate_tokens_per_s, is_ok
from tedchat.engine import (
    Engine,
    GenerationParams,
    LoadProgress,
    Message,
    as_cache_resetting,
    as_token_ids,
    capabilities_of,
)
from tedchat.errors import EngineError
from tedchat.metrics import Clock
from tedchat.redact import redact_settings
from tedchat.session import Turn, TurnResult, run_turn


@dataclass(frozen=True)
class BenchPlan:
    """What to run: prompts, rounds, warm-up rounds, sampling and requests at once."""

    prompts: Sequence[Prompt]
    runs: int = 3
    warmup: int = 1
    params: GenerationParams = field(default_factory=lambda: GenerationParams(max_tokens=256))
    concurrency: int = 1
    #: Engine name -> its prices (:class:`tedchat.gauges.Prices`): runs then hold ``cost_usd``.
    prices: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One batch: ``concurrency`` requests of one prompt to one engine."""

    phase: str  # "warmup" or "measured"
    round: int  # 1-based, within its phase
    prompt: Prompt
    engine: str


def schedule(plan: BenchPlan, engines: Sequence[str]) -> list[Step]:
    """Every batch of the bench in the order it runs (see the module docstring)."""
    steps = [
        Step("warmup", w + 1, plan.prompts[0], name) for w in range(plan.warmup) for name in engines
    ]
    steps += [
        Step("measured", r + 1, prompt, name)
        for r in range(plan.runs)
        for prompt in plan.prompts
        for name in engines
    ]
    return steps


class Listener:
    """What the runner reports as it goes (progress, checkpoints). Every hook is optional."""

    def engine_loading(self, name: str, stage: str) -> None:
        """``name`` is loading (``stage`` as the engine reports it)."""

    def engine_loaded(self, name: str, seconds: float, error: str | None) -> None:
        """``name`` finished loading, or failed to with ``error``."""

    def step_started(self, index: int, total: int, step: Step) -> None:
        """Batch ``index`` (1-based) of ``total`` is about to start."""

    def step_done(self, index: int, total: int, step: Step, runs: list[dict[str, Any]]) -> None:
        """Batch ``index`` finished; ``runs`` are its run records (already in the record)."""


async def run_bench(
    plan: BenchPlan,
    engines: Mapping[str, Engine],
    record: BenchRecord,
    listener: Listener | None = None,
    clock: Clock = time.perf_counter,
) -> None:
    """Load the engines, then run the schedule, appending every run to ``record``.

    On cancellation (Ctrl-C) it stops at once and re-raises; ``record`` then holds every batch
    that finished, and the answer in flight is left out.
    """
    listener = listener or Listener()
    ready: list[str] = []
    for name, engine in engines.items():
        if await _load(name, engine, record, listener, clock):
            ready.append(name)
    steps = schedule(plan, ready)
    for index, step in enumerate(steps, 1):
        listener.step_started(index, len(steps), step)
        engine = engines[step.engine]
        cleared, why_not = await _reset_cache(engine)
        entry = record.engine(step.engine)
        if not cleared:  # once not cleared, the engine's figures are not all cache-free
            entry["cache_cleared"] = False
            entry["cache_note"] = entry.get("cache_note") or why_not
        elif entry.get("cache_cleared") is None:
            entry["cache_cleared"] = True
        runs, batch = await _run_batch(engine, step, plan, len(record.batches), cleared, clock)
        record.runs.extend(runs)
        record.batches.append(batch)
        listener.step_done(index, len(steps), step, runs)


async def _load(
    name: str, engine: Engine, record: BenchRecord, listener: Listener, clock: Clock
) -> bool:
    entry = record.engine(name)
    t0 = clock()

    def progress(p: LoadProgress) -> None:
        listener.engine_loading(name, p.stage)

    listener.engine_loading(name, "loading")
    error = None
    try:
        await engine.load(progress)
    except EngineError as exc:
        error = exc.message
    except Exception as exc:  # a plugin's bug must not take the other engines down
        error = f"unexpected {type(exc).__name__}: {exc}"
    entry["load_s"] = clock() - t0
    entry["load_error"] = error
    if error is None:
        try:
            entry["details"] = redact_settings(engine.describe())
        except Exception as exc:
            entry["details"] = {"error": f"describe() failed: {exc}"}
    listener.engine_loaded(name, entry["load_s"], error)
    return error is None


async def _reset_cache(engine: Engine) -> tuple[bool, str | None]:
    """Clear the engine's prompt cache if it can; (cleared, why not)."""
    if not capabilities_of(engine).cache_reset:
        return False, "the engine has no reset_cache()"
    try:
        outcome = as_cache_resetting(engine).reset_cache()
        if inspect.isawaitable(outcome):
            await outcome
    except Exception as exc:
        return False, f"reset_cache() failed: {exc}"
    return True, None


async def _run_batch(
    engine: Engine, step: Step, plan: BenchPlan, batch_index: int, cleared: bool, clock: Clock
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    messages = [Message("user", step.prompt.text)]
    if step.prompt.system:
        messages.insert(0, Message("system", step.prompt.system))
    started_at = now_iso()
    t0 = clock()
    outcomes = await asyncio.gather(
        *(_answer(engine, messages, plan.params, clock) for _ in range(plan.concurrency))
    )
    wall = clock() - t0
    runs = []
    for slot, (result, error) in enumerate(outcomes):
        run: dict[str, Any] = {
            "prompt_id": step.prompt.id,
            "phase": step.phase,
            "round": step.round,
            "batch": batch_index,
            "slot": slot,
            "started_at": started_at,
            "cache_cleared": cleared,
            **answer_record(engine, result.text, result.metrics, plan.prices.get(step.engine)),
            "error": error,
            "token_ids": None,
        }
        if plan.concurrency == 1 and error is None:
            run["token_ids"] = _token_ids(engine)
        runs.append(run)
    ok = [r for r in runs if is_ok(r)]
    tokens = sum(r["output_tokens"] for r in ok)
    batch = {
        "batch": batch_index,
        "engine": step.engine,
        "prompt_id": step.prompt.id,
        "phase": step.phase,
        "round": step.round,
        "requests": plan.concurrency,
        "ok": len(ok),
        "started_at": started_at,
        "wall_s": wall,
        "output_tokens": tokens,
        "aggregate_output_tokens_per_s": aggregate_tokens_per_s(tokens, wall),
    }
    return runs, batch


async def _answer(
    engine: Engine, messages: list[Message], params: GenerationParams, clock: Clock
) -> tuple[TurnResult, str | None]:
    """One answer through the session's run_turn (never history); (result, error message)."""
    turn = Turn(engine, messages, params, clock=clock)
    try:
        result = await run_turn(turn)
    except Exception as exc:  # run_turn returns EngineErrors; anything else is a plugin bug
        turn.meter.finish("error", clock())
        result = TurnResult(turn.text, "", turn.meter.snapshot(), None)
        return result, f"unexpected {type(exc).__name__}: {exc}"
    return result, result.error.message if result.error is not None else None


def _token_ids(engine: Engine) -> list[int] | None:
    if not capabilities_of(engine).token_ids:
        return None
    ids = as_token_ids(engine).last_token_ids
    if ids is None:
        return None
    try:
        return [int(i) for i in ids]
    except (TypeError, ValueError):
        return None
