"""The one definition of tedchat's speed figures, used by the TUI, ``ask --json`` and ``bench``.

- **TTFT**: from the moment the request is handed to the engine (:meth:`StreamMeter.start`) to
  the first non-empty *answer* text delta. Reasoning has its own figure, time to first
  reasoning token.
- **Output tokens/s**: ``(n_tokens - 1) / (t_last_token - t_first_token)``, i.e. 1/TPOT (the
  vLLM and Artificial Analysis convention), timed on the client's own clock.
- **With tools** (a turn of several model steps): TTFT runs to the first answer text *or tool-call*
  delta of the first step; n_tokens adds up every step's tokens (model tokens only), and the
  time tools ran is taken out of the tokens/s span and reported apart as ``tool_s``.
- **n_tokens**, in order of trust: the engine's or server's own count (a :class:`Usage`
  event), a tokenizer for that model (:meth:`StreamMeter.set_tokenizer_count`), the token
  counts the engine put on its deltas, and only then the number of text chunks, which is
  marked approximate (shown with ``~``).

The meter never reads a clock itself: every event comes with its time, so tests drive it with
synthetic timelines and the live figures are exactly the final ones computed so far.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tedchat.engine import (
    Done,
    EmulatedTimings,
    Event,
    ReasoningDelta,
    TextDelta,
    Timings,
    ToolCallDelta,
    Usage,
)

Clock = Callable[[], float]
"""A clock: seconds as a float from some fixed origin (``time.perf_counter``, ``time.monotonic``,
``time.time`` or a test's fake). Whoever times something takes one, so tests can drive it."""

# Where an output token count came from, most trusted first.
COUNT_SOURCES = ("engine", "server", "tokenizer", "deltas", "chunks")


@dataclass(frozen=True)
class StreamMetrics:
    """A snapshot of one answer's figures (live while streaming, final after ``Done``)."""

    ttft_s: float | None
    output_tokens: int
    output_tokens_source: str
    output_tokens_per_s: float | None
    elapsed_s: float | None
    prompt_tokens: int | None
    time_to_first_reasoning_s: float | None
    reasoning_tokens: int
    finish_reason: str | None
    timings: dict[str, float] = field(default_factory=dict)
    emulated: EmulatedTimings | None = None
    #: Seconds tools ran during the turn (not part of TTFT's or tokens/s's model time).
    tool_s: float = 0.0
    #: Model steps in the turn (1 without tool calls).
    steps: int = 1
    #: Seconds the answer was computed before compare's race start (a prepared pane; None:
    #: it ran live). Not part of TTFT or tokens/s, which count from the race start.
    prepare_s: float | None = None

    @property
    def approximate(self) -> bool:
        """True when the token count is a count of text chunks, not of tokens."""
        return self.output_tokens_source == "chunks"

    def tokens_label(self) -> str:
        """The token count as shown to people: ``~`` marks an approximate one."""
        return f"{'~' if self.approximate else ''}{self.output_tokens}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures, with the names ``ask --json`` and ``bench`` use."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "output_tokens_source": self.output_tokens_source,
            "ttft_s": self.ttft_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "elapsed_s": self.elapsed_s,
            "time_to_first_reasoning_s": self.time_to_first_reasoning_s,
            "reasoning_tokens": self.reasoning_tokens,
            "finish_reason": self.finish_reason,
            "timings": dict(self.timings),
            "tool_s": self.tool_s,
            "steps": self.steps,
        }


class StreamMeter:
    """Measures one answer from a stream of timestamped events."""

    def __init__(self) -> None:
        self.t_start: float | None = None
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.t_first_reasoning: float | None = None
        self.t_end: float | None = None
        self.chunks = 0
        self.delta_tokens = 0
        self.deltas_all_counted = True
        self.reasoning_chunks = 0
        self.reasoning_tokens = 0
        self.usage_output: int | None = None
        self.usage_prompt: int | None = None
        self.usage_source: str | None = None
        self.tokenizer_count: int | None = None
        self.timings: dict[str, float] = {}
        self.emulated: EmulatedTimings | None = None
        self.finish_reason: str | None = None
        # Tool calls between model steps: the finished steps' counts and the tools' intervals.
        self.steps = 1
        self.earlier_output = 0
        self.tool_intervals: list[tuple[float, float]] = []
        self._tool_start: float | None = None

    def start(self, t: float) -> None:
        """The request was handed to the engine at time ``t``."""
        self.t_start = t

    def observe(self, event: Event, t: float) -> None:
        """Account for ``event``, which arrived at time ``t``."""
        if isinstance(event, TextDelta):
            if not event.text:
                return
            if self.t_first is None:
                self.t_first = t
            self.t_last = t
            self.chunks += 1
            if event.tokens is None:
                self.deltas_all_counted = False
            else:
                self.delta_tokens += event.tokens
        elif isinstance(event, ToolCallDelta):
            # The model is answering (with a call): it counts for TTFT and the token span.
            if self.t_first is None:
                self.t_first = t
            self.t_last = t
            self.chunks += 1
            self.deltas_all_counted = False
        elif isinstance(event, ReasoningDelta):
            if not event.text:
                return
            if self.t_first_reasoning is None:
                self.t_first_reasoning = t
            self.reasoning_chunks += 1
            self.reasoning_tokens += event.tokens if event.tokens is not None else 1
        elif isinstance(event, Usage):
            if event.output_tokens is not None:
                self.usage_output = event.output_tokens
                self.usage_source = event.source
            if event.prompt_tokens is not None:
                self.usage_prompt = event.prompt_tokens
        elif isinstance(event, Timings):
            self.timings.update(event.figures)
        elif isinstance(event, EmulatedTimings):
            self.emulated = event
        elif isinstance(event, Done):
            self.finish_reason = event.finish_reason
            self.t_end = t

    def tool_started(self, t: float) -> None:
        """The step's tool calls began running at ``t`` (model time stops)."""
        self._tool_start = t

    def tool_finished(self, t: float) -> None:
        """The tool calls begun at :meth:`tool_started` ended at ``t``."""
        if self._tool_start is not None:
            self.tool_intervals.append((self._tool_start, t))
            self._tool_start = None

    def next_step(self) -> None:
        """The model is asked again (with tool results): keep this step's token counts and
        count the next step's on top of them."""
        self.earlier_output += self.usage_output or 0
        self.usage_output = None
        self.steps += 1

    @property
    def tool_s(self) -> float:
        """Seconds tools ran in this turn."""
        return sum(end - start for start, end in self.tool_intervals)

    def finish(self, reason: str, t: float) -> None:
        """End the measurement without a ``Done`` event (cancelled, error)."""
        if self.finish_reason is None:
            self.finish_reason = reason
            self.t_end = t

    def set_tokenizer_count(self, n: int) -> None:
        """Output tokens counted by a tokenizer for the model (trusted below usage)."""
        self.tokenizer_count = n

    def output_tokens(self) -> tuple[int, str]:
        """The output token count and where it came from (see :data:`COUNT_SOURCES`)."""
        if self.usage_output is not None:
            return self.earlier_output + self.usage_output, self.usage_source or "engine"
        if self.tokenizer_count is not None:
            return self.tokenizer_count, "tokenizer"
        if self.chunks and self.deltas_all_counted:
            return self.delta_tokens, "deltas"
        return self.chunks, "chunks"

    def snapshot(self, now: float | None = None) -> StreamMetrics:
        """The figures so far. ``now`` (the caller's clock) gives the live elapsed time."""
        n, source = self.output_tokens()
        ttft = None
        if self.t_first is not None and self.t_start is not None:
            ttft = self.t_first - self.t_start
        tps = None
        if self.t_first is not None and self.t_last is not None and n > 1:
            span = self.t_last - self.t_first - self._tool_time_within(self.t_first, self.t_last)
            if span > 0:
                tps = (n - 1) / span
        first_reasoning = None
        if self.t_first_reasoning is not None and self.t_start is not None:
            first_reasoning = self.t_first_reasoning - self.t_start
        end = self.t_end if self.t_end is not None else now
        elapsed = None if end is None or self.t_start is None else end - self.t_start
        return StreamMetrics(
            ttft_s=ttft,
            output_tokens=n,
            output_tokens_source=source,
            output_tokens_per_s=tps,
            elapsed_s=elapsed,
            prompt_tokens=self.usage_prompt,
            time_to_first_reasoning_s=first_reasoning,
            reasoning_tokens=self.reasoning_tokens,
            finish_reason=self.finish_reason,
            timings=dict(self.timings),
            emulated=self.emulated,
            tool_s=self.tool_s,
            steps=self.steps,
        )

    def _tool_time_within(self, start: float, end: float) -> float:
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.tool_intervals)


def prompt_and_draft_parts(timings: Mapping[str, float]) -> list[str]:
    """What the engine or server measured of the prompt and of speculation, when it said:
    prompt tokens/s, prompt tokens served from its cache, draft acceptance (``Timings`` names:
    ``prompt_eval_tokens_per_s``, ``cached_prompt_tokens``, ``draft_tokens``,
    ``draft_accepted_tokens``)."""
    parts = []
    rate = timings.get("prompt_eval_tokens_per_s")
    if rate:
        parts.append(f"prompt {rate:.0f} tok/s")
    cached = timings.get("cached_prompt_tokens")
    if cached:
        parts.append(f"{cached:.0f} cached")
    drafted = timings.get("draft_tokens")
    if drafted:
        accepted = timings.get("draft_accepted_tokens", 0.0)
        parts.append(f"draft {accepted:.0f}/{drafted:.0f} accepted ({accepted / drafted:.0%})")
    return parts


def format_metrics_line(m: StreamMetrics) -> str:
    """The one-line summary ``ask`` prints to stderr and the status bar shows."""
    parts = []
    parts.append(f"TTFT {m.ttft_s * 1000:.0f} ms" if m.ttft_s is not None else "TTFT -")
    tps = f"{m.output_tokens_per_s:.1f}" if m.output_tokens_per_s is not None else "-"
    parts.append(f"{'~' if m.approximate else ''}{tps} tok/s")
    parts.append(f"{m.tokens_label()} tokens")
    parts += prompt_and_draft_parts(m.timings)
    if m.steps > 1 or m.tool_s:
        parts.append(f"tools {m.tool_s:.2f} s in {m.steps} steps")
    if m.finish_reason and m.finish_reason != "stop":
        parts.append(m.finish_reason)
    line = " · ".join(parts)
    if m.emulated is not None:
        e = m.emulated
        label = f"{e.systems}x {e.hardware}"
        if e.timing_target:
            # Timed as the target, while the text came from another (stand-in) model.
            label += f" as {e.timing_target} (stand-in text)"
        kind = "replay" if e.replay else "emulated"
        line += (
            f" | {kind} {label}: TTFT {e.ttft_s * 1000:.1f} ms · {e.output_tokens_per_s:.0f} tok/s"
        )
        if e.speculative:
            line += " · " + speculative_part(e.speculative)
    return line


def speculative_part(spec: Mapping[str, Any]) -> str:
    """The emulated speculation in a few words: 'prompt-lookup k=4: 35/44 accepted (80%),
    3.9 tok/step' (with the assumed acceptance, when the clock used one)."""
    part = f"{spec.get('mode')} k={spec.get('draft_tokens')}"
    rate = spec.get("acceptance_rate")
    if rate is not None:
        part += f": {spec.get('accepted')}/{spec.get('drafted')} accepted ({rate:.0%})"
    per_step = spec.get("tokens_per_step")
    if per_step:
        part += f", {per_step:.1f} tok/step"
    assumed = spec.get("assumed_acceptance")
    if assumed is not None:
        part += f"; clock at assumed acceptance {assumed:g}"
    return part
