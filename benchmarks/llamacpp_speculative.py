"""Speculative decoding on the bundled SmolLM2-135M: speed and output, off vs on.

For each prompt (the bench's built-in ones and ``REPETITIVE_PROMPT``), each policy runs 5
times interleaved with ``off`` (cache reset before each run, greedy, ``n_threads=1``, 160
tokens at most); the table gives median seconds per reply (request to ``Done``) and median
milliseconds per output token (fairer where the answers part and differ in length), each with
its speed-up against ``off``, and the median draft acceptance. Greedy output must be the
same with and without speculation: where it differs, the first differing token is named with
the top-2 logit gap of the model at that position (evaluated one token at a time, as without
speculation): a tiny gap means llama.cpp's batch rounding (drafts are verified in batches)
tipped a near tie.

Policies (``--policies``): ``lookup-8`` is the shipped one (``prompt-lookup``, ``draft_tokens``
= 8); ``lookup-4`` drafts at most 4; ``lookup-8-3g`` matches 3-grams only; ``lookup-8-nb`` has
no back-off after a rejected round.
Prints ``uptime`` before and after (the machine is shared).

    .venv/bin/python benchmarks/llamacpp_speculative.py [--runs 5] [--max-tokens 160]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
from typing import Any

from tedchat.bench.prompts import BUILTIN_PROMPTS, REPETITIVE_PROMPT
from tedchat.engine import GenerationParams, Message, Runtime, TextDelta, Timings, Usage

POLICIES: dict[str, dict[str, Any]] = {
    "off": {"speculative": "off"},
    "lookup-8": {"speculative": "prompt-lookup", "draft_tokens": 8},
    "lookup-4": {"speculative": "prompt-lookup", "draft_tokens": 4},
    # PromptLookup variants, set on the engine after load: (ngram sizes, max back-off)
    "lookup-8-3g": {"speculative": "prompt-lookup", "draft_tokens": 8, "_policy": ((3,), 16)},
    "lookup-8-nb": {"speculative": "prompt-lookup", "draft_tokens": 8, "_policy": ((3, 2), 0)},
}


async def one(engine: Any, text: str, max_tokens: int) -> tuple[float, str, dict[str, float]]:
    await engine.reset_cache()
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    out: list[str] = []
    figures: dict[str, float] = {}
    start = time.perf_counter()
    async for event in engine.stream([Message("user", text)], params):
        if isinstance(event, TextDelta):
            out.append(event.text)
        elif isinstance(event, Timings):
            figures.update(event.figures)
        elif isinstance(event, Usage) and event.output_tokens is not None:
            figures["output_tokens"] = float(event.output_tokens)
    return time.perf_counter() - start, "".join(out), figures


def generated_ids(engine: Any) -> list[int]:
    llm = engine._llm
    return [int(t) for t in llm.input_ids[: llm.n_tokens]]


def logit_gap(model: Any, prefix: list[int]) -> tuple[int, int, float]:
    """Top-2 tokens after ``prefix``, decoded one token at a time, and their logit gap."""
    import numpy as np

    model.reset()
    model.eval(prefix[:-1])
    model.eval(prefix[-1:])
    logits = np.array(model.scores[model.n_tokens - 1])
    top = np.argsort(logits)[-2:][::-1]
    return int(top[0]), int(top[1]), float(logits[top[0]] - logits[top[1]])


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--prompts", default="all", help="all, or ids separated by commas")
    parser.add_argument("--policies", default="off,lookup-8", help="all, or names with commas")
    args = parser.parse_args()

    from llama_cpp import Llama

    from tedchat.models.registry import resolve_model
    from tedchat_llamacpp import SETTINGS
    from tedchat_llamacpp.engine import LlamaCppEngine

    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    prompts = [*BUILTIN_PROMPTS, REPETITIVE_PROMPT]
    if args.prompts != "all":
        wanted = set(args.prompts.split(","))
        prompts = [p for p in prompts if p.id in wanted]
    from tedchat_llamacpp.speculative import DraftCounter, PromptLookup

    engines = {}
    wanted_policies = args.policies.split(",") if args.policies != "all" else list(POLICIES)
    for name in ["off", *[p for p in wanted_policies if p != "off"]]:
        extra = dict(POLICIES[name])
        variant = extra.pop("_policy", None)
        settings = {**SETTINGS, "n_threads": 1, "n_ctx": 2048, **extra}
        engines[name] = LlamaCppEngine(name, settings, Runtime(1))
        await engines[name].load()
        if variant is not None:
            ngram, backoff = variant
            policy = PromptLookup(settings["draft_tokens"], ngram, backoff)
            counter = DraftCounter(policy, settings["n_ctx"])
            engines[name]._counter = counter
            engines[name]._llm.draft_model = counter
    checker = Llama(
        model_path=str(resolve_model("smollm2")),
        n_ctx=2048,
        n_threads=1,
        logits_all=True,
        verbose=False,
    )
    rows = []
    for prompt in prompts:
        times: dict[str, list[float]] = {name: [] for name in engines}
        texts: dict[str, str] = {}
        ids: dict[str, list[int]] = {}
        accept: dict[str, list[float]] = {name: [] for name in engines}
        per_token: dict[str, list[float]] = {name: [] for name in engines}
        await one(engines["off"], prompt.text, 8)  # warm-up
        for run in range(args.runs):
            order = list(engines) if run % 2 == 0 else list(reversed(engines))
            for name in order:
                seconds, text, figures = await one(engines[name], prompt.text, args.max_tokens)
                times[name].append(seconds)
                per_token[name].append(seconds / max(1.0, figures.get("output_tokens", 1.0)))
                if "draft_acceptance" in figures and figures.get("draft_tokens"):
                    accept[name].append(figures["draft_acceptance"])
                if run == 0:
                    texts[name] = text
                    ids[name] = generated_ids(engines[name])
        base = statistics.median(times["off"])
        base_tok = statistics.median(per_token["off"])
        for name in engines:
            med = statistics.median(times[name])
            med_tok = statistics.median(per_token[name])
            note = ""
            if name != "off" and texts[name] != texts["off"]:
                a, b = ids["off"], ids[name]
                at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
                if at is None:
                    note = "differs after the shorter run's end"
                else:
                    top1, top2, gap = logit_gap(checker, a[:at])
                    piece = checker.detokenize([a[at]]).decode("utf-8", "replace")
                    other = checker.detokenize([b[at]]).decode("utf-8", "replace")
                    note = (
                        f"differs at token {at}: off {piece!r} vs {other!r}; "
                        f"top-2 gap {gap:.4f} (top {top1}, {top2})"
                    )
            acc = f"{statistics.median(accept[name]):.2f}" if accept[name] else "-"
            rows.append(
                (prompt.id, name, med, base / med, med_tok * 1000, base_tok / med_tok, acc, note)
            )
    print("load after: ", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(
        f"{'prompt':<13} {'policy':<9} {'median s':>9} {'speed-up':>9} {'ms/token':>9} "
        f"{'speed-up':>9} {'accept':>7}  output"
    )
    for pid, name, med, speed, ms_tok, speed_tok, acc, note in rows:
        print(
            f"{pid:<13} {name:<9} {med:9.2f} {speed:8.2f}x {ms_tok:9.1f} {speed_tok:8.2f}x "
            f"{acc:>7}  {note or 'same output'}"
        )
    for engine in engines.values():
        await engine.close()
    checker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
