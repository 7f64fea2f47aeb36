"""Discrete-event scheduler of sequences through pipeline stages: the emulated timeline.

The pipeline has one stage per system. A sequence-step (a prompt prefill, or one decode token)
visits the stages in order; a stage serves one step at a time; a sequence is in at most one
stage at a time, so while sequence A is on stage 2, sequence B can be on stage 1. With several
sequences in flight every stage stays busy, so aggregate throughput grows with the number of
sequences while each sequence's own speed holds.

The scheduler knows nothing of hardware and imports no cost model: it is given callables for
step and link durations (the timing model, :mod:`tedchat.wafer.timing`, is the one place that
says what a step costs; :meth:`tedchat.wafer.timing.TimingModel.scheduler` builds a scheduler
charged with its costs). It is pure: no clocks, threads or sleeping; times are emulated seconds.

Use by an engine that decodes real tokens (event-driven)::

    sched = timing_model.scheduler()
    for sid in ids:
        sched.add_sequence(sid, arrival=0.0)
    prefill every sequence:      sched.step(sid, "prefill", n_prompt, n_prompt)
    then, while any is active:
        sid = sched.next_ready(active)            # earliest ready; ties round-robin
        token = numerics.decode(sid)              # the real NumPy forward pass
        rec = sched.step(sid, "decode", 1, ctx)   # rec.emit = emulated time of that token

Stages serve steps in the order :meth:`PipelineScheduler.step` is called (FIFO), each step
reserving its stages when submitted; calling it in :meth:`~PipelineScheduler.next_ready` order
gives the faithful timeline. :func:`simulate` is that loop for a fixed token count, for
planning, benchmarks and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

#: A prompt prefill (several tokens streamed through) or one decode token.
StepKind = Literal["prefill", "decode"]


@dataclass(frozen=True)
class StepCost:
    """Duration of one sequence-step on one stage.

    ``busy`` is how long the stage is occupied. ``fill`` is how long one token takes to cross
    the stage: a prefill streams its tokens, so the next stage can start after ``fill`` and
    finishes at least ``fill`` after this one does. For a single-token step ``fill == busy``.
    """

    busy: float
    fill: float

    def __post_init__(self) -> None:
        if self.busy < 0 or self.fill < 0 or self.fill > self.busy + 1e-15:
            raise ValueError(f"need 0 <= fill <= busy, got busy={self.busy} fill={self.fill}")


#: ``(stage, kind, n_tokens, context_len) -> seconds or StepCost``.
StepTimeFn = Callable[[int, StepKind, int, int], "float | StepCost"]
#: ``(from_stage, n_tokens) -> seconds`` for activations to reach stage ``from_stage + 1``.
LinkTimeFn = Callable[[int, int], float]


@dataclass(frozen=True)
class StepRecord:
    """One scheduled sequence-step: when it held each stage and when its token was emitted."""

    seq_id: Hashable
    kind: StepKind
    n_tokens: int
    context_len: int
    stages: tuple[tuple[float, float], ...]  # (start, end) on each stage

    @property
    def start(self) -> float:
        """When the step entered the first stage."""
        return self.stages[0][0]

    @property
    def emit(self) -> float:
        """When the step's token left the last stage (its emulated emit time)."""
        return self.stages[-1][1]


class PipelineScheduler:
    """Sequences interleaving through ``n_stages`` stages (see the module docstring).

    Args:
        n_stages: number of stages (systems).
        step_time: duration of a step on a stage, ``(stage, kind, n_tokens, context_len)``;
            a float means a non-streaming step (``fill == busy``).
        link_time: ``(from_stage, n_tokens)`` seconds for activations to reach the next stage
            (None: no link cost).
        return_time: seconds from the last stage's emit until the sequence's next step can
            enter the first stage (the sampled token travelling back).
    """

    def __init__(
        self,
        n_stages: int,
        step_time: StepTimeFn,
        link_time: LinkTimeFn | None = None,
        return_time: float = 0.0,
    ) -> None:
        if n_stages < 1:
            raise ValueError("a pipeline needs at least one stage")
        self.n_stages = n_stages
        self._step_time = step_time
        self._link_time = link_time
        self._return_time = return_time
        self._stage_free = [0.0] * n_stages
        self._ready: dict[Hashable, float] = {}
        self._served: dict[Hashable, int] = {}
        self._order: dict[Hashable, int] = {}
        self._counter = 0
        self.records: list[StepRecord] = []

    def add_sequence(self, seq_id: Hashable, arrival: float = 0.0) -> None:
        """Register a sequence that can start its first step at ``arrival``."""
        if seq_id in self._ready:
            raise ValueError(f"sequence {seq_id!r} already added")
        self._ready[seq_id] = arrival
        self._served[seq_id] = -1
        self._order[seq_id] = len(self._order)

    def next_ready(self, seq_ids: Iterable[Hashable] | None = None) -> Hashable:
        """The sequence (of ``seq_ids``, default all) whose next step can start first.

        Ties go to the one served least recently, then to the one added first: round-robin.
        """
        candidates = list(self._ready if seq_ids is None else seq_ids)
        if not candidates:
            raise ValueError("no sequences to choose from")
        return min(candidates, key=lambda s: (self._ready[s], self._served[s], self._order[s]))

    def wait(self, seq_id: Hashable, seconds: float) -> None:
        """Hold ``seq_id``'s next step back by ``seconds`` of work done off the stages (a
        speculative draft model decoding beside them); other sequences' steps are not held."""
        if seconds < 0:
            raise ValueError("cannot wait a negative time")
        self._ready[seq_id] += seconds

    def step(
        self, seq_id: Hashable, kind: StepKind, n_tokens: int = 1, context_len: int = 1
    ) -> StepRecord:
        """Schedule ``seq_id``'s next step through every stage; returns its record.

        Each stage starts the step when the first token arrives and the stage is free, and
        ends no earlier than its busy time after starting nor its fill time after the last
        token arrives from the stage before.
        """
        if seq_id not in self._ready:
            raise KeyError(f"unknown sequence {seq_id!r}: call add_sequence first")
        spans: list[tuple[float, float]] = []
        first_in = last_in = self._ready[seq_id]
        for s in range(self.n_stages):
            cost = self._cost(s, kind, n_tokens, context_len)
            start = max(first_in, self._stage_free[s])
            end = max(start + cost.busy, last_in + cost.fill)
            self._stage_free[s] = end
            spans.append((start, end))
            if s < self.n_stages - 1:
                link = self._link_time(s, 1) if self._link_time else 0.0
                first_in, last_in = start + cost.fill + link, end + link
        record = StepRecord(seq_id, kind, n_tokens, context_len, tuple(spans))
        self._ready[seq_id] = record.emit + self._return_time
        self._served[seq_id] = self._counter
        self._counter += 1
        self.records.append(record)
        return record

    def _cost(self, stage: int, kind: StepKind, n_tokens: int, context_len: int) -> StepCost:
        value = self._step_time(stage, kind, n_tokens, context_len)
        if isinstance(value, StepCost):
            return value
        return StepCost(busy=float(value), fill=float(value))


@dataclass(frozen=True)
class SequenceRequest:
    """A sequence for :func:`simulate`: ``output_tokens`` tokens after an optional prompt.

    With a prompt, the prefill emits the first token and ``output_tokens - 1`` decode steps
    follow; without one, every token is a decode step starting at context 1.
    """

    seq_id: Hashable
    output_tokens: int
    prompt_tokens: int = 0
    arrival: float = 0.0


@dataclass
class SequenceTimeline:
    """Emulated emit times of one sequence's tokens."""

    seq_id: Hashable
    arrival: float
    emits: list[float] = field(default_factory=list)

    @property
    def ttft(self) -> float:
        """From arrival to the first token."""
        return self.emits[0] - self.arrival

    @property
    def tokens_per_s(self) -> float:
        """(n - 1) / (last - first): the project's output-speed definition."""
        if len(self.emits) < 2:
            return 0.0
        return (len(self.emits) - 1) / (self.emits[-1] - self.emits[0])


@dataclass
class Timeline:
    """The emulated timeline of several sequences sharing a pipeline."""

    sequences: dict[Hashable, SequenceTimeline]
    records: list[StepRecord]

    @property
    def makespan(self) -> float:
        """From the first arrival to the last token."""
        start = min(t.arrival for t in self.sequences.values())
        return max(t.emits[-1] for t in self.sequences.values()) - start

    @property
    def total_tokens(self) -> int:
        """Tokens emitted by all sequences."""
        return sum(len(t.emits) for t in self.sequences.values())

    @property
    def aggregate_tokens_per_s(self) -> float:
        """All sequences' tokens over the makespan."""
        return self.total_tokens / self.makespan


def simulate(scheduler: PipelineScheduler, requests: Sequence[SequenceRequest]) -> Timeline:
    """Run ``requests`` to completion on ``scheduler``, always stepping the next-ready sequence."""
    lines: dict[Hashable, SequenceTimeline] = {}
    context: dict[Hashable, int] = {}
    wanted: dict[Hashable, SequenceRequest] = {}
    for req in requests:
        if req.output_tokens < 1:
            raise ValueError(f"sequence {req.seq_id!r}: output_tokens must be at least 1")
        scheduler.add_sequence(req.seq_id, req.arrival)
        lines[req.seq_id] = SequenceTimeline(req.seq_id, req.arrival)
        context[req.seq_id] = req.prompt_tokens
        wanted[req.seq_id] = req
    first_record = len(scheduler.records)
    active = [r.seq_id for r in requests]
    while active:
        sid = scheduler.next_ready(active)
        req, line = wanted[sid], lines[sid]
        if not line.emits and req.prompt_tokens > 0:
            record = scheduler.step(sid, "prefill", req.prompt_tokens, req.prompt_tokens)
        else:
            context[sid] += 1
            record = scheduler.step(sid, "decode", 1, context[sid])
        line.emits.append(record.emit)
        if len(line.emits) >= req.output_tokens:
            active.remove(sid)
    return Timeline(lines, scheduler.records[first_record:])
