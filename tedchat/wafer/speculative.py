"""Speculative decoding for the wafer engine: drafts, the verify step, and its counters.

A step drafts up to k tokens and the target checks them all in ONE forward of k+1 rows (the
last accepted token and the drafts) continuing its KV cache (:func:`verify`). Row ``i``'s
logits are what a lone decode of that position would give, bit for bit (the numerics are
row-invariant for calls of up to :data:`~tedchat.wafer.numerics.ROW_INVARIANT_ROWS` rows), so
the request's own sampler (greedy, or seeded, one draw per token) picks from each row in turn:
while its pick equals the draft, the draft is accepted and the next row is valid; the first
pick that differs is the target's own next token and ends the step. The cache is rolled back
past the rejected drafts. The text is therefore exactly the text without speculation; only
the emulated time changes, and the acceptance rate is real.

Drafts (setting ``speculative``):

* ``prompt-lookup`` (:func:`lookup_draft`): the tokens that followed the latest earlier
  occurrence of the context's last n-gram (n = 3, 2, 1). Costs nothing to draft.
* ``draft`` (:class:`DraftModel`): a smaller GGUF with the same tokenizer decodes k tokens
  greedily on its own KV cache. On the emulated hardware it is placed beside the target and
  each of its decode steps is charged at its own timing model's decode-step time.

When the timed model is a stand-in (``timing_target``), a real draft's acceptance against the
stand-in says nothing about the timed pair, so ``draft`` mode then charges the clock at the
configured ``alpha`` (:func:`assumed_release`), reported as assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tedchat.errors import ConfigError

MODES = ("off", "prompt-lookup", "draft")
#: k + 1 rows must stay within the numerics' row-invariant calls (16 rows).
MAX_DRAFT_TOKENS = 15
#: Longest and shortest n-gram prompt lookup matches.
LOOKUP_NGRAM = (3, 1)


@dataclass(frozen=True)
class SpecSettings:
    """The engine's speculative settings, checked."""

    mode: str
    draft_tokens: int
    draft_model: str = ""
    alpha: float | None = None  # assumed per-token acceptance (stand-in draft mode only)


def spec_settings(name: str, settings: Mapping[str, Any]) -> SpecSettings | None:
    """The checked settings (None when off); a :class:`ConfigError` line when they are bad."""
    mode = settings.get("speculative", "off")
    if mode not in MODES:
        raise ConfigError(
            f"engines.{name}.speculative must be one of {', '.join(MODES)}; got {mode!r}"
        )
    k = settings.get("draft_tokens", 4)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_DRAFT_TOKENS:
        raise ConfigError(
            f"engines.{name}.draft_tokens must be a whole number from 1 to {MAX_DRAFT_TOKENS}; "
            f"got {k!r}"
        )
    alpha = settings.get("alpha", 0.0)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < 1:
        raise ConfigError(f"engines.{name}.alpha must be in [0, 1); got {alpha!r}")
    if mode == "off":
        return None
    draft = str(settings.get("draft_model") or "")
    if mode == "draft" and not draft:
        raise ConfigError(
            f'engines.{name}: speculative = "draft" needs draft_model (a GGUF)',
            hint='set draft_model, or use speculative = "prompt-lookup"',
        )
    stand_in = bool(settings.get("timing_target"))
    if mode == "draft" and stand_in and not alpha:
        raise ConfigError(
            f"engines.{name}: a draft against a stand-in (timing_target) needs alpha, the "
            "assumed acceptance of the timed pair",
            hint="set alpha (e.g. 0.7), or drop timing_target",
        )
    return SpecSettings(mode, k, draft, float(alpha) if mode == "draft" and stand_in else None)


# --------------------------------------------------------------------------- drafts


def lookup_draft(tokens: Sequence[int], k: int, ngram: tuple[int, int] = LOOKUP_NGRAM) -> list[int]:
    """Up to ``k`` tokens that followed the latest earlier occurrence of the last n-gram of
    ``tokens`` (the longest n from ``ngram[0]`` down to ``ngram[1]`` that occurs)."""
    n_tokens = len(tokens)
    for n in range(min(ngram[0], n_tokens - 1), ngram[1] - 1, -1):
        tail = list(tokens[n_tokens - n :])
        for start in range(n_tokens - n - 1, -1, -1):
            if list(tokens[start : start + n]) == tail:
                return list(tokens[start + n : start + n + k])
    return []


class DraftModel:
    """A draft GGUF's float32 numerics with one KV cache per sequence, decoding greedily."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._caches: dict[Hashable, tuple[Any, list[int]]] = {}

    def open(self, seq_id: Hashable) -> None:
        self._caches[seq_id] = (self.model.new_cache(), [])

    def close(self, seq_id: Hashable) -> None:
        self._caches.pop(seq_id, None)

    def propose(self, seq_id: Hashable, tokens: Sequence[int], k: int) -> list[int]:
        """``k`` greedy tokens following ``tokens`` (the whole context so far). The draft's
        cache keeps what it already holds of ``tokens`` and runs the rest."""
        import numpy as np

        cache, fed = self._caches[seq_id]
        k = min(k, cache.context - len(tokens))
        if k < 1:
            return []
        same = 0
        for a, b in zip(fed, tokens[:-1], strict=False):
            if a != b:
                break
            same += 1
        cache.truncate(same)
        del fed[same:]
        logits = self.model.forward(list(tokens[same:]), cache)
        fed.extend(tokens[same:])
        out = [int(np.argmax(logits))]
        while len(out) < k:
            logits = self.model.decode(out[-1], cache)
            fed.append(out[-1])
            out.append(int(np.argmax(logits)))
        return out


def check_same_tokenizer(target: Any, draft: Any, draft_path: Path) -> None:
    """Refuse a draft whose tokenizer differs from the target's (its token ids would mean other
    text): the same size, special tokens and every token's bytes; one :class:`ConfigError`."""
    same = (
        target.vocab_size == draft.vocab_size
        and (target.bos_id, target.eos_id, target.eot_ids)
        == (draft.bos_id, draft.eos_id, draft.eot_ids)
        and all(
            target.token_bytes(i, special=True) == draft.token_bytes(i, special=True)
            for i in range(target.vocab_size)
        )
    )
    if not same:
        raise ConfigError(
            f"draft_model {draft_path.name} has another tokenizer than the target model: "
            "speculative drafts need the same vocabulary"
        )


# --------------------------------------------------------------------------- the step


def verify(
    pipeline: Any,
    seq_id: Hashable,
    last_token: int,
    drafts: Sequence[int],
    sample: Callable[[Any], int],
) -> list[int]:
    """Run ``[last_token, *drafts]`` through the target as one (k+1)-row forward; return the
    tokens the step yields: the accepted drafts and the target's own next token.

    ``sample`` (the request's sampler) picks from each row in order until its pick differs
    from the draft (or the drafts run out); the KV cache is then truncated to the positions of
    ``last_token`` and the accepted drafts.
    """
    start = pipeline.context_len(seq_id)
    rows = pipeline.run(seq_id, [last_token, *drafts], all_logits=True)
    out: list[int] = []
    for i, logits in enumerate(rows):
        token = sample(logits)
        out.append(token)
        if i == len(drafts) or token != drafts[i]:
            break
    pipeline.truncate(seq_id, start + len(out))
    return out


@dataclass
class SpecStats:
    """One request's speculative counters."""

    mode: str
    draft_tokens: int
    alpha: float | None = None
    drafted: int = 0
    accepted: int = 0
    steps: int = 0  # target decode steps (verifies and plain decodes) after the prompt
    tokens: int = 0  # tokens those steps yielded
    steps_assumed: int = 0  # emulated steps charged at the assumed acceptance

    def add(self, drafted: int, yielded: int) -> None:
        self.drafted += drafted
        self.accepted += yielded - 1
        self.steps += 1
        self.tokens += yielded

    def as_dict(self) -> dict[str, Any]:
        """``emulated.speculative``: measured on the real text; with ``alpha`` (a stand-in's
        draft mode) the clock's acceptance and tokens per step are the assumed ones."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "draft_tokens": self.draft_tokens,
            "drafted": self.drafted,
            "accepted": self.accepted,
            "acceptance_rate": self.accepted / self.drafted if self.drafted else None,
            "tokens_per_step": self.tokens / self.steps if self.steps else None,
        }
        if self.alpha is not None:
            out["assumed_acceptance"] = self.alpha
            out["assumed_tokens_per_step"] = expected_tokens(self.alpha, self.draft_tokens)
        return out


def expected_tokens(alpha: float, k: int) -> float:
    """Tokens per step at per-token acceptance ``alpha`` with ``k`` drafts:
    ``(1 - alpha^(k+1)) / (1 - alpha)``."""
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


def assumed_release(alpha: float, k: int, step: int) -> int:
    """Tokens the ``step``-th (0-based) emulated step releases at assumed acceptance
    ``alpha``: the expected tokens per step, spread evenly (whole tokens, summing to
    ``round-down((step + 1) * E)``)."""
    e = expected_tokens(alpha, k)
    return int((step + 1) * e + 1e-9) - int(step * e + 1e-9)


# --------------------------------------------------------------------------- in the runner


def speculative_step(runner: Any, seq: Any) -> None:
    """One decode step of ``seq`` with speculation, for the engine's runner: draft, verify in
    one (k+1)-row forward, charge the emulated clock, and deliver the tokens.

    The clock: with a draft model, k of its decode steps (its own timing model, placed beside
    the target) hold the sequence back before the verify (:meth:`PipelineScheduler.wait`);
    prompt-lookup drafts cost nothing. The verify goes through the pipeline scheduler as one
    k+1-token step with a prompt chunk's per-stage costs (the tokens stream through the stages
    back to back), a lone decode step when nothing was drafted. Every token of the step is
    emitted when the step ends. With an assumed ``alpha`` (a draft against a stand-in) the
    tokens computed are queued and released by emulated steps of full k drafts, each
    releasing :func:`assumed_release` tokens.
    """
    e = runner.engine
    spec: SpecSettings = e.spec
    pipeline = e.pipeline
    room = pipeline.context - pipeline.context_len(seq.id) - 1
    left = seq.params.max_tokens - seq.generated - len(seq.pending) - 1
    k = max(0, min(spec.draft_tokens, room, left))
    context = seq.tokens + seq.pending  # its last token is the next to run
    drafts: list[int] = []
    if k > 0:
        if spec.mode == "prompt-lookup":
            drafts = lookup_draft(context, k)
        else:
            drafts = e.draft.propose(seq.id, context, k)
    out = verify(pipeline, seq.id, context[-1], drafts, seq.sampler)
    seq.spec.add(len(drafts), len(out))
    if spec.alpha is None:
        emit = _charge(runner, seq, len(drafts), len(seq.tokens) - 1, len(out))
        for token in out:
            if runner.deliver(seq, token, emit):
                return
        return
    # Assumed acceptance: the computed tokens wait for the emulated steps that release them.
    seq.pending.extend(out)
    ending = (
        any(e.tokenizer.is_end_of_turn(t) for t in seq.pending)
        or seq.generated + len(seq.pending) >= seq.params.max_tokens
        or pipeline.context_len(seq.id) + 1 >= pipeline.context
    )
    while seq.pending:
        n = assumed_release(spec.alpha, spec.draft_tokens, seq.spec.steps_assumed)
        if len(seq.pending) < n and not ending:
            return
        release, seq.pending = seq.pending[:n], seq.pending[n:]
        seq.spec.steps_assumed += 1
        emit = _charge(runner, seq, spec.draft_tokens, len(seq.tokens) - 1, len(release))
        for token in release:
            if runner.deliver(seq, token, emit):
                return


def _charge(runner: Any, seq: Any, drafted: int, start: int, yielded: int) -> float:
    """Put one speculative step on the emulated timeline (k drafts beside the target, then the
    k+1-token verify through the scheduler); add its breakdown to the sequence's; return the
    emulated time its tokens are emitted."""
    e = runner.engine
    timing, sched = e.timing, runner.scheduler
    busy = seq.busy
    if drafted and e.draft_timing is not None:
        draft_s = drafted * e.draft_timing.decode_step(start + 1).total
        sched.wait(seq.id, draft_s)
        busy["draft"] = busy.get("draft", 0.0) + draft_s
    n = drafted + 1
    end = start + n
    kind = "decode" if n == 1 else "prefill"
    record = sched.step(seq.id, kind, n, end)
    for s in range(timing.n_stages):
        for part, t in timing.stage_step_time(s, kind, n, end).items():
            busy[part] = busy.get(part, 0.0) + t
        if s < timing.n_stages - 1:
            for part, t in timing.link_time(s, 1).items():
                busy[part] = busy.get(part, 0.0) + t
    for part, t in timing.return_link_time().items():
        busy[part] = busy.get(part, 0.0) + t
    seq.decode_steps += yielded
    return float(record.emit)
