"""Speculative decoding on the emulated systems: measured acceptance and emulated speed.

Real wafer engines on the bundled SmolLM2-135M (greedy, ``--tokens`` output tokens), the
bench's built-in prompts and its repetitive one, with ``speculative`` off and
``prompt-lookup`` (k = ``--draft-tokens``), timed on one CS-3 as SmolLM2 itself and on four as
Llama-3.1-70B (the bundled model a stand-in for the text, so its acceptance is the stand-in's).
For each: acceptance (accepted / drafted), tokens per verify step, emulated decode tok/s and the
ratio to off, and whether the text equals the text with speculation off (it must).

Acceptance is counted on real text, so it is deterministic for a given prompt; the emulated
figures are the timing model's, not this machine's. Host seconds are printed for reference.

    .venv/bin/python benchmarks/wafer_speculative.py [--tokens 96] [--draft-tokens 4] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--draft-tokens", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from tedchat.bench.prompts import BUILTIN_PROMPTS, REPETITIVE_PROMPT
    from tedchat.engine import EmulatedTimings, GenerationParams, Message, Runtime, TextDelta
    from tedchat.wafer.engine import WaferEngine
    from tedchat.wafer.plugin import SETTINGS

    targets: dict[str, dict[str, Any]] = {
        "1x cs3 smollm2": {},
        "4x cs3 as llama-3.1-70b": {"timing_target": "llama-3.1-70b", "systems": 4},
    }

    def make(timed: dict[str, Any], mode: str) -> WaferEngine:
        settings = {**SETTINGS, "context": 2048, **timed, "speculative": mode}
        settings["draft_tokens"] = args.draft_tokens
        e = WaferEngine("w", settings, Runtime(threads=1))
        asyncio.run(e.load())
        return e

    def answer(e: WaferEngine, prompt: str) -> tuple[list[str], EmulatedTimings, float]:
        params = GenerationParams(max_tokens=args.tokens, temperature=0.0)
        t0 = time.perf_counter()
        timed = asyncio.run(e.record([Message("user", prompt)], params))
        host = time.perf_counter() - t0
        texts = [ev.text for _, ev in timed if isinstance(ev, TextDelta)]
        return texts, next(ev for _, ev in timed if isinstance(ev, EmulatedTimings)), host

    rows = []
    for label, timed in targets.items():
        off, on = make(timed, "off"), make(timed, "prompt-lookup")
        for prompt in [*BUILTIN_PROMPTS, REPETITIVE_PROMPT]:
            text_off, em_off, host_off = answer(off, prompt.text)
            text_on, em_on, host_on = answer(on, prompt.text)
            spec = dict(em_on.speculative or {})
            rows.append(
                {
                    "timed": label,
                    "prompt": prompt.id,
                    "same_text": text_on == text_off,
                    "drafted": spec.get("drafted"),
                    "accepted": spec.get("accepted"),
                    "acceptance_rate": spec.get("acceptance_rate"),
                    "tokens_per_step": spec.get("tokens_per_step"),
                    "emulated_tps_off": em_off.output_tokens_per_s,
                    "emulated_tps_on": em_on.output_tokens_per_s,
                    "speedup": em_on.output_tokens_per_s / em_off.output_tokens_per_s,
                    "host_s_off": host_off,
                    "host_s_on": host_on,
                }
            )
    if args.json:
        print(json.dumps({"tokens": args.tokens, "draft_tokens": args.draft_tokens, "rows": rows}))
    else:
        print(f"prompt-lookup, k = {args.draft_tokens}, {args.tokens} greedy tokens")
        head = f"{'timed as':<24} {'prompt':<11} {'same':>4} {'accepted':>9} {'rate':>5}"
        print(head + f" {'tok/step':>8} {'tok/s off':>10} {'tok/s on':>9} {'x':>5} {'host s':>11}")
        for r in rows:
            acc = f"{r['accepted']}/{r['drafted']}"
            rate = f"{r['acceptance_rate']:.2f}" if r["acceptance_rate"] is not None else "-"
            per = f"{r['tokens_per_step']:.2f}" if r["tokens_per_step"] else "-"
            print(
                f"{r['timed']:<24} {r['prompt']:<11} {'yes' if r['same_text'] else 'NO':>4} "
                f"{acc:>9} {rate:>5} {per:>8} {r['emulated_tps_off']:>10.0f} "
                f"{r['emulated_tps_on']:>9.0f} {r['speedup']:>5.2f} "
                f"{r['host_s_off']:>5.1f}/{r['host_s_on']:<5.1f}"
            )
    return 0 if all(r["same_text"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
