"""Batched host decoding: sequences in flight on one wafer engine advance in one pass per step.

A sequence's text and its emulated timeline are the same whether it decoded alone, beside
others one at a time (batching off) or in a batch; the batched pass really ran; and the
kernel's threaded and one-thread builds, and the numerics thread, behave as documented.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.engine import (
    Done,
    EmulatedTimings,
    GenerationParams,
    Message,
    Runtime,
    TextDelta,
)
from tedchat.wafer import engine as wafer_engine
from tedchat.wafer import kernels
from tedchat.wafer.engine import WaferEngine
from tedchat.wafer.kernels import PANEL, Panels, on_numerics_thread
from tedchat.wafer.plugin import SETTINGS
from tedchat.wafer.stages import Pipeline
from tests.wafer.test_verify import bundled_model

PROMPTS = [
    "Name three colours.",
    "What is the capital of France?",
    "Count from one to ten.",
    "Say hello in Japanese.",
]


def _engine(threads: int = 2) -> WaferEngine:
    settings = {**SETTINGS, "model": str(bundled_model()), "context": 512, "sequences": 4}
    return WaferEngine("w", settings, Runtime(threads=threads))


async def _answer(e: WaferEngine, prompt: str, params: GenerationParams) -> tuple[str, Any]:
    text, timings = "", None
    async for ev in e.stream([Message("user", prompt)], params):
        if isinstance(ev, TextDelta):
            text += ev.text
        elif isinstance(ev, EmulatedTimings):
            timings = ev
    return text, timings


def _together(e: WaferEngine, params: GenerationParams) -> list[tuple[str, Any]]:
    """The four prompts submitted at once (all arriving at emulated time 0, in this order,
    before the runner takes a step), each answer read from its sequence's queue."""
    prompts = [e._prompt([Message("user", p)], params) for p in PROMPTS]
    runner = e._runner
    assert runner is not None
    with runner.cond:  # the runner waits until all four are in
        seqs = [runner.submit(ids, prm) for ids, prm in prompts]
    out = []
    for seq in seqs:
        text, timings = "", None
        while True:
            item = seq.out.get(timeout=300)
            if isinstance(item, BaseException):
                raise item
            ev = item[1]
            if isinstance(ev, TextDelta):
                text += ev.text
            elif isinstance(ev, EmulatedTimings):
                timings = ev
            elif isinstance(ev, Done):
                break
        out.append((text, timings))
    return out


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the batched passes the engines run (the real pass, counted)."""
    sizes: list[int] = []
    real = Pipeline.run_batch

    def counted(self: Pipeline, seq_ids: Any, token_ids: Any) -> np.ndarray:
        sizes.append(len(seq_ids))
        return real(self, seq_ids, token_ids)

    monkeypatch.setattr(Pipeline, "run_batch", counted)
    return sizes


@pytest.mark.slow
@pytest.mark.parametrize(
    "params",
    [GenerationParams(max_tokens=24, temperature=0), GenerationParams(max_tokens=24, seed=7)],
    ids=["greedy", "seeded"],
)
async def test_a_batch_changes_no_text_and_no_emulated_time(
    params: GenerationParams, batches: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    e = _engine()
    try:
        alone = [await _answer(e, p, params) for p in PROMPTS]
        assert not batches  # one at a time: nothing to batch

        monkeypatch.setattr(wafer_engine, "MAX_BATCH", 1)  # together, batching off
        unbatched = await asyncio.to_thread(_together, e, params)
        assert not batches

        monkeypatch.setattr(wafer_engine, "MAX_BATCH", 8)
        batched = await asyncio.to_thread(_together, e, params)
    finally:
        await e.close()
    assert batches and max(batches) == 4  # the four advanced in one pass
    assert sum(batches) >= 3 * 20  # most steps of the four were batched
    for (a_text, _), (u_text, u_t), (b_text, b_t) in zip(alone, unbatched, batched, strict=True):
        assert a_text and b_text == u_text == a_text
        # The emulated timeline is the scheduler's, whatever the host computed together.
        assert b_t.ttft_s == u_t.ttft_s and b_t.end_s == u_t.end_s
        assert b_t.output_tokens_per_s == u_t.output_tokens_per_s


@pytest.mark.slow
async def test_one_thread_engines_batch_too(batches: list[int]) -> None:
    params = GenerationParams(max_tokens=12, temperature=0)
    e = _engine(threads=1)
    try:
        alone = [await _answer(e, p, params) for p in PROMPTS[:2]]
        together = await asyncio.gather(*(_answer(e, p, params) for p in PROMPTS[:2]))
    finally:
        await e.close()
    assert batches and max(batches) == 2
    assert [t for t, _ in together] == [t for t, _ in alone]


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 16),
    n_in=st.sampled_from([1, 3, 4, 5, 64, 577]),
    n_out=st.sampled_from([1, PANEL, PANEL + 3, 3 * PANEL]),
    seed=st.integers(0, 2**16),
)
def test_threaded_and_one_thread_builds_sum_alike(
    rows: int, n_in: int, n_out: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n_in), dtype=np.float32)
    w = Panels.pack(rng.standard_normal((n_in, n_out), dtype=np.float32))
    serial = _serial_kernel()
    threaded = kernels.compile_kernel(parallel=True)
    outs = []
    for fn, nt in ((serial, 1), (threaded, 1), (threaded, 2), (threaded, 3)):
        y = np.empty((rows, w.data.shape[0] * PANEL), dtype=np.float32)
        fn(x, w.data, y, nt)
        outs.append(y[:, :n_out])
    for y in outs[1:]:
        assert np.array_equal(y, outs[0])


_serial: list[Any] = []


def _serial_kernel() -> Any:
    if not _serial:
        _serial.append(kernels.compile_kernel(parallel=False))
    return _serial[0]


def test_numerics_thread_runs_every_call_on_one_thread_and_passes_errors_back() -> None:
    names: list[str] = []

    def where() -> str:
        names.append(threading.current_thread().name)
        return on_numerics_thread(lambda: threading.current_thread().name)  # nested: inline

    callers = [threading.Thread(target=lambda: on_numerics_thread(where)) for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(timeout=10)
    assert on_numerics_thread(where) == "tedchat-numerics"
    assert names == ["tedchat-numerics"] * 4

    def fail() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        on_numerics_thread(fail)
    assert on_numerics_thread(lambda: 42) == 42  # still serving after an error


def test_panels_refuse_what_they_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="float32"):
        Panels(np.zeros((1, 4, PANEL), dtype=np.float64), 10)
    with pytest.raises(ValueError, match="cannot hold"):
        Panels(np.zeros((1, 4, PANEL), dtype=np.float32), PANEL + 1)
    p = Panels.empty(4, 10)
    with pytest.raises(ValueError, match="do not fit"):
        p.set_columns(8, np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="cannot multiply"):
        kernels.rows_times(np.zeros((1, 5), dtype=np.float32), p)
