"""How fast a cancelled llamacpp request lets go, while llama.cpp processes a long prompt.

A 2,000-token prompt takes several seconds to process on a small machine, and no token is
produced meanwhile, so the engine's between-tokens check cannot stop it: llama.cpp's abort
callback must. This starts a request with a ~2,000-token prompt on the bundled SmolLM2,
cancels it after ``--after`` seconds (well inside the prompt processing), and reports:

- ``returned_s``: from the cancel to the consumer's task being done;
- ``released_s``: from the cancel to the engine's lock being free again (the worker thread
  really stopped: the next request can start).

    .venv/bin/python benchmarks/llamacpp_cancel.py [--runs 3] [--after 1.0] [--threads 1]

Measured on the project's 2-core machine (shared), n_threads=1: see the README of benchmarks
or the engineer's report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

import contextlib

from tedchat.engine import GenerationParams, Message, Runtime

PARAGRAPH = (
    "The history of computing spans centuries, from the abacus and the mechanical calculators "
    "of Pascal and Leibniz to Babbage's analytical engine, the tabulating machines of Hollerith, "
    "and the electronic computers of the twentieth century. "
)


def long_prompt(engine_llm: object, tokens: int) -> str:
    """Text of about ``tokens`` tokens for this model."""
    text = PARAGRAPH
    while len(engine_llm.tokenize(text.encode())) < tokens:  # type: ignore[attr-defined]
        text += PARAGRAPH
    return text + "\nSummarise the text above in one sentence."


async def one_run(engine: object, prompt: str, after: float) -> dict[str, float]:
    async def consume() -> int:
        n = 0
        async for _ in engine.stream(  # type: ignore[attr-defined]
            [Message("user", prompt)], GenerationParams(max_tokens=16, temperature=0.0)
        ):
            n += 1
        return n

    await engine.reset_cache()  # type: ignore[attr-defined]  # a cold prompt every run
    task = asyncio.create_task(consume())
    await asyncio.sleep(after)
    assert not task.done(), "the prompt was processed before the cancel: use a longer one"
    t0 = time.perf_counter()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    returned = time.perf_counter() - t0
    lock = engine._lock  # type: ignore[attr-defined]
    await asyncio.to_thread(lock.acquire)
    released = time.perf_counter() - t0
    lock.release()
    return {"returned_s": returned, "released_s": released}


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    from tedchat_llamacpp import SETTINGS
    from tedchat_llamacpp.engine import LlamaCppEngine

    settings = {**SETTINGS, "model": "smollm2", "n_ctx": 4096, "n_threads": args.threads}
    engine = LlamaCppEngine("bench", settings, Runtime(threads=args.threads))
    await engine.load()
    prompt = long_prompt(engine._llm, args.tokens)
    n_prompt = len(engine._llm.tokenize(prompt.encode()))
    runs = [await one_run(engine, prompt, args.after) for _ in range(args.runs)]
    # The engine still answers after the cancels.
    text = ""
    async for event in engine.stream(
        [Message("user", "Say hello.")], GenerationParams(max_tokens=8, temperature=0.0)
    ):
        text += getattr(event, "text", "")
    await engine.close()
    return {
        "prompt_tokens": n_prompt,
        "cancel_after_s": args.after,
        "threads": args.threads,
        "runs": runs,
        "max_released_s": max(r["released_s"] for r in runs),
        "answers_after_cancel": bool(text),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--after", type=float, default=1.0, help="seconds before cancelling")
    parser.add_argument("--tokens", type=int, default=2000, help="prompt length")
    parser.add_argument("--threads", type=int, default=1)
    result = asyncio.run(main_async(parser.parse_args()))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
