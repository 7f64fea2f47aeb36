"""Opening sequences on the wafer engine again and again: what KV caches cost to reserve.

Each sequence reserves its whole context up front (8192 positions by default: 377 MB of
float32 keys and values on the bundled SmolLM2-135M) and writes only the positions it reaches.
Rounds of 4 sequences (open, a 36-token prefill, 8 batched decode steps, close), each variant in
its own child process so the allocator's history is its own, side by side:

(a) ``fresh``: the shipped caches, :func:`tedchat.wafer.numerics.fresh_zeros` (each array its
    own anonymous memory map: pages committed when first written, unmapped on close);
(b) ``np.zeros``: the caches as they were.

Per round: the time to open the 4 sequences, the time to first logits of the 4 (opens and
prefills), the resident-set growth while open and what is left after close.
Bound: from the second round on, opening a sequence costs no more than in the first round
(ratio ≤ 1.5) and a round leaves nothing behind (< 4 MB).

    .venv/bin/python benchmarks/wafer_kv_open.py [--rounds 4] [--context 8192] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.wafer_host_speed import bundled_model

CHILD = """
    import json, sys, time
    import numpy as np
    from tedchat.wafer import numerics
    from tedchat.wafer.shared_weights import shared_weights
    from tedchat.wafer.stages import Pipeline

    variant, path, context, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if variant == "np.zeros":
        numerics.fresh_zeros = lambda shape: np.zeros(shape, dtype=np.float32)

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 1e6

    model = numerics.Model(shared_weights(path), context)
    pipeline = Pipeline(model, Pipeline.split(len(model.layers), 2), context)
    out = []
    for r in range(rounds):
        before = rss_mb()
        t0 = time.perf_counter()
        opening = 0.0
        for s in range(4):
            t = time.perf_counter()
            pipeline.open((r, s))
            opening += time.perf_counter() - t
            pipeline.run((r, s), list(range(1, 37)))
        first = time.perf_counter() - t0
        for _ in range(8):
            pipeline.run_batch([(r, s) for s in range(4)], [5, 6, 7, 8])
        open_mb = rss_mb() - before
        for s in range(4):
            pipeline.close((r, s))
        out.append({"open_s": opening, "first_logits_s": first, "open_mb": open_mb,
                    "after_close_mb": rss_mb() - before})
    print(json.dumps(out))
"""


def run_variant(variant: str, context: int, rounds: int) -> list[dict[str, float]]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), variant, str(bundled_model()),
         str(context), str(rounds)],
        capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = {v: run_variant(v, args.context, args.rounds) for v in ("fresh", "np.zeros")}
    fresh = result["fresh"]
    later = fresh[1:]
    ok = all(r["open_s"] <= 1.5 * max(fresh[0]["open_s"], 1e-3) for r in later)
    ok = ok and all(r["after_close_mb"] < 4 for r in later)
    if args.json:
        print(json.dumps({"context": args.context, "rounds": result, "bounds_met": ok}, indent=2))
    else:
        print(f"context {args.context}, rounds of 4 sequences (36-token prefill, 8 decode steps)")
        for v, rounds in result.items():
            for i, r in enumerate(rounds):
                print(
                    f"  {v:9s} round {i}: open 4 {r['open_s'] * 1e3:7.1f} ms  first logits "
                    f"{r['first_logits_s'] * 1e3:7.1f} ms  RSS +{r['open_mb']:6.0f} MB open, "
                    f"{r['after_close_mb']:+6.0f} MB after close"
                )
        print("bounds met" if ok else "BOUND MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
