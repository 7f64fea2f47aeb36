"""A well-behaved engine for testing the contract suite, and copies broken in one way each.

``ParrotEngine`` answers with the prompt's words and ``#<seed>``, one word a token, a few
milliseconds apart, so two streams at once really interleave. It keeps an ``api_key`` (the
suite plants its secret there) and, with ``fail_after``, raises a ServerError after that many
words. Told to call a tool (``tool_choice`` a tool's name), it calls it with the first value
of each required parameter's ``enum``, the arguments in two pieces. Every broken copy below
changes exactly one thing, named by its ``RULE``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from tedchat.engine import (
    Capabilities,
    Done,
    EngineStatus,
    Event,
    GenerationParams,
    Message,
    Runtime,
    TextDelta,
    Timings,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from tedchat.errors import ServerError


class ParrotEngine:
    type = "parrot"
    local = False

    def __init__(self, name: str, settings: dict[str, Any], runtime: Runtime) -> None:
        self.name = name
        self.model = "parrot-1"
        self.settings = {"api_key": "", "fail_after": 0, "delay": 0.005, **settings}
        self.runtime = runtime
        self.capabilities = Capabilities(context_size=512, tools=True)

    async def load(self, progress: Any = None) -> None:
        pass

    def words(self, messages: Sequence[Message], params: GenerationParams) -> list[str]:
        words = [*messages[-1].content.split(), f"#{params.seed}"]
        return words[: params.max_tokens]

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        forced = self.forced(params)
        if forced is not None:
            for event in self.call(forced.name, forced.parameters):
                await asyncio.sleep(self.settings["delay"])
                yield event
            return
        words = self.words(messages, params)
        t0 = time.monotonic()
        for i, word in enumerate(words):
            await asyncio.sleep(self.settings["delay"])
            if self.settings["fail_after"] and i == self.settings["fail_after"]:
                raise self.failure(i)
            yield TextDelta(word if i == 0 else " " + word, tokens=1)
        for event in self.ending(messages, words, params, time.monotonic() - t0):
            yield event

    def failure(self, words: int) -> Exception:
        return ServerError(f"the parrot flew off after {words} words")

    @staticmethod
    def forced(params: GenerationParams) -> ToolSpec | None:
        """The tool ``params`` tell the parrot to call, if any."""
        return next((t for t in params.tools if t.name == params.tool_choice), None)

    def call(self, name: str, schema: Any) -> list[Event]:
        arguments = json.dumps(
            {key: schema["properties"][key]["enum"][0] for key in schema.get("required", [])}
        )
        half = len(arguments) // 2
        return [
            ToolCallDelta(0, "call_parrot", name, arguments[:half]),
            ToolCallDelta(0, arguments=arguments[half:]),
            Done("tool_calls"),
        ]

    def ending(
        self,
        messages: Sequence[Message],
        words: list[str],
        params: GenerationParams,
        seconds: float,
    ) -> list[Event]:
        return [
            Usage(prompt_tokens=len(messages[-1].content.split()), output_tokens=len(words)),
            Timings({"eval_s": seconds, "eval_tokens": float(len(words))}),
            Done("length" if len(words) >= params.max_tokens else "stop"),
        ]

    async def status(self) -> EngineStatus:
        return EngineStatus(True, "ready")

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "model": self.model,
            "api_key": "***" if self.settings["api_key"] else "",
            "delay": self.settings["delay"],
        }

    async def close(self) -> None:
        pass


# --- declaration ---------------------------------------------------------------------------


class UndeclaredMember(ParrotEngine):
    RULE = "declaration"

    async def list_models(self) -> list[dict[str, Any]]:  # present, but not declared
        return [{"id": self.model}]


class DeclaredWithoutMember(ParrotEngine):
    RULE = "declaration"

    def __init__(self, name: str, settings: dict[str, Any], runtime: Runtime) -> None:
        super().__init__(name, settings, runtime)
        self.capabilities = Capabilities(record=True, context_size=512)  # but no record()


# --- one-done ------------------------------------------------------------------------------


class TwoDones(ParrotEngine):
    RULE = "one-done"

    def ending(self, *args: Any) -> list[Event]:
        return [*super().ending(*args), Done("stop")]


class NoDone(ParrotEngine):
    RULE = "one-done"

    def ending(self, *args: Any) -> list[Event]:
        return super().ending(*args)[:-1]


class DoneNotLast(ParrotEngine):
    RULE = "one-done"

    def ending(self, *args: Any) -> list[Event]:
        usage, timings, done = super().ending(*args)
        return [usage, done, timings]


# --- counts --------------------------------------------------------------------------------


class UsageBelowDeltas(ParrotEngine):
    RULE = "counts"

    def ending(self, messages: Any, words: list[str], *args: Any) -> list[Event]:
        usage, *rest = super().ending(messages, words, *args)
        return [Usage(usage.prompt_tokens, len(words) - 1), *rest]  # type: ignore[union-attr]


class NegativeTiming(ParrotEngine):
    RULE = "counts"

    def ending(self, *args: Any) -> list[Event]:
        usage, _timings, done = super().ending(*args)
        return [usage, Timings({"eval_s": -0.5}), done]


class IgnoresMaxTokens(ParrotEngine):
    RULE = "counts"

    def words(self, messages: Sequence[Message], params: GenerationParams) -> list[str]:
        return [*messages[-1].content.split(), f"#{params.seed}"] * 8  # past max_tokens


# --- concurrency ---------------------------------------------------------------------------


class SharedState(ParrotEngine):
    """Keeps the answer being streamed on the engine, not on the stream: a second request
    overwrites the first one's."""

    RULE = "concurrency"

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        if self.forced(params) is not None:  # broken for text only
            async for event in super().stream(messages, params):
                yield event
            return
        self.current = self.words(messages, params)
        n = len(self.current)
        for i in range(n):
            await asyncio.sleep(self.settings["delay"])
            word = self.current[i % len(self.current)]
            yield TextDelta(word if i == 0 else " " + word, tokens=1)
        for event in self.ending(messages, self.current[:n], params, 0.0):
            yield event


# --- cancel --------------------------------------------------------------------------------


class _Worker:
    """A producer thread that ignores the consumer: it runs until ``halt`` (engine close)."""

    def __init__(self, compute: bool, lock: threading.Lock | None) -> None:
        self.halt = threading.Event()
        self.compute = compute
        self.lock = lock

    def run(self, words: list[str], loop: asyncio.AbstractEventLoop, out: asyncio.Queue) -> None:
        with self.lock or threading.Lock():
            for word in words:
                if self.halt.is_set():
                    return
                if self.compute:  # real work for each token, as a model does
                    digest = word.encode()
                    end = time.monotonic() + 0.03
                    while time.monotonic() < end:
                        digest = hashlib.sha256(digest).digest()
                else:
                    time.sleep(0.05)
                if not self.put(loop, out, word):
                    return
            self.put(loop, out, None)

    @staticmethod
    def put(loop: asyncio.AbstractEventLoop, out: asyncio.Queue, item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(out.put_nowait, item)
        except RuntimeError:  # the test's event loop is gone
            return False
        return True


class _ThreadedParrot(ParrotEngine):
    COMPUTE = True
    LOCKED = False

    def __init__(self, name: str, settings: dict[str, Any], runtime: Runtime) -> None:
        super().__init__(name, settings, runtime)
        self.workers: list[_Worker] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock() if self.LOCKED else None

    def words(self, messages: Sequence[Message], params: GenerationParams) -> list[str]:
        words = [*messages[-1].content.split(), f"#{params.seed}"]
        return (words * 200)[: params.max_tokens]  # long enough to outlast the idle limit

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        if self.forced(params) is not None:  # broken for text only
            async for event in super().stream(messages, params):
                yield event
            return
        words = self.words(messages, params)
        worker = _Worker(self.COMPUTE, self.lock)
        self.workers.append(worker)
        out: asyncio.Queue[str | None] = asyncio.Queue()
        thread = threading.Thread(
            target=worker.run, args=(words, asyncio.get_running_loop(), out), daemon=True
        )
        self.threads.append(thread)
        thread.start()
        i = 0
        while (word := await out.get()) is not None:
            yield TextDelta(word if i == 0 else " " + word, tokens=1)
            i += 1
        for event in self.ending(messages, words, params, 0.0):
            yield event

    async def close(self) -> None:
        for worker in self.workers:
            worker.halt.set()
        for thread in self.threads:  # nothing outlives the test
            await asyncio.to_thread(thread.join, 5.0)


class KeepsComputing(_ThreadedParrot):
    """Its worker computes on after the stream is closed."""

    RULE = "cancel"


class HoldsTheEngine(_ThreadedParrot):
    """Its worker sleeps between tokens (little CPU) but holds the engine's lock to the end of
    the abandoned answer, so the next request waits."""

    RULE = "cancel"
    COMPUTE = False
    LOCKED = True


class DeliversAfterClose(ParrotEngine):
    """A hand-written async iterator whose aclose() does not stop it."""

    RULE = "cancel"

    def stream(  # type: ignore[override]
        self, messages: Sequence[Message], params: GenerationParams
    ) -> _Unstoppable:
        forced = self.forced(params)
        if forced is not None:
            return _Unstoppable(self.call(forced.name, forced.parameters))
        deltas = [TextDelta(w, tokens=1) for w in self.words(messages, params)]
        return _Unstoppable([*deltas, Done("stop")])


class _Unstoppable:
    def __init__(self, events: list[Event]) -> None:
        self.events: list[Event] = events

    def __aiter__(self) -> _Unstoppable:
        return self

    async def __anext__(self) -> Event:
        if not self.events:
            raise StopAsyncIteration
        await asyncio.sleep(0.001)
        return self.events.pop(0)

    async def asend(self, value: object) -> Event:
        return await self.__anext__()

    async def athrow(self, *args: object) -> Event:
        return await self.__anext__()

    async def aclose(self) -> None:
        pass  # the defect: closing changes nothing


# --- errors (made by the failing factory) --------------------------------------------------


class RaisesRuntimeError(ParrotEngine):
    RULE = "errors"

    def failure(self, words: int) -> Exception:
        return RuntimeError("the parrot fell over")


class QuietDone(ParrotEngine):
    """Swallows its failure and ends with Done("error")."""

    RULE = "errors"

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        try:
            async for event in super().stream(messages, params):
                yield event
        except ServerError:
            yield Done("error")


class LosesPartialText(ParrotEngine):
    """Holds its text back until the end, so a failure takes it along."""

    RULE = "errors"

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        held = [event async for event in super().stream(messages, params)]
        for event in held:
            yield event


# --- tools ---------------------------------------------------------------------------------


class IgnoresToolChoice(ParrotEngine):
    """Declares tools but answers in text when told to call one."""

    RULE = "tools"

    def call(self, name: str, schema: Any) -> list[Event]:
        return [TextDelta("I would rather talk.", tokens=4), Done("stop")]


class BadArguments(ParrotEngine):
    """Calls the tool with arguments outside its schema."""

    RULE = "tools"

    def call(self, name: str, schema: Any) -> list[Event]:
        return [ToolCallDelta(0, "call_1", name, '{"colour": "mauve"}'), Done("tool_calls")]


class CallEndsStop(ParrotEngine):
    """Makes the call but ends the stream Done("stop")."""

    RULE = "tools"

    def call(self, name: str, schema: Any) -> list[Event]:
        return [*super().call(name, schema)[:-1], Done("stop")]


# --- secrets -------------------------------------------------------------------------------


class DescribesItsKey(ParrotEngine):
    RULE = "secrets"

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "model": self.model, **self.settings}


class ErrorShowsItsKey(ParrotEngine):
    RULE = "secrets"

    def failure(self, words: int) -> Exception:
        return ServerError(f"401: bad key {self.settings['api_key']}")


#: (engine class, broken in the main factory's engine or in the failing factory's)
BROKEN: list[tuple[type[ParrotEngine], str]] = [
    (UndeclaredMember, "main"),
    (DeclaredWithoutMember, "main"),
    (TwoDones, "main"),
    (NoDone, "main"),
    (DoneNotLast, "main"),
    (UsageBelowDeltas, "main"),
    (NegativeTiming, "main"),
    (IgnoresMaxTokens, "main"),
    (SharedState, "main"),
    (KeepsComputing, "main"),
    (HoldsTheEngine, "main"),
    (DeliversAfterClose, "main"),
    (RaisesRuntimeError, "failing"),
    (QuietDone, "failing"),
    (LosesPartialText, "failing"),
    (IgnoresToolChoice, "main"),
    (BadArguments, "main"),
    (CallEndsStop, "main"),
    (DescribesItsKey, "main"),
    (ErrorShowsItsKey, "failing"),
]
