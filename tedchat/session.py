"""One turn of a conversation: messages -> engine -> meter -> (history) -> the caller.

The CLI, the TUI chat pane and every compare pane drive their turns through :func:`run_turn`,
so all of them measure, record and end answers the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tedchat.engine import (
    Done,
    Engine,
    Event,
    GenerationParams,
    Message,
    ReasoningDelta,
    TextDelta,
)
from tedchat.errors import EngineError
from tedchat.metrics import Clock, StreamMeter, StreamMetrics


class ReplyRecorder(Protocol):
    """Where a reply is saved while it streams (the history store's reply writer)."""

    def append(self, text: str) -> None: ...

    def finish(self, finish_reason: str, metrics: StreamMetrics) -> None: ...


@dataclass
class TurnResult:
    """What one turn produced. ``error`` is set when the engine failed; ``text`` is kept."""

    text: str
    reasoning: str
    metrics: StreamMetrics
    error: EngineError | None = None
    events: int = 0


@dataclass
class Turn:
    """A running turn: its meter and the text so far, readable while it streams."""

    engine: Engine
    messages: Sequence[Message]
    params: GenerationParams
    clock: Clock = time.perf_counter
    meter: StreamMeter = field(default_factory=StreamMeter)
    parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def metrics(self) -> StreamMetrics:
        return self.meter.snapshot(self.clock())


async def run_turn(
    turn: Turn,
    *,
    on_event: Callable[[Event, Turn], None] | None = None,
    recorder: ReplyRecorder | None = None,
) -> TurnResult:
    """Stream ``turn``'s answer to the end, metering every event on the turn's clock.

    Cancellation (the task is cancelled: Esc, Ctrl-C) ends the answer as ``cancelled`` and is
    re-raised; an :class:`EngineError` ends it as ``error`` and is returned with the partial
    text. Either way the recorder is finalised, so nothing received is lost.
    """
    meter, clock = turn.meter, turn.clock
    events = turn.engine.stream(turn.messages, turn.params)
    meter.start(clock())
    count = 0
    error: EngineError | None = None
    try:
        async for event in events:
            now = clock()
            count += 1
            meter.observe(event, now)
            if isinstance(event, TextDelta) and event.text:
                turn.parts.append(event.text)
                if recorder is not None:
                    recorder.append(event.text)
            elif isinstance(event, ReasoningDelta):
                turn.reasoning_parts.append(event.text)
            if on_event is not None:
                on_event(event, turn)
            if isinstance(event, Done):
                break
    except (asyncio.CancelledError, KeyboardInterrupt):
        meter.finish("cancelled", clock())
        if recorder is not None:
            recorder.finish("cancelled", meter.snapshot())
        raise
    except EngineError as exc:
        error = exc
        meter.finish("error", clock())
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await asyncio.shield(aclose())
    if meter.finish_reason is None:  # an engine that ended without Done
        meter.finish("stop", clock())
    metrics = meter.snapshot()
    if recorder is not None:
        recorder.finish(metrics.finish_reason or "stop", metrics)
    return TurnResult(turn.text, "".join(turn.reasoning_parts), metrics, error, count)
