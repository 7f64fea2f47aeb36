"""Speculative decoding on the emulated systems: the same text, real acceptance, the clock.

Real wafer engines on the bundled SmolLM2-135M; the text with speculation on must equal the
text with it off, token for token (each TextDelta is one token), on the committed verify
prompts (tedchat/wafer/corpus.txt) and on a repetitive prompt.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.bench.prompts import REPETITIVE_PROMPT
from tedchat.bench.schema import RECORD_SCHEMA
from tedchat.engine import (
    Done,
    EmulatedTimings,
    GenerationParams,
    Message,
    Runtime,
    TextDelta,
    Usage,
)
from tedchat.errors import ConfigError
from tedchat.metrics import speculative_part
from tedchat.wafer.engine import WaferEngine
from tedchat.wafer.plugin import SETTINGS
from tedchat.wafer.speculative import (
    MAX_DRAFT_TOKENS,
    assumed_release,
    check_same_tokenizer,
    expected_tokens,
    lookup_draft,
    spec_settings,
)
from tedchat.wafer.verify import load_corpus
from tests.conftest import one_error_line, run_cli

PROSE = "Tell me a story about a cat."
TOKENS = 32


def engine(**settings: object) -> WaferEngine:
    return WaferEngine("w", {**SETTINGS, "context": 1024, **settings}, Runtime(threads=1))


@pytest.fixture(scope="module")
def engines() -> dict[str, WaferEngine]:
    """Off, prompt lookup, and the bundled model drafting for itself: one loaded model."""
    out = {
        "off": engine(),
        "prompt-lookup": engine(speculative="prompt-lookup"),
        "draft": engine(speculative="draft", draft_model="smollm2"),
    }
    for e in out.values():
        asyncio.run(e.load())
    return out


def answer(
    e: WaferEngine, prompt: str, max_tokens: int = TOKENS, **params: Any
) -> tuple[list[str], EmulatedTimings]:
    """The per-token texts and the emulated figures of one greedy (by default) answer."""
    gen = GenerationParams(max_tokens=max_tokens, **{"temperature": 0.0, **params})
    timed = asyncio.run(e.record([Message("user", prompt)], gen))
    deltas = [ev.text for _, ev in timed if isinstance(ev, TextDelta)]
    usage = next(ev for _, ev in timed if isinstance(ev, Usage))
    assert usage.output_tokens == sum(
        1 for _, ev in timed if isinstance(ev, TextDelta) and ev.tokens
    )
    return deltas, next(ev for _, ev in timed if isinstance(ev, EmulatedTimings))


@pytest.mark.slow
def test_greedy_text_is_the_same_with_speculation_on_the_verify_prompts(
    engines: dict[str, WaferEngine],
) -> None:
    drafted = 0
    for prompt in [*load_corpus(), REPETITIVE_PROMPT.text]:
        off, plain = answer(engines["off"], prompt, max_tokens=24)
        assert plain.speculative is None
        for mode in ("prompt-lookup", "draft"):
            on, em = answer(engines[mode], prompt, max_tokens=24)
            assert on == off, (mode, prompt)  # token for token
            assert em.speculative is not None and em.speculative["mode"] == mode
            drafted += em.speculative["drafted"]
    assert drafted > 0


def test_a_full_context_ends_at_the_same_token(engines: dict[str, WaferEngine]) -> None:
    # Drafts stop short of the context's end; the answer runs out of room where it did off.
    small = {"context": 160}
    off, on = engine(**small), engine(**small, speculative="prompt-lookup")
    asyncio.run(off.load())
    asyncio.run(on.load())
    gen = GenerationParams(max_tokens=400, temperature=0.0)
    results = []
    for e in (off, on):
        timed = asyncio.run(e.record([Message("user", REPETITIVE_PROMPT.text)], gen))
        texts = [ev.text for _, ev in timed if isinstance(ev, TextDelta)]
        done = next(ev for _, ev in timed if isinstance(ev, Done))
        results.append((texts, done.finish_reason))
    assert results[0] == results[1]
    assert results[0][1] == "length" and len(results[0][0]) < 400


def test_seeded_sampling_is_the_same_with_speculation(engines: dict[str, WaferEngine]) -> None:
    # The sampler draws once per token in order, from bit-identical logits.
    sampled = {"temperature": 0.9, "top_p": 0.95, "seed": 7}
    for prompt in (REPETITIVE_PROMPT.text, PROSE):
        off, _ = answer(engines["off"], prompt, **sampled)
        on, em = answer(engines["prompt-lookup"], prompt, **sampled)
        assert on == off
        assert em.speculative is not None


def test_repetitive_prompt_accepts_more_than_prose(engines: dict[str, WaferEngine]) -> None:
    _, rep = answer(engines["prompt-lookup"], REPETITIVE_PROMPT.text, max_tokens=64)
    _, prose = answer(engines["prompt-lookup"], PROSE, max_tokens=64)
    _, off = answer(engines["off"], REPETITIVE_PROMPT.text, max_tokens=64)
    assert rep.speculative is not None and prose.speculative is not None
    assert rep.speculative["acceptance_rate"] > prose.speculative["acceptance_rate"]
    assert rep.speculative["tokens_per_step"] > 2.0
    # Lookup drafts cost nothing, so accepted drafts make the emulated decode faster.
    assert rep.output_tokens_per_s > 1.5 * off.output_tokens_per_s
    assert rep.breakdown and "draft" not in rep.breakdown


def test_the_model_as_its_own_draft_accepts_everything(engines: dict[str, WaferEngine]) -> None:
    for prompt in (PROSE, REPETITIVE_PROMPT.text):
        _, em = answer(engines["draft"], prompt, max_tokens=40)
        spec = em.speculative
        assert spec is not None and spec["drafted"] > 0
        assert spec["acceptance_rate"] == 1.0 and spec["accepted"] == spec["drafted"]
        assert spec["tokens_per_step"] > 4.0  # k = 4: five tokens a step but at the end
        assert em.breakdown["draft"] > 0  # its decode steps are on the clock


def test_draft_against_a_stand_in_uses_the_assumed_acceptance(
    engines: dict[str, WaferEngine],
) -> None:
    kw: dict[str, Any] = {"timing_target": "llama-3.1-70b", "systems": 4, "context": 1024}
    plain = engine(**kw)
    spec = engine(**kw, speculative="draft", draft_model="smollm2", alpha=0.7)
    asyncio.run(plain.load())
    asyncio.run(spec.load())
    off, em_off = answer(plain, PROSE)
    on, em = answer(spec, PROSE)
    assert on == off
    assert em.speculative is not None
    assert em.speculative["assumed_acceptance"] == 0.7
    assert em.speculative["assumed_tokens_per_step"] == pytest.approx(expected_tokens(0.7, 4))
    # 2.77 tokens a step at alpha 0.7, k = 4; a 5-token verify costs the wafer little more
    # than one token and the small draft's steps little: well over 1.5x the plain decode.
    assert em.output_tokens_per_s > 1.5 * em_off.output_tokens_per_s
    assert em.breakdown["draft"] > 0
    assert "assumed acceptance 0.7" in speculative_part(em.speculative)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"speculative": "fast"}, "speculative must be one of off, prompt-lookup, draft"),
        ({"speculative": "draft"}, 'speculative = "draft" needs draft_model'),
        ({"speculative": "prompt-lookup", "draft_tokens": 0}, "draft_tokens must be"),
        ({"speculative": "prompt-lookup", "draft_tokens": 16}, "draft_tokens must be"),
        ({"speculative": "prompt-lookup", "alpha": 1.0}, "alpha must be in [0, 1)"),
        (
            {"speculative": "draft", "draft_model": "smollm2", "timing_target": "llama-3.1-8b"},
            "needs alpha",
        ),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        spec_settings("w", {**SETTINGS, **settings})


def test_draft_without_a_model_is_one_line_and_exit_2(tedchat_home: Path) -> None:
    config = tedchat_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[engines.spec]\ntype = "wafer"\nspeculative = "draft"\n')
    result = run_cli(tedchat_home, "ask", "--engine", "spec", "--no-history", "hi")
    assert result.returncode == 2, result.stderr
    assert 'speculative = "draft" needs draft_model' in one_error_line(result.stderr)


def _prompt_lookup_engine(tedchat_home: Path) -> None:
    """A config with engine ``spec``: the bundled model, prompt-lookup drafts."""
    config = tedchat_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        '[engines.spec]\ntype = "wafer"\ncontext = 1024\nspeculative = "prompt-lookup"\n'
    )


def test_ask_json_carries_the_speculative_block(tedchat_home: Path) -> None:
    import jsonschema

    _prompt_lookup_engine(tedchat_home)
    result = run_cli(
        tedchat_home,
        *("ask", "--engine", "spec", "--temperature", "0", "--max-tokens", "48"),
        *("--json", "--no-history", REPETITIVE_PROMPT.text),
        TEDCHAT_THREADS="1",
    )
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)["emulated"]["speculative"]
    assert spec["mode"] == "prompt-lookup" and spec["draft_tokens"] == 4
    assert spec["drafted"] > 0 and 0 < spec["accepted"] <= spec["drafted"]
    assert spec["acceptance_rate"] == pytest.approx(spec["accepted"] / spec["drafted"])
    assert spec["tokens_per_step"] > 1
    # The bench record's run schema takes the same block.
    run_emulated = RECORD_SCHEMA["$defs"]["run"]["properties"]["emulated"]
    jsonschema.validate(json.loads(result.stdout)["emulated"], run_emulated)


def test_the_metrics_line_shows_the_speculation(tedchat_home: Path) -> None:
    # The line ask prints to stderr is the status bar's (format_metrics_line).
    _prompt_lookup_engine(tedchat_home)
    result = run_cli(
        tedchat_home,
        *("ask", "--engine", "spec", "--temperature", "0", "--max-tokens", "32"),
        *("--no-history", REPETITIVE_PROMPT.text),
        TEDCHAT_THREADS="1",
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if "| emulated" in x)
    assert re.search(r"prompt-lookup k=4: \d+/\d+ accepted \(\d+%\), [\d.]+ tok/step", line)


class _Vocab:
    """The tokenizer attributes the check reads (a stand-in for a second real vocabulary)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.vocab_size, self.bos_id, self.eos_id = len(pieces), 0, 1
        self.eot_ids = frozenset({1})
        self._pieces = pieces

    def token_bytes(self, i: int, special: bool = False) -> bytes:
        return self._pieces[i]


def test_a_draft_with_another_tokenizer_is_refused() -> None:
    a = _Vocab([b"<s>", b"</s>", b"a", b"b"])
    check_same_tokenizer(a, _Vocab([b"<s>", b"</s>", b"a", b"b"]), Path("d.gguf"))
    for other in ([b"<s>", b"</s>", b"a", b"c"], [b"<s>", b"</s>", b"a"]):
        with pytest.raises(ConfigError, match="another tokenizer"):
            check_same_tokenizer(a, _Vocab(other), Path("d.gguf"))


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(st.integers(0, 5), min_size=1, max_size=40), k=st.integers(1, 8))
def test_lookup_drafts_continue_an_earlier_occurrence_of_the_last_ngram(
    tokens: list[int], k: int
) -> None:
    draft = lookup_draft(tokens, k)
    assert len(draft) <= k
    if not draft:
        assert tokens[-1] not in tokens[:-1]  # not even a 1-gram occurred before
        return
    # Some n in 1..3: the last n tokens occurred earlier, followed by the draft.
    assert any(
        tokens[s : s + n] == tokens[-n:] and tokens[s + n : s + n + len(draft)] == draft
        for n in range(1, 4)
        for s in range(len(tokens) - n)
    )


@settings(max_examples=100, deadline=None)
@given(alpha=st.floats(0.0, 0.99), k=st.integers(1, MAX_DRAFT_TOKENS), steps=st.integers(1, 50))
def test_assumed_release_spreads_the_expected_tokens(alpha: float, k: int, steps: int) -> None:
    released = [assumed_release(alpha, k, i) for i in range(steps)]
    assert all(1 <= r <= k + 1 for r in released)
    assert abs(sum(released) - steps * expected_tokens(alpha, k)) < 1
