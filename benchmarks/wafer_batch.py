"""Batched host decoding on the wafer engine: aggregate host tokens/s at 1, 2 and 4 sequences.

One wafer engine on the bundled SmolLM2-135M (timed as itself on one CS-3, unpaced, so the
host is the bottleneck) answers N requests at once, N = 1, 2, 4; the figure is every
request's output tokens over the wall time of the batch (what ``tedchat bench --engines wafer
--concurrency N`` reports as aggregate tok/s). Runs are interleaved, medians kept:

(a) ``new``: the shipped numerics (weights as column panels, the row-invariant kernel of
    :mod:`tedchat.wafer.kernels`, sequences in flight advanced by one batched pass);
(b) ``before``: the numerics as they were - every row of a small call a BLAS GEMV on the
    ``(in, out)`` matrix (a dense copy of the weights), so N sequences read the weights N
    times - measured at N = 1 only for the single-sequence bound.

Also (c) the fp32 roofline: this machine's matrix-vector bandwidth over the bytes one token
reads, and the new single-sequence speed as a fraction of it.

Bounds (issue 16): aggregate at N = 2 and 4 at least 1.6x and 2.5x the N = 1 figure (same
run, medians); new single-sequence speed within 5% of before (ratio >= 0.95).

    .venv/bin/python benchmarks/wafer_batch.py [--threads N] [--runs 5] [--tokens 256] [--json]

``--threads 0`` (default) is what the engine uses by default: every core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.wafer_host_speed import bundled_model

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a refrigerator works.",
    "List some facts about the Moon.",
    "Describe a walk through a forest in autumn.",
]
BOUNDS = {2: 1.6, 4: 2.5}
SHORTEST: dict[int, int] = {}  # the fewest output tokens of a request, per batch size


def dense_gemv_product() -> Any:
    """The product as it was: a GEMV per row on a dense ``(in, out)`` copy of the weights."""
    import numpy as np

    from tedchat.wafer import numerics

    dense: dict[int, Any] = {}

    def product(x: Any, w: Any) -> Any:
        if x.shape[0] > numerics.ROW_INVARIANT_ROWS:
            return w.matmul(x)
        d = dense.get(id(w))
        if d is None:
            d = dense[id(w)] = (w, w.dense())
        x = np.ascontiguousarray(x)
        y = np.empty((x.shape[0], w.shape[1]), dtype=np.float32)
        for i in range(x.shape[0]):
            np.matmul(x[i], d[1], out=y[i])
        return y

    return product


async def batch(engine: Any, n: int, tokens: int) -> tuple[int, float]:
    from tedchat.engine import GenerationParams, Message, TextDelta

    params = GenerationParams(max_tokens=tokens, temperature=0)

    async def one(prompt: str) -> int:
        got = 0
        async for ev in engine.stream([Message("user", prompt)], params):
            if isinstance(ev, TextDelta):
                got += ev.tokens
        return got

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(one(PROMPTS[i % len(PROMPTS)]) for i in range(n)))
    SHORTEST[n] = min(SHORTEST.get(n, tokens), *counts)
    return sum(counts), time.perf_counter() - t0


def roofline_bytes_per_s(threads: int) -> float:
    import numpy as np

    from tedchat.wafer.kernels import blas_threads

    w = np.ones((8192, 16384), dtype=np.float32)  # 512 MB
    x = np.ones(8192, dtype=np.float32)
    best = float("inf")
    with blas_threads(threads):
        for _ in range(5):
            t0 = time.perf_counter()
            x @ w
            best = min(best, time.perf_counter() - t0)
    return w.nbytes / best


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from tedchat.engine import Runtime
    from tedchat.wafer import numerics
    from tedchat.wafer.engine import WaferEngine
    from tedchat.wafer.plugin import SETTINGS

    threads = args.threads or os.cpu_count() or 1
    # First, before the kernel's threads exist (spinning after a call, they would slow BLAS).
    roof_bytes_per_s = roofline_bytes_per_s(threads)
    model = str(bundled_model())
    settings = {**SETTINGS, "model": model, "hardware": "cs3", "context": 1024, "sequences": 4}
    engine = WaferEngine("wafer", settings, Runtime(threads=threads))
    await engine.load()
    bpt = engine.pipeline.model.bytes_per_token
    shipped = numerics.product
    before = dense_gemv_product()
    runs: dict[str, list[float]] = {}
    try:
        await batch(engine, 1, 4)  # warm up (kernel compile, caches)
        numerics.product = before
        await batch(engine, 1, 4)
        numerics.product = shipped
        SHORTEST.clear()
        for r in range(args.runs):
            plan = [("new", 1), ("new", 2), ("new", 4), ("before", 1)]
            for name, n in plan if r % 2 == 0 else plan[::-1]:
                numerics.product = before if name == "before" else shipped
                try:
                    count, wall = await batch(engine, n, args.tokens)
                finally:
                    numerics.product = shipped
                runs.setdefault(f"{name} x{n}", []).append(count / wall)
    finally:
        numerics.product = shipped
        await engine.close()
    med = {k: statistics.median(v) for k, v in runs.items()}
    single = med["new x1"]
    roof = roof_bytes_per_s / bpt
    return {
        "threads": threads,
        "runs": args.runs,
        "tokens_per_request": args.tokens,
        "tok_s": {k: round(v, 2) for k, v in med.items()},
        "all_runs": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "aggregate_ratio": {n: round(med[f"new x{n}"] / single, 3) for n in (2, 4)},
        "single_vs_before": round(single / med["before x1"], 3),
        "roofline_tok_s": round(roof, 1),
        "single_vs_roofline": round(single / roof, 3),
        "bytes_per_token": bpt,
        "fewest_tokens_of_a_request": dict(SHORTEST),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--threads", type=int, default=0, help="engine threads (0: every core)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=256, help="output tokens per request")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = asyncio.run(main_async(args))
    ok = all(out["aggregate_ratio"][n] >= b for n, b in BOUNDS.items())
    ok = ok and out["single_vs_before"] >= 0.95
    out["bounds_met"] = ok
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"threads {out['threads']}, {out['runs']} runs, {out['tokens_per_request']} tokens")
        for k, v in out["tok_s"].items():
            print(f"  {k:10s} {v:8.2f} tok/s (aggregate)   runs {out['all_runs'][k]}")
        for n, r in out["aggregate_ratio"].items():
            print(f"  aggregate x{n} / x1: {r:.3f}  (bound {BOUNDS[n]})")
        print(f"  single new / before: {out['single_vs_before']:.3f}  (bound 0.95)")
        print(
            f"  fp32 roofline {out['roofline_tok_s']} tok/s "
            f"({out['bytes_per_token'] / 1e6:.0f} MB/token); single = "
            f"{out['single_vs_roofline']:.2f} of it"
        )
        fewest = out["fewest_tokens_of_a_request"]
        print(f"  fewest output tokens of a request, by batch size: {fewest}")
        print("bounds met" if ok else "BOUND MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
