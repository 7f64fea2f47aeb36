"""Pacing and replay of the wafer engine, measured on the wall clock.

1. Live pacing: a paced engine whose emulated hardware is slower than this machine makes the
   text must deliver tokens at the emulated rate. The target is a deliberately slow GPU profile
   (an A100 with a tenth of its HBM bandwidth, named ``slow-a100`` here) timing Llama-3.1-8B,
   so that the bundled model on this CPU stays ahead of it. Bound: the client-measured
   tokens/s (tedchat's own meter) within 10% of the emulated tokens/s.
2. Replay of the reference scene: ``wafer-70b`` (4 CS-3) and ``gpu-70b`` (2 H100, FP8) answer
   the reference question; both answers are computed first, then played from a common start.
   Bounds: the wafer pane finishes at least 5x sooner, and each pane's wall time to its last
   token is within 10% of its emulated total time.

    .venv/bin/python benchmarks/wafer_pacing.py [--tokens N] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time

from tedchat.config import DEFAULT_ENGINES
from tedchat.engine import EmulatedTimings, GenerationParams, Message, Runtime
from tedchat.replay import prepare_replays
from tedchat.session import Turn, run_turn
from tedchat.wafer.engine import WaferEngine
from tedchat.wafer.hardware import get_hardware
from tedchat.wafer.placement import plan
from tedchat.wafer.plugin import SETTINGS
from tedchat.wafer.shapes import get_shape

REFERENCE = (
    "Give me a list of 10 great computer scientists, and tell me what each one's greatest "
    "achievement was."
)


def default_engine(name: str, threads: int) -> WaferEngine:
    table = {k: v for k, v in DEFAULT_ENGINES[name].items() if k != "type"}
    return WaferEngine(name, {**SETTINGS, **table}, Runtime(threads=threads))


async def live_pacing(tokens: int, threads: int) -> tuple[float, float]:
    slow = dataclasses.replace(
        get_hardware("a100"),
        name="slow-a100",
        hbm_bandwidth=get_hardware("a100").hbm_bandwidth / 10,
    )
    engine = WaferEngine(
        "paced", {**SETTINGS, "pace": True, "timing_target": "llama-3.1-8b"}, Runtime(threads)
    )
    placement = plan(get_shape("llama-3.1-8b"), slow, 1, context=SETTINGS["context"])
    engine.plan = lambda path=None: placement  # the slow profile instead of a named one
    engine.hardware_name = slow.name
    await engine.load()
    turn = Turn(engine, [Message("user", REFERENCE)], GenerationParams(tokens, 0.0))
    result = await run_turn(turn)
    assert result.metrics.emulated is not None
    return result.metrics.output_tokens_per_s or 0.0, result.metrics.emulated.output_tokens_per_s


async def replay_scene(tokens: int, threads: int) -> list[tuple[str, float, float, int]]:
    engines = [default_engine("wafer-70b", threads), default_engine("gpu-70b", threads)]
    for e in engines:
        await e.load()
    messages = [Message("user", REFERENCE)]
    params = GenerationParams(tokens, 0.0)
    replays = await prepare_replays(engines, messages, params)
    turns = [Turn(r, messages, params) for r in replays]
    results = await asyncio.gather(*(run_turn(t) for t in turns))
    rows = []
    for turn, result in zip(turns, results, strict=True):
        em: EmulatedTimings = result.metrics.emulated  # type: ignore[assignment]
        wall_to_last = turn.meter.t_last - turn.meter.t_start  # type: ignore[operator]
        rows.append(
            (turn.engine.name, wall_to_last, em.end_s - em.arrival_s, result.metrics.output_tokens)
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    ok = True

    t0 = time.perf_counter()
    measured, emulated = asyncio.run(live_pacing(args.tokens, args.threads))
    ratio = measured / emulated
    good = abs(ratio - 1) <= 0.10
    ok &= good
    print("live pacing (slow-a100 timing llama-3.1-8b, bundled model supplying the text)")
    print(
        f"  emulated {emulated:8.1f} tok/s   measured {measured:8.1f} tok/s   "
        f"ratio {ratio:.3f}  {'PASS' if good else 'FAIL'} (within 10%)   "
        f"[{time.perf_counter() - t0:.0f} s]"
    )

    rows = asyncio.run(replay_scene(args.tokens, args.threads))
    print("replay of the reference scene (computed first, played from a common start)")
    print(f"  {'engine':<10}{'tokens':>7}{'wall to last (s)':>18}{'emulated (s)':>14}{'ratio':>8}")
    for name, wall, emu, n in rows:
        r = wall / emu
        good = abs(r - 1) <= 0.10
        ok &= good
        print(f"  {name:<10}{n:>7}{wall:>18.4f}{emu:>14.4f}{r:>8.3f}  {'PASS' if good else 'FAIL'}")
    speedup = rows[1][1] / rows[0][1]
    good = speedup >= 5
    ok &= good
    print(f"  wafer pane finishes {speedup:.1f}x sooner  {'PASS' if good else 'FAIL'} (>= 5x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
