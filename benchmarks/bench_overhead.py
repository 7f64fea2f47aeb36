"""What `tedchat bench` itself costs: per-batch overhead, and the checkpoint as records grow.

Two measurements, with an engine that does no work (its tokens are ready at once), so that
everything timed is the bench's own:

(a) per-batch overhead of the runner: reset_cache, run_turn over the stream, building the run
    record -- the time a batch of a 1-token answer takes. It is what the bench adds between two
    measured answers, not inside them (TTFT and tok/s are timed inside run_turn);
(b) the checkpoint: the record is rewritten (summary + JSON, atomically) as batches finish,
    at most every 2 s, so a crash loses little. Its cost grows with the record; this times one
    write at 100, 1,000 and 5,000 runs of 256-token answers with token ids (6 prompts, 2
    engines). (Fully indented JSON took 227 ms at 1,000 runs; one run per line, 51 ms.)

Bounds (exit 1 if missed): (a) <= 2 ms per batch; (b) <= 100 ms per write at 1,000 runs.

    .venv/bin/python benchmarks/bench_overhead.py [--batches 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tedchat.bench.prompts import BUILTIN_PROMPTS
from tedchat.bench.record import BenchRecord, engine_entry, write_json
from tedchat.bench.runner import BenchPlan, run_bench
from tedchat.engine import Done, GenerationParams, TextDelta, Usage

BATCH_BOUND_S = 0.002
WRITE_BOUND_S = 0.100


class NullEngine:
    """Answers at once: one token, no work."""

    type = "null"
    local = False

    def __init__(self, name: str) -> None:
        self.name, self.model = name, "null"

    async def load(self, progress: Any = None) -> None:
        pass

    async def stream(self, messages: Any, params: Any) -> Any:
        yield TextDelta("x", tokens=1)
        yield Usage(output_tokens=1)
        yield Done("stop")

    async def reset_cache(self) -> None:
        pass

    async def status(self) -> Any:
        return None

    def describe(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        pass


def new_record(names: list[str]) -> BenchRecord:
    info = {"type": "null", "origin": "benchmark", "settings": {}, "plugin": None}
    return BenchRecord(
        config={
            "engines": names,
            "prompts": "builtin",
            "runs": 1,
            "warmup": 0,
            "max_tokens": 1,
            "temperature": 0.0,
            "top_p": None,
            "seed": None,
            "concurrency": 1,
        },
        prompts=BUILTIN_PROMPTS,
        engines=[engine_entry({**info, "name": n}, NullEngine(n)) for n in names],
    )


def batch_overhead(batches: int) -> float:
    names = ["a", "b"]
    runs = max(1, batches // (len(names) * len(BUILTIN_PROMPTS)))
    plan = BenchPlan(BUILTIN_PROMPTS, runs, 0, GenerationParams(max_tokens=1, temperature=0))
    record = new_record(names)
    t0 = time.perf_counter()
    asyncio.run(run_bench(plan, {n: NullEngine(n) for n in names}, record))
    return (time.perf_counter() - t0) / len(record.batches)


def filled_record(n_runs: int) -> BenchRecord:
    """A record holding ``n_runs`` runs with 256-token answers (about 1.3 KB of text each)."""
    names = ["a", "b"]
    record = new_record(names)
    text = " ".join(["token"] * 256)
    for i in range(n_runs):
        prompt = BUILTIN_PROMPTS[i % len(BUILTIN_PROMPTS)]
        record.runs.append(
            {
                "engine": names[i % 2],
                "model": "null",
                "prompt_id": prompt.id,
                "phase": "measured",
                "round": 1 + i // 12,
                "batch": i,
                "slot": 0,
                "started_at": "2026-01-01T00:00:00.000+00:00",
                "cache_cleared": True,
                "text": text,
                "prompt_tokens": 40,
                "output_tokens": 256,
                "output_tokens_source": "engine",
                "ttft_s": 0.1 + i % 7 / 100,
                "output_tokens_per_s": 50.0 + i % 11,
                "elapsed_s": 5.0,
                "finish_reason": "length",
                "timings": {"eval_s": 5.0},
                "error": None,
                "token_ids": list(range(256)),
            }
        )
    return record


def write_time(n_runs: int, folder: Path, repeats: int = 3) -> tuple[float, int]:
    record = filled_record(n_runs)
    path = folder / f"record-{n_runs}.json"
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        write_json(record.to_dict(), path)
        times.append(time.perf_counter() - t0)
    return min(times), path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=2000)
    args = parser.parse_args()

    per_batch = statistics.median(batch_overhead(args.batches) for _ in range(3))
    ok_batch = per_batch <= BATCH_BOUND_S
    print(
        f"(a) runner overhead per batch: {per_batch * 1000:.3f} ms "
        f"(bound {BATCH_BOUND_S * 1000:.0f} ms: {'PASS' if ok_batch else 'FAIL'})"
    )

    print(f"(b) {'runs':>6}  {'write (ms)':>10}  {'file (MB)':>9}")
    ok_write = True
    with tempfile.TemporaryDirectory() as tmp:
        for n in (100, 1000, 5000):
            seconds, size = write_time(n, Path(tmp))
            print(f"    {n:>6}  {seconds * 1000:>10.1f}  {size / 1e6:>9.2f}")
            if n == 1000:
                ok_write = seconds <= WRITE_BOUND_S
    print(
        f"bound: one checkpoint write at 1,000 runs <= {WRITE_BOUND_S * 1000:.0f} ms: "
        f"{'PASS' if ok_write else 'FAIL'}"
    )
    return 0 if ok_batch and ok_write else 1


if __name__ == "__main__":
    sys.exit(main())
