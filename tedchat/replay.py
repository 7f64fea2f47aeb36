"""Replays: answers computed first, then played from a common start on their own clocks.

When emulated hardware streams faster than this machine can make the text, live pacing is
impossible; a replay computes every answer first and then plays them side by side, each token
at its emulated time, so the panes show what the hardware would have looked like. Engines with
an emulated clock declare ``capabilities.record`` and provide
``record(messages, params) -> [(seconds, event), ...]`` (:class:`tedchat.engine.Recorder`);
any other engine is recorded on the wall clock as it streams. Replayed emulated figures are labelled
``replay``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from tedchat.engine import (
    Capabilities,
    EmulatedTimings,
    Engine,
    EngineStatus,
    Event,
    GenerationParams,
    Message,
    TextDelta,
    as_recorder,
    capabilities_of,
)

Recording = list[tuple[float, Event]]


async def record(
    engine: Engine,
    messages: Sequence[Message],
    params: GenerationParams,
    progress: Callable[[int], None] | None = None,
) -> Recording:
    """The engine's whole answer with each event's time since the request; ``progress`` is
    told the output tokens made so far."""
    if capabilities_of(engine).record:
        return await as_recorder(engine).record(messages, params, progress)
    await engine.load()
    out: Recording = []
    t0 = time.monotonic()
    tokens = 0
    async for event in engine.stream(messages, params):
        out.append((time.monotonic() - t0, event))
        if progress is not None and isinstance(event, TextDelta) and event.text:
            tokens += event.tokens or 1
            progress(tokens)
    return out


class ReplayStart:
    """The common start of several replays: the first one to begin sets it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.t0: float | None = None

    def time(self) -> float:
        if self.t0 is None:
            self.t0 = self.clock()
        return self.t0


class ReplayEngine:
    """An engine that plays another engine's recorded answer (see the module docstring)."""

    def __init__(
        self,
        source: Engine,
        start: ReplayStart | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.source = source
        self.name, self.type, self.model = source.name, source.type, source.model
        self.local = source.local
        # A replay only plays: of the source's features it keeps the context size.
        self.capabilities = Capabilities(context_size=capabilities_of(source).context_size)
        self.start = start or ReplayStart()
        self.sleep = sleep
        self.recording: Recording | None = None

    async def prepare(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Compute the answer now, so that playing it later costs nothing."""
        self.recording = await record(self.source, messages, params, progress)

    async def load(self, progress: Any = None) -> None:
        await self.source.load(progress)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        if self.recording is None:
            await self.prepare(messages, params)
        assert self.recording is not None
        t0 = self.start.time()
        for t, event in self.recording:
            wait = t0 + t - self.start.clock()
            if wait > 0:
                await self.sleep(wait)
            if isinstance(event, EmulatedTimings):
                event = dataclasses.replace(event, replay=True)
            yield event

    async def status(self) -> EngineStatus:
        return await self.source.status()

    def describe(self) -> dict[str, Any]:
        return {**self.source.describe(), "replay": True}

    async def close(self) -> None:
        await self.source.close()


async def prepare_replays(
    engines: Sequence[Engine], messages: Sequence[Message], params: GenerationParams
) -> list[ReplayEngine]:
    """Replays of ``engines`` sharing one start, every answer computed before any plays."""
    start = ReplayStart()
    replays = [ReplayEngine(e, start) for e in engines]
    for replay in replays:  # one after another: local engines share the cores
        await replay.prepare(messages, params)
    return replays
