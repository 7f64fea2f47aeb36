"""Compare's race start: slow-to-make panes prepared first, then every pane starts at once.

A paced engine releases each token at its emulated time. When that hardware streams faster
than this machine can make the text (the wafer-70b pane: ~435 tokens/s emulated, a few
tokens/s here), pacing it live would only show this machine's speed. Such a pane *prepares*
first: its answer is computed as fast as possible (:mod:`tedchat.replay`, the record/replay
path), and then played on its own clock. Then every pane starts on one wall-clock instant, the
race start: prepared panes play from it, live engines get their request at it (never during
the CPU-bound preparation), and every TTFT and tokens/s counts from it. How long a pane took
to prepare is its own figure, ``prepare_s`` (shown in the pane, stored with the reply's
metrics), never part of TTFT.

Modes (``tedchat compare``): ``auto`` (the default) prepares a pane when its engine declares
``pace`` (:class:`~tedchat.engine.Paced`), paces live, and its emulated tokens/s is above
this machine's measured tokens/s for its model (or that is not measured); ``replay``
(``--replay``) prepares every pane; ``live`` (``--live``) prepares none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from tedchat.engine import Engine, GenerationParams, Message, as_paced, capabilities_of
from tedchat.metrics import StreamMetrics
from tedchat.replay import ReplayEngine, ReplayStart
from tedchat.session import ReplyRecorder
from tedchat.tools.base import ToolCallRecord

Mode = Literal["auto", "replay", "live"]
MODES: tuple[Mode, ...] = ("auto", "replay", "live")


def needs_preparing(engine: Engine, mode: Mode) -> bool:
    """Does ``engine``'s pane prepare before the race start in ``mode``? (call after load)"""
    if mode == "live":
        return False
    if mode == "replay":
        return True
    if not capabilities_of(engine).pace:
        return False
    speeds = as_paced(engine).pace_speeds()
    if not speeds.paced:
        return False
    host = speeds.host_tokens_per_s
    return host is None or speeds.emulated_tokens_per_s > host


@dataclass
class Entrant:
    """One pane in the race: the engine it streams from (the source itself, or a replay of it
    once prepared) and, for a prepared pane, its progress and preparation time."""

    source: Engine
    prepares: bool
    engine: Engine
    tokens: int = 0  # output tokens made so far while preparing
    prepare_s: float | None = None
    prepared: bool = False

    def progress(self, tokens: int) -> None:  # from the engine's thread: one int assignment
        self.tokens = tokens


class Race:
    """The panes of one compare prompt, prepared as needed, then started together."""

    def __init__(
        self,
        engines: Sequence[Engine],
        mode: Mode,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mode = mode
        self.clock = clock
        self.start = ReplayStart(clock)  # set by the first prepared pane to play
        self.entrants = []
        for engine in engines:
            prepares = needs_preparing(engine, mode)
            shown = ReplayEngine(engine, self.start) if prepares else engine
            self.entrants.append(Entrant(engine, prepares, shown))

    @property
    def prepares(self) -> bool:
        return any(e.prepares for e in self.entrants)

    async def prepare(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> list[BaseException | None]:
        """Compute every preparing pane's answer (together); each outcome, None when done.

        Cancelling this (Esc) cancels every preparation still running."""

        async def one(entrant: Entrant) -> None:
            if not entrant.prepares:
                return
            assert isinstance(entrant.engine, ReplayEngine)
            t0 = self.clock()
            await entrant.engine.prepare(messages, params, entrant.progress)
            entrant.prepare_s = self.clock() - t0
            entrant.prepared = True

        outcomes = await asyncio.gather(*(one(e) for e in self.entrants), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
        return [o if isinstance(o, BaseException) else None for o in outcomes]


class PreparedRecorder:
    """A reply recorder that stores the pane's ``prepare_s`` with the reply's final metrics
    (in the metrics JSON beside the other figures)."""

    def __init__(self, inner: ReplyRecorder, prepare_s: float) -> None:
        self.inner = inner
        self.prepare_s = prepare_s

    def append(self, text: str) -> None:
        self.inner.append(text)

    def tool_call(self, record: ToolCallRecord) -> None:
        self.inner.tool_call(record)

    def finish(self, finish_reason: str, metrics: StreamMetrics) -> None:
        self.inner.finish(finish_reason, replace(metrics, prepare_s=self.prepare_s))
