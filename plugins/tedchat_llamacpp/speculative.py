"""Speculative decoding for the ``llamacpp`` engine: draft policies and acceptance counters.

llama-cpp-python (0.3.36) verifies drafts itself: ``Llama.generate`` asks its ``draft_model``
for tokens after the last sampled one, evaluates them in one batch, keeps the prefix the model
would have sampled anyway and throws the rest away. Output is the model's own (greedy output is
the same with it on or off, up to batch rounding); only the speed changes. It keeps no
counters, so :class:`DraftCounter` wraps the policy and reads acceptance back from what the
generator did (see its docstring).

Policies (engine setting ``speculative``):

- ``prompt-lookup`` (:class:`PromptLookup`): the drafts are the tokens that followed the most
  recent earlier occurrence of the last n-gram (3, else 2 tokens) in the prompt and answer so
  far. Free to compute; it pays off when the answer repeats the prompt or itself (code edits,
  quoting, lists) and costs nothing when there is no match (no draft, a normal step). The
  draft length adapts (it doubles after a round accepted whole, falls back to what was
  accepted after a miss) and a round rejected outright silences it for a few steps.
  Why: on one thread a batch of k+1 tokens costs about 22 + 9k ms against 22 ms for one
  token (SmolLM2-135M, benchmarks/llamacpp_speculative.py), so a rejected draft costs
  almost half a token and acceptance must stay above about 40 % to gain anything.
- ``draft`` (:class:`DraftGGUF`): a small GGUF of the same vocabulary (``draft_model``) drafts
  ``draft_tokens`` tokens greedily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from llama_cpp.llama_speculative import LlamaDraftModel


@dataclass(frozen=True)
class DraftStats:
    """One reply's speculation: drafted tokens the model checked, and how many it kept."""

    drafted: int
    accepted: int

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


class PromptLookup(LlamaDraftModel):
    """Prompt-lookup drafts with an adaptive length and a back-off (see the module docstring).

    A round whose first draft is rejected costs a batch for nothing, so after one the policy
    stays quiet for a number of steps that doubles with each such round in a row (up to
    ``max_backoff``) and drops back to none at the first accepted draft: prose, where n-gram
    matches rarely continue, then runs almost as without speculation.
    """

    def __init__(
        self,
        max_tokens: int = 8,
        ngram: tuple[int, ...] = (3, 2),
        max_backoff: int = 16,
    ) -> None:
        self.max_tokens = max(1, max_tokens)
        self.ngram = ngram
        self.max_backoff = max_backoff
        self.length = min(2, self.max_tokens)
        self._misses = 0  # rounds in a row with nothing accepted
        self._quiet = 0  # steps left without drafting

    def start(self) -> None:
        """A new reply: forget the last one's luck."""
        self.length = min(2, self.max_tokens)
        self._misses = 0
        self._quiet = 0

    def feedback(self, drafted: int, accepted: int) -> None:
        """The last round's outcome: grow after a whole accept, shrink after a miss."""
        if not drafted:
            return
        if accepted == drafted:
            self.length = min(self.max_tokens, self.length * 2)
        else:
            self.length = max(1, accepted)
        if accepted:
            self._misses = 0
        else:
            self._misses += 1
            self._quiet = min(self.max_backoff, 1 << (self._misses - 1))

    def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
        if self._quiet > 0:
            self._quiet -= 1
            return np.array([], dtype=np.intc)
        ids = np.asarray(input_ids)
        n = ids.shape[0]
        for size in self.ngram:
            if n <= size:
                continue
            tail = ids[n - size :]
            windows = np.lib.stride_tricks.sliding_window_view(ids[: n - 1], size)
            hits = np.nonzero(np.all(windows == tail, axis=1))[0]
            if hits.size:
                start = int(hits[-1]) + size  # the most recent occurrence
                return ids[start : min(start + self.length, n)].astype(np.intc)
        return np.array([], dtype=np.intc)


class DraftGGUF(LlamaDraftModel):
    """A smaller GGUF drafts greedily; its KV cache keeps the prefix it shares with the request."""

    def __init__(self, llm: Any, tokens: int) -> None:
        self.llm = llm
        self.tokens = max(1, tokens)

    def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
        llm = self.llm
        ids = [int(t) for t in input_ids]
        room = llm.n_ctx() - len(ids) - 1
        if room <= 0:
            return np.array([], dtype=np.intc)
        # Reuse the longest prefix already evaluated (the same logic as Llama.generate).
        known = llm.input_ids[: llm.n_tokens].tolist()
        keep = 0
        for a, b in zip(known, ids[:-1], strict=False):
            if a != b:
                break
            keep += 1
        if keep < llm.n_tokens:
            llm._ctx.kv_cache_seq_rm(-1, keep, -1)
            llm.n_tokens = keep
        llm.eval(ids[keep:])
        out: list[int] = []
        for _ in range(min(self.tokens, room)):
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
            token = int(np.argmax(logits))
            out.append(token)
            if llm.token_eos() == token:
                break
            llm.eval([token])
        return np.array(out, dtype=np.intc)


class DraftCounter(LlamaDraftModel):
    """Wraps a policy and counts drafted and accepted tokens, which llama-cpp-python does not.

    ``Llama.generate`` calls the draft model with the sequence it has verified so far plus the
    token it sampled last: so each call shows how the previous round ended (drafts that equal
    the tokens now at their positions were accepted; the first that differs was rejected and
    with it the rest of the round, as llama-server counts ``draft_n`` / ``draft_n_accepted``).
    The last round of a reply is settled by :meth:`finish` with the reply's length: every
    sampled token there but the last matched its draft (a mismatch would have started a new
    round); the last token's check is unknown, so it and the drafts after it are not counted.
    """

    def __init__(self, policy: LlamaDraftModel, n_ctx: int) -> None:
        self.policy = policy
        self.n_ctx = n_ctx
        self.start()

    def start(self) -> None:
        """A new reply."""
        start = getattr(self.policy, "start", None)
        if start is not None:
            start()
        self.drafted = 0
        self.accepted = 0
        self._pending: tuple[int, np.ndarray] | None = None

    def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
        ids = np.asarray(input_ids)
        self._settle(ids)
        drafts = np.asarray(self.policy(ids, **kwargs), dtype=np.intc)
        # Drafts must leave the context room: llama-cpp-python cuts them to
        # `n_ctx - n_tokens - 1` tokens, which turns negative (a slice from the end) once the
        # context is full, and its eval then writes past its logits array.
        drafts = drafts[: max(0, self.n_ctx - ids.shape[0] - 2)]
        self._pending = (ids.shape[0], drafts.copy()) if drafts.size else None
        return drafts

    def _record(self, drafted: int, accepted: int) -> None:
        self.drafted += drafted
        self.accepted += accepted
        feedback = getattr(self.policy, "feedback", None)
        if feedback is not None:
            feedback(drafted, accepted)

    def _settle(self, ids: np.ndarray) -> None:
        if self._pending is None:
            return
        at, drafts = self._pending
        self._pending = None
        seen = ids[at : at + drafts.size]
        matched = 0
        for a, b in zip(seen.tolist(), drafts.tolist(), strict=False):
            if a != b:
                break
            matched += 1
        self._record(int(drafts.size), matched)

    def finish(self, total_tokens: int) -> DraftStats:
        """The reply ended with ``total_tokens`` tokens (prompt + sampled): settle the last
        round and return the reply's counts."""
        if self._pending is not None:
            at, drafts = self._pending
            checked = max(0, min(int(drafts.size), total_tokens - 1 - at))
            self.drafted += checked
            self.accepted += checked
            self._pending = None
        return DraftStats(self.drafted, self.accepted)
