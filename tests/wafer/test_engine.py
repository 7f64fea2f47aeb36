"""The wafer engine end to end: real NumPy decoding, pipelined stages, pacing, replay, errors."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tedchat.engine import (
    Done,
    EmulatedTimings,
    GenerationParams,
    Message,
    Notice,
    Runtime,
    TextDelta,
    Usage,
)
from tedchat.models.registry import resolve_model
from tedchat.replay import ReplayEngine
from tedchat.wafer.engine import WaferEngine
from tedchat.wafer.plugin import SETTINGS
from tests.conftest import one_error_line, run_cli

PROMPTS = [
    "Tell me a story about a cat.",
    "Explain gravity.",
    "List three fruits.",
    "Describe Tokyo.",
]


def engine(**settings: object) -> WaferEngine:
    return WaferEngine("w", {**SETTINGS, **settings}, Runtime(threads=1))


@pytest.fixture(scope="module")
def pipelined() -> WaferEngine:
    """70B timing on 4 CS-3 (a stage per system), the bundled model supplying the text."""
    e = engine(timing_target="llama-3.1-70b", systems=4, context=2048, sequences=4)
    asyncio.run(e.load())
    return e


async def answer(e, prompt: str, max_tokens: int = 24) -> list:
    params = GenerationParams(max_tokens=max_tokens, temperature=0)
    return [ev async for ev in e.stream([Message("user", prompt)], params)]


def emulated(events: list) -> EmulatedTimings:
    return next(ev for ev in events if isinstance(ev, EmulatedTimings))


def test_stages_own_their_layers_and_caches(pipelined: WaferEngine) -> None:
    stages = pipelined.pipeline.stages
    assert len(stages) == 4 == pipelined.timing.n_stages
    ranges = [s.layer_range for s in stages]
    assert ranges[0][0] == 0 and ranges[-1][1] == 29
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    assert stages[0].holds_embeddings and stages[-1].holds_head


async def test_four_sequences_pipeline_through_four_systems(pipelined: WaferEngine) -> None:
    single = emulated(await answer(pipelined, PROMPTS[0]))
    results = await asyncio.gather(*(answer(pipelined, p) for p in PROMPTS))
    timings = [emulated(r) for r in results]
    tokens = [next(ev for ev in r if isinstance(ev, Usage)).output_tokens for r in results]
    assert all(n == 24 for n in tokens)  # every sequence was really decoded to the end
    texts = ["".join(ev.text for ev in r if isinstance(ev, TextDelta)) for r in results]
    assert len(set(texts)) == 4
    makespan = max(t.end_s for t in timings) - min(t.arrival_s for t in timings)
    aggregate = sum(tokens) / makespan
    assert aggregate >= 3 * single.output_tokens_per_s
    for t in timings:
        assert abs(t.output_tokens_per_s / single.output_tokens_per_s - 1) <= 0.10


async def test_emulated_figures_and_breakdown(pipelined: WaferEngine) -> None:
    t = emulated(await answer(pipelined, PROMPTS[1]))
    assert t.hardware == "cs3" and t.systems == 4 and t.timing_target == "llama-3.1-70b"
    # docs/hardware.md's calibration row: about 450 tok/s for 70B on 4 CS-3 (15% either way)
    assert 450 * 0.85 <= t.output_tokens_per_s <= 450 * 1.15
    per_token = sum(t.breakdown.values())
    assert per_token == pytest.approx(1 / t.output_tokens_per_s, rel=0.02)
    assert {"fabric_hops", "sram_read", "link"} <= set(t.breakdown)


class FakeClock:
    """Time that moves only when the engine sleeps: pacing becomes deterministic."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def paced_like(pipelined: WaferEngine) -> WaferEngine:
    """A pacing copy of ``pipelined`` that reuses its loaded numerics: pacing is about
    delivery, not the model."""
    paced = engine(timing_target="llama-3.1-70b", systems=4, context=2048, sequences=4, pace=True)
    paced.pipeline, paced.timing, paced.tokenizer = (
        pipelined.pipeline,
        pipelined.timing,
        pipelined.tokenizer,
    )
    paced.placement = pipelined.placement
    paced._runner = type(pipelined._runner)(paced)
    return paced


async def test_pacing_releases_tokens_at_emulated_times(pipelined: WaferEngine) -> None:
    fake = FakeClock()
    paced = paced_like(pipelined)
    paced.clock, paced.sleep = fake.clock, fake.sleep
    start = fake.now
    released, events = [], []
    async for ev in paced.stream([Message("user", PROMPTS[2])], GenerationParams(32, 0.0)):
        if isinstance(ev, TextDelta) and ev.tokens:
            released.append(fake.now - start)
        events.append(ev)
    assert isinstance(events[-1], Done)
    assert not any(isinstance(ev, Notice) for ev in events)
    figures = emulated(events)
    # Each token is released at its emulated time: TTFT and rate are the emulated ones.
    assert released[0] == pytest.approx(figures.ttft_s, rel=1e-6)
    rate = (len(released) - 1) / (released[-1] - released[0])
    assert rate == pytest.approx(figures.output_tokens_per_s, rel=1e-6)


async def test_pace_too_fast_for_the_host_says_so(pipelined: WaferEngine) -> None:
    fake = FakeClock()
    paced = paced_like(pipelined)
    # every check of the clock finds the host a second behind the emulated schedule
    paced.clock = lambda: (setattr(fake, "now", fake.now + 1.0), fake.now)[1]
    paced.sleep = fake.sleep
    events = [ev async for ev in paced.stream([Message("user", "Hi")], GenerationParams(8, 0.0))]
    notices = [ev for ev in events if isinstance(ev, Notice)]
    assert len(notices) == 1 and "replay" in notices[0].text


async def test_replay_plays_on_the_emulated_clock(pipelined: WaferEngine) -> None:
    fake = FakeClock()

    async def fake_sleep(seconds: float) -> None:
        fake.now += seconds

    replay = ReplayEngine(pipelined, sleep=fake_sleep)
    replay.start.clock = fake.clock
    params = GenerationParams(max_tokens=16, temperature=0)
    await replay.prepare([Message("user", PROMPTS[3])], params)
    start = fake.now
    times, figures = [], None
    async for ev in replay.stream([Message("user", PROMPTS[3])], params):
        if isinstance(ev, TextDelta):
            times.append(fake.now - start)
        if isinstance(ev, EmulatedTimings):
            figures = ev
    assert figures is not None and figures.replay
    assert times[-1] == pytest.approx(figures.end_s - figures.arrival_s, rel=1e-6)


async def test_no_llama_cpp_decode_in_the_wafer_path(
    pipelined: WaferEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llama_cpp

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("llama.cpp decode called in the wafer path")

    monkeypatch.setattr(llama_cpp, "llama_decode", forbidden)
    monkeypatch.setattr(llama_cpp.Llama, "eval", forbidden)
    events = await answer(pipelined, "What is the capital of France?", max_tokens=12)
    assert "Paris" in "".join(ev.text for ev in events if isinstance(ev, TextDelta))


def test_ask_wafer_answers_paris_with_emulated_figures(tedchat_home: Path) -> None:
    result = run_cli(
        tedchat_home,
        "ask",
        "--engine",
        "wafer",
        "--temperature",
        "0",
        "--max-tokens",
        "24",
        "--json",
        "--no-history",
        "What is the capital of France?",
        TEDCHAT_THREADS="1",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert "Paris" in record["text"]
    em = record["emulated"]
    assert em["hardware"] == "cs3" and em["systems"] == 1 and em["timing_target"] is None
    assert em["output_tokens_per_s"] > 1000 and em["breakdown"]
    # the other figures stay wall-clock: this machine is far slower than the emulated wafer
    assert record["output_tokens_per_s"] < em["output_tokens_per_s"]


def write_gguf(path: Path, arch: str) -> Path:
    import gguf

    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("kind", ["unsupported", "truncated"])
def test_bad_gguf_files_get_one_line(tedchat_home: Path, kind: str) -> None:
    if kind == "unsupported":
        bad = write_gguf(tedchat_home / "gpt2.gguf", "gpt2")
        expected = "unsupported architecture 'gpt2'"
    else:
        bad = tedchat_home / "cut.gguf"
        bad.write_bytes(resolve_model("smollm2").read_bytes()[: 3 << 20])
        expected = "truncated GGUF file"  # the header reader says where it ends
    config = tedchat_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[engines.bad]\ntype = "wafer"\nmodel = "{bad}"\n')
    result = run_cli(tedchat_home, "ask", "--engine", "bad", "--no-history", "hi")
    assert result.returncode == 1, result.stderr
    assert expected in one_error_line(result.stderr)
