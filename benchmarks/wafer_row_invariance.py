"""What row invariance costs the wafer numerics (tedchat.wafer.numerics.product).

Calls of up to ``ROW_INVARIANT_ROWS`` rows compute each row by the row-invariant kernel
(tedchat.wafer.kernels) a lone decode also uses, and attend one query row at a time, so a row's
logits do not depend on the rows beside it. Before, a multi-row call was one GEMM (a GEMM per
weight panel now) and one masked attention. This script runs both,
interleaved, on the bundled SmolLM2-135M (``ROW_INVARIANT_ROWS = 0`` gives the old code path
exactly), and prints medians:

(a) single-sequence decode tokens/s (one row per step: the path every request takes);
(b) a speculative verify step of k+1 rows continuing a cache, ms per step, k = 1, 4, 7;
(c) a batched decode step of B sequences, ms per step, B = 2, 4, 8.

"ratio" is invariant / before: the median of the ratios of back-to-back pairs (their order
alternating), which a shared machine's drifting load disturbs far less than the medians.

Bound: (a) within 5% of before (a lone row takes the same kernel either way).

    .venv/bin/python benchmarks/wafer_row_invariance.py [--threads 1] [--runs 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wafer_host_speed import bundled_model, limit_threads, prompt_tokens

DECODE_TOKENS = 16
PROMPT = 64
MAX_SINGLE_SLOWDOWN = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    note = limit_threads(args.threads)

    import numpy as np

    from tedchat.wafer import numerics
    from tedchat.wafer.numerics import Model

    model = Model.load(bundled_model(), context=PROMPT + 32 + DECODE_TOKENS)
    prompt = prompt_tokens(PROMPT, model.config.vocab)
    invariant_rows = numerics.ROW_INVARIANT_ROWS
    timed_rows = [invariant_rows]  # the setting of the timed part

    def prefilled() -> Any:
        cache = model.new_cache()
        numerics.ROW_INVARIANT_ROWS = 0  # the same prefill either way (a GEMM)
        model.prefill(prompt, cache)
        numerics.ROW_INVARIANT_ROWS = timed_rows[0]
        return cache

    def decode() -> float:
        cache = prefilled()
        token = 1000
        t0 = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            logits = model.decode(token, cache)
            token = int(np.argmax(logits))
        return DECODE_TOKENS / (time.perf_counter() - t0)

    def verify(k: int) -> float:
        cache = prefilled()
        t0 = time.perf_counter()
        model.forward(prompt[: k + 1], cache, all_logits=True)
        return (time.perf_counter() - t0) * 1000

    def batch(b: int) -> float:
        caches = [prefilled() for _ in range(b)]
        t0 = time.perf_counter()
        model.decode_batch(prompt[:b], caches)
        return (time.perf_counter() - t0) * 1000

    cases: dict[str, Any] = {"decode tok/s": decode}
    cases |= {f"verify k={k} ms": (lambda k=k: verify(k)) for k in (1, 4, 7)}
    cases |= {f"batch B={b} ms": (lambda b=b: batch(b)) for b in (2, 4, 8)}
    got: dict[str, dict[str, list[float]]] = {c: {"before": [], "invariant": []} for c in cases}
    order = [("before", 0), ("invariant", invariant_rows)]
    for run in range(args.runs):
        for name, fn in cases.items():
            # Each pair runs back to back, in alternating order: a shared machine's load
            # drifts between pairs far more than within one.
            for label, rows in order if run % 2 == 0 else order[::-1]:
                timed_rows[0] = rows
                got[name][label].append(float(fn()))
    numerics.ROW_INVARIANT_ROWS = invariant_rows

    out: dict[str, dict[str, float]] = {}
    for name, runs in got.items():
        row = {label: statistics.median(v) for label, v in runs.items()}
        # The median of the pairs' ratios (robust to load drifting between pairs).
        pairs = zip(runs["invariant"], runs["before"], strict=True)
        row["ratio"] = statistics.median(a / b for a, b in pairs)
        out[name] = row
    if args.json:
        print(json.dumps({"threads": args.threads, "runs": args.runs, "cases": out}, indent=1))
    else:
        print(f"{note}; {args.runs} interleaved runs, medians")
        print(f"{'case':<16} {'before':>10} {'invariant':>10} {'ratio':>7}")
        for name, row in out.items():
            print(
                f"{name:<16} {row['before']:>10.2f} {row['invariant']:>10.2f} {row['ratio']:>7.3f}"
            )
    slowdown = 1 - out["decode tok/s"]["ratio"]
    if slowdown > MAX_SINGLE_SLOWDOWN:
        print(f"single-sequence decode {slowdown:.1%} slower than before (bound 5%)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
