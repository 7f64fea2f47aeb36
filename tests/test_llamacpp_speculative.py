"""Speculative decoding in the llamacpp engine, on the real bundled model (greedy, one thread):
the same output with it on and off, drafted and accepted tokens counted per reply, the
logits it needs counted in the memory check. Speed is measured in
benchmarks/llamacpp_speculative.py, not here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tedchat.bench.prompts import BUILTIN_PROMPTS, REPETITIVE_PROMPT
from tedchat.engine import GenerationParams, Message, Runtime, TextDelta, Timings
from tedchat.errors import ConfigError, ModelTooLargeError
from tedchat.models.gguf_header import read_gguf_header
from tedchat.models.memory import check_fits, memory_need
from tedchat.models.registry import resolve_model
from tedchat_llamacpp import SETTINGS
from tedchat_llamacpp.engine import LlamaCppEngine
from tedchat_llamacpp.speculative import DraftCounter, PromptLookup
from tests.conftest import ONE_THREAD, run_cli

GREEDY = GenerationParams(max_tokens=96, temperature=0.0)


def engine(**settings: Any) -> LlamaCppEngine:
    values = {**SETTINGS, "n_threads": 1, "n_ctx": 1024, **settings}
    return LlamaCppEngine("local", values, Runtime(1))


async def reply(e: LlamaCppEngine, text: str) -> tuple[str, dict[str, float]]:
    await e.reset_cache()
    out: list[str] = []
    figures: dict[str, float] = {}
    async for event in e.stream([Message("user", text)], GREEDY):
        if isinstance(event, TextDelta):
            out.append(event.text)
        elif isinstance(event, Timings):
            figures = dict(event.figures)
    return "".join(out), figures


def generated(e: LlamaCppEngine) -> list[int]:
    llm = e._llm
    return [int(t) for t in llm.input_ids[: llm.n_tokens]]


def assert_same_or_a_near_tie(off: LlamaCppEngine, on: LlamaCppEngine) -> None:
    """The same tokens, or where they part the model (one token at a time, as without
    speculation) had two candidates within a small logit gap: batch rounding tipped a tie."""
    a, b = generated(off), generated(on)
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    if at is None:
        return
    llm = off._llm
    llm.reset()
    for token in a[:at]:
        llm.eval([token])
    logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
    top = np.sort(logits)[-2:]
    assert {a[at], b[at]} <= set(np.argsort(logits)[-2:].tolist())
    assert top[1] - top[0] < 0.5, f"token {at}: top-2 gap {top[1] - top[0]}"


async def test_prompt_lookup_gives_the_same_greedy_answer_and_counts_acceptance() -> None:
    off, on = engine(), engine(speculative="prompt-lookup")
    try:
        for prompt in (REPETITIVE_PROMPT.text, "What is the capital of France?"):
            text_off, figures_off = await reply(off, prompt)
            text_on, figures = await reply(on, prompt)
            if text_on != text_off:
                assert_same_or_a_near_tie(off, on)
            assert "draft_tokens" not in figures_off
            assert 0 <= figures["draft_accepted_tokens"] <= figures["draft_tokens"]
        # The list is copied from the prompt: most drafts are right.
        _, figures = await reply(on, REPETITIVE_PROMPT.text)
        assert figures["draft_tokens"] >= 20
        assert figures["draft_acceptance"] >= 0.6
        assert figures["draft_acceptance"] == pytest.approx(
            figures["draft_accepted_tokens"] / figures["draft_tokens"]
        )
    finally:
        await off.close()
        await on.close()


async def test_a_draft_gguf_the_same_as_the_model_drafts_what_it_says() -> None:
    """The bundled model as its own draft model: greedy drafts of itself are all accepted but
    where batch rounding tips a near tie."""
    off, on = engine(), engine(speculative="draft", draft_model="smollm2", draft_tokens=4)
    try:
        text_off, _ = await reply(off, REPETITIVE_PROMPT.text)
        text_on, figures = await reply(on, REPETITIVE_PROMPT.text)
        if text_on != text_off:
            assert_same_or_a_near_tie(off, on)
        assert figures["draft_tokens"] > 20 and figures["draft_acceptance"] >= 0.9
    finally:
        await off.close()
        await on.close()


def test_ask_json_reports_the_figures(tedchat_home: Path) -> None:
    config = tedchat_home / "config.toml"
    config.write_text(
        '[engines.spec]\ntype = "llamacpp"\nmodel = "smollm2"\nn_ctx = 1024\n'
        'speculative = "prompt-lookup"\n',
        encoding="utf-8",
    )
    args = ["--config", str(config), "ask", "--engine", "spec", "--temperature", "0"]
    result = run_cli(
        tedchat_home, *args, "--max-tokens", "64", "--json", REPETITIVE_PROMPT.text, **ONE_THREAD
    )
    assert result.returncode == 0, result.stderr
    timings = json.loads(result.stdout)["timings"]
    assert timings["draft_tokens"] > 0 and 0 <= timings["draft_acceptance"] <= 1
    assert timings["prompt_eval_tokens"] > 100 and timings["prompt_eval_tokens_per_s"] > 0
    assert timings["cached_prompt_tokens"] == 0  # a fresh process: nothing cached
    plain = run_cli(tedchat_home, *args, "--max-tokens", "32", REPETITIVE_PROMPT.text, **ONE_THREAD)
    line = plain.stderr.strip().splitlines()[-1]
    assert " tok/s · " in line and "prompt " in line and " accepted (" in line


async def test_a_second_turn_reports_its_cached_prompt_tokens() -> None:
    e = engine()
    try:
        first = [Message("user", "Name a colour.")]
        params = GenerationParams(max_tokens=8, temperature=0.0)
        answer = []
        async for event in e.stream(first, params):
            if isinstance(event, TextDelta):
                answer.append(event.text)
        second = [*first, Message("assistant", "".join(answer)), Message("user", "Another?")]
        figures: dict[str, float] = {}
        async for event in e.stream(second, params):
            if isinstance(event, Timings):
                figures = dict(event.figures)
        assert figures["cached_prompt_tokens"] > 5
        assert figures["prompt_eval_tokens"] > 0
    finally:
        await e.close()


def test_bad_settings_are_one_config_error() -> None:
    with pytest.raises(ConfigError, match="speculative must be one of off, prompt-lookup, draft"):
        engine(speculative="yes")
    with pytest.raises(ConfigError, match="needs draft_model"):
        engine(speculative="draft")


def test_the_memory_check_counts_the_logits_speculation_keeps() -> None:
    info = read_gguf_header(resolve_model("smollm2"))
    plain = memory_need([info], 4096)
    spec = memory_need([info], 4096, logits_all=True)
    assert spec.logits == (4096 + 512) * 49152 * 4  # ~0.9 GB for a 0.1 GB model
    assert plain.logits == 0 and spec.total >= plain.total + spec.logits
    between = plain.total + spec.logits // 2
    check_fits([info], 4096, setting="engines.x", mem_available=between)
    with pytest.raises(ModelTooLargeError, match="logits for speculative decoding"):
        check_fits([info], 4096, setting="engines.x", mem_available=between, logits_all=True)
    with_draft = memory_need([info], 4096, logits_all=True, draft=[info])
    assert with_draft.draft == info.tensor_bytes + plain.kv_cache


def test_the_counter_reads_acceptance_from_what_the_generator_did() -> None:
    """Rounds as Llama.generate runs them: each call shows the tokens now verified."""
    drafts = iter([[5, 6, 7], [9, 9], [4, 4, 4, 4]])

    class Fixed(PromptLookup):
        def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
            return np.array(next(drafts), dtype=np.intc)

    counter = DraftCounter(Fixed(), n_ctx=64)
    counter.start()
    counter(np.array([1, 2, 3]))  # prompt + first token; drafts 5 6 7 at positions 3-5
    counter(np.array([1, 2, 3, 5, 6, 8]))  # 5, 6 accepted, 7 rejected (8 sampled instead)
    assert (counter.drafted, counter.accepted) == (3, 2)
    counter(np.array([1, 2, 3, 5, 6, 8, 9, 9, 1]))  # both accepted, a bonus token
    assert (counter.drafted, counter.accepted) == (5, 4)
    # The last round: drafts at 9-12; the reply ended at 12 tokens: positions 9 and 10 are
    # known to match, 11 (the last token) is unknown.
    stats = counter.finish(12)
    assert (stats.drafted, stats.accepted) == (7, 6)
    assert stats.acceptance == pytest.approx(6 / 7)


def test_drafts_leave_the_context_room() -> None:
    """Near a full context llama-cpp-python would cut drafts with a negative slice and write
    past its logits array: the counter keeps them short of n_ctx."""
    counter = DraftCounter(PromptLookup(max_tokens=8), n_ctx=12)
    counter.start()
    ids = np.array([1, 2, 3, 4, 1, 2, 3, 4, 1, 2], dtype=np.intc)
    assert counter(ids).tolist() == []  # 12 - 10 - 2 = 0 tokens of room
    counter.start()
    assert counter(ids[:7]).tolist() == [4, 1]  # the 3-gram 1 2 3 matched; 2 tokens to start
    short = DraftCounter(PromptLookup(max_tokens=8), n_ctx=10)
    short.start()
    assert short(ids[:7]).tolist() == [4]  # 10 - 7 - 2 = 1 token of room


async def test_a_prompt_longer_than_a_batch_works_with_speculation() -> None:
    """llama-cpp-python sizes its logits array by its logits_all argument, not by the draft
    model that forces logits_all: without the argument a prompt past n_batch (512) tokens
    overflowed it. The bench's long prompts are longer."""
    long = next(p for p in BUILTIN_PROMPTS if p.id == "long-ja")
    e = engine(speculative="prompt-lookup")
    try:
        _, figures = await reply(e, long.text)
        assert figures["prompt_eval_tokens"] > 512
        assert "draft_tokens" in figures
    finally:
        await e.close()
