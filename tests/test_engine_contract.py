"""The shared helper for blocking engines: events cross threads, cancellation stops work."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tedchat.engine import Done, TextDelta, stream_from_thread
from tedchat.errors import EngineError


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
