"""The engine contract's own parts: the shared helper for blocking engines (events cross
threads, cancellation stops work) and declared capabilities."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tedchat.engine import (
    NO_CAPABILITIES,
    Capabilities,
    Done,
    Runtime,
    TextDelta,
    as_cache_resetting,
    as_floorplan,
    as_model_lister,
    as_recorder,
    as_token_ids,
    capabilities_of,
    declaration_problems,
    stream_from_thread,
)
from tedchat.errors import EngineError, EngineUnavailable


async def test_events_arrive_in_order_and_end() -> None:
    def produce(should_stop):
        for i in range(100):
            yield TextDelta(str(i), tokens=1)
        yield Done("stop")

    events = [e async for e in stream_from_thread(produce)]
    assert [e.text for e in events[:-1]] == [str(i) for i in range(100)]
    assert events[-1] == Done("stop")


async def test_closing_the_stream_stops_the_worker_between_tokens() -> None:
    stopped = threading.Event()
    produced = []

    def produce(should_stop):
        try:
            for i in range(10_000):
                if should_stop():
                    return
                produced.append(i)
                time.sleep(0.001)
                yield TextDelta("x", tokens=1)
        finally:  # runs whether the producer saw should_stop or was closed between tokens
            stopped.set()

    stream = stream_from_thread(produce)
    got = 0
    async for _ in stream:
        got += 1
        if got == 5:
            break
    await stream.aclose()
    assert await asyncio.to_thread(stopped.wait, 5.0)
    assert len(produced) < 1000


async def test_worker_errors_become_engine_errors() -> None:
    def produce(should_stop):
        yield TextDelta("partial")
        raise RuntimeError("boom")

    received = []
    with pytest.raises(EngineError, match="boom"):
        async for event in stream_from_thread(produce, name="demo"):
            received.append(event)
    assert received == [TextDelta("partial")]


# --- declared capabilities -------------------------------------------------------------------


class _Plain:
    """An engine from a plugin older than capabilities: it declares nothing."""

    name, type, model, local = "old", "plain", "m", False

    async def record(self, messages, params):  # present, but never declared
        return []


def test_an_engine_without_capabilities_offers_nothing_optional() -> None:
    engine = _Plain()
    assert capabilities_of(engine) == Capabilities() == NO_CAPABILITIES
    with pytest.raises(
        EngineUnavailable, match=r"engine 'old' \(type plain\) does not offer record"
    ):
        as_recorder(engine)  # type: ignore[arg-type]
    assert declaration_problems(engine) == [
        "missing method load()",
        "missing method stream()",
        "missing method status()",
        "missing method describe()",
        "missing method close()",
        "has record but does not declare record in its capabilities",
    ]


def test_accessors_hand_out_what_is_declared() -> None:
    engine = _Plain()
    engine.capabilities = Capabilities(record=True)  # type: ignore[attr-defined]
    assert as_recorder(engine) is engine  # type: ignore[arg-type]
    for accessor in (as_floorplan, as_model_lister, as_cache_resetting, as_token_ids):
        with pytest.raises(EngineUnavailable, match="its capabilities do not declare it"):
            accessor(engine)  # type: ignore[arg-type]


async def test_a_replay_keeps_only_the_context_size_of_its_source() -> None:
    from tedchat.replay import ReplayEngine
    from tests.contract.parrot import ParrotEngine

    source = ParrotEngine("p", {}, Runtime(threads=1))
    source.capabilities = Capabilities(record=False, list_models=False, context_size=321)
    replay = ReplayEngine(source)
    assert replay.capabilities == Capabilities(context_size=321)
    assert declaration_problems(replay) == []
