"""The engine contract: what every inference engine is and what it streams.

An engine turns a list of :class:`Message` and :class:`GenerationParams` into an async stream
of *events*. Text arrives as :class:`TextDelta` (and :class:`ReasoningDelta` for models that
think aloud); what the engine or server knows for certain arrives as :class:`Usage` (token
counts), :class:`Timings` (its own clocks) and, for emulated hardware, :class:`EmulatedTimings`;
the stream always ends with exactly one :class:`Done`.

Errors are :class:`tedchat.errors.EngineError` subclasses raised from the stream; the text
received before the error stays with the caller.

Engines that block (llama.cpp, NumPy) produce their events in a worker thread through
:func:`stream_from_thread`, the one helper that hands events to the event loop and stops the
worker between tokens when the consumer goes away.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from tedchat.errors import EngineError

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error", "interrupted"]
FINISH_REASONS: tuple[str, ...] = ("stop", "length", "cancelled", "error", "interrupted")


@dataclass(frozen=True)
class Message:
    """One message of a conversation."""

    role: Role
    content: str


DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.95


@dataclass(frozen=True)
class GenerationParams:
    """How to sample an answer. ``temperature == 0`` means greedy.

    ``None`` leaves a choice to the engine: the model's recommended value where the engine
    knows one (the model registry), the server's default for remote engines, else
    :data:`DEFAULT_TEMPERATURE` / :data:`DEFAULT_TOP_P` (see :meth:`with_defaults`).
    """

    max_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def with_defaults(
        self, temperature: float | None = None, top_p: float | None = None
    ) -> GenerationParams:
        """These parameters with every unset value filled: the given ones, else tedchat's."""
        return replace(
            self,
            temperature=_first(self.temperature, temperature, DEFAULT_TEMPERATURE),
            top_p=_first(self.top_p, top_p, DEFAULT_TOP_P),
        )


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


# --- stream events -------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer. ``tokens`` is how many tokens it carries, where the engine knows."""

    text: str
    tokens: int | None = None


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's reasoning, kept apart from the answer."""

    text: str
    tokens: int | None = None


@dataclass(frozen=True)
class Usage:
    """Authoritative token counts from the engine or server (``source`` says which)."""

    prompt_tokens: int | None = None
    output_tokens: int | None = None
    source: str = "engine"


@dataclass(frozen=True)
class Timings:
    """Figures the engine or server measured on its own clock, in seconds and tokens.

    Keys are engine-specific (``prompt_eval_s``, ``eval_s``, ``eval_tokens``, ...); they are shown
    beside the client's own measurements, never instead of them.
    """

    figures: Mapping[str, float]
    source: str = "engine"


@dataclass(frozen=True)
class EmulatedTimings:
    """What emulated hardware would have taken (the wafer virtual clock). Always labelled."""

    hardware: str
    systems: int
    ttft_s: float
    output_tokens_per_s: float
    breakdown: Mapping[str, float] = field(default_factory=dict)
    timing_target: str | None = None
    replay: bool = False
    # Where this answer sat on the engine's emulated timeline (concurrent answers share it):
    # when its request arrived and when its last token was emitted, in emulated seconds.
    arrival_s: float = 0.0
    end_s: float | None = None


@dataclass(frozen=True)
class Notice:
    """Something a person should know about this answer that is not part of it.

    E.g. the oldest turns were left out to fit the context, or emulated pacing cannot be kept
    live on this machine. Front ends show it apart from the text (stderr, a toast).
    """

    text: str


@dataclass(frozen=True)
class Done:
    """The end of the stream."""

    finish_reason: FinishReason


Event = TextDelta | ReasoningDelta | Usage | Timings | EmulatedTimings | Notice | Done


# --- engines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadProgress:
    """Progress of a (possibly slow) engine load; ``fraction`` is None when unknown."""

    stage: str
    fraction: float | None = None


ProgressCallback = Callable[[LoadProgress], None]


@dataclass(frozen=True)
class EngineStatus:
    """Whether an engine can answer now, and if not, why (one line a person can act on)."""

    ready: bool
    detail: str = ""


@runtime_checkable
class Engine(Protocol):
    """An inference engine instance, as configured in ``[engines.NAME]``.

    ``name`` is the instance name, ``type`` the engine type that made it, ``model`` the model it
    runs (as a person would call it). ``local`` engines compute on this machine and share its
    thread budget.
    """

    name: str
    type: str
    model: str
    local: bool

    async def load(self, progress: ProgressCallback | None = None) -> None:
        """Make the engine ready (open files, connect); idempotent; may take long."""
        ...

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Event]:
        """Generate an answer. Closing the iterator cancels generation promptly."""
        ...

    async def status(self) -> EngineStatus:
        """Cheaply tell whether the engine can answer (file present, server reachable)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings for display and bench records, with every secret removed."""
        ...

    async def close(self) -> None:
        """Release what ``load`` took."""
        ...


@dataclass(frozen=True)
class EngineType:
    """A kind of engine a plugin provides: ``[engines.X] type = "<name>"`` makes one.

    ``settings`` names every key the type accepts with its default; the config loader rejects
    other keys, naming these. ``factory(name, settings, runtime)`` builds an engine without
    doing slow work (that belongs in ``Engine.load``).
    """

    name: str
    factory: Callable[[str, dict[str, Any], Runtime], Engine]
    settings: Mapping[str, Any]
    description: str = ""
    local: bool = False


@dataclass
class Runtime:
    """What engines share on this machine: the thread budget (config ``[runtime] threads``).

    Local engines running at once divide the budget, so two llama.cpp engines side by side never
    oversubscribe the cores (spinning llama.cpp threads collapse when they do).
    """

    threads: int
    local_engines_at_once: int = 1

    def thread_share(self) -> int:
        """Threads one local engine may use while ``local_engines_at_once`` run together."""
        return max(1, self.threads // max(1, self.local_engines_at_once))


# --- running blocking engines --------------------------------------------------------------

StopCheck = Callable[[], bool]
_END = object()


async def stream_from_thread(
    produce: Callable[[StopCheck], Iterator[Event]], *, name: str = "engine"
) -> AsyncIterator[Event]:
    """Run a blocking event producer in a worker thread and stream its events here.

    ``produce(should_stop)`` is a generator function running in the thread; it should call
    ``should_stop()`` between tokens (and may pass it to lower layers, e.g. llama.cpp's abort
    callback) and return when it is true. When the consumer stops iterating (break, cancel,
    aclose) the worker is told to stop and, where it stops, nothing more is delivered.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            for event in produce(stop.is_set):
                if stop.is_set():
                    break
                put(event)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
        finally:
            put(_END)

    thread = threading.Thread(target=work, name=f"tedchat-{name}", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                if isinstance(item, EngineError):
                    raise item
                raise EngineError(f"{name} failed: {item}") from item
            yield item  # type: ignore[misc]
    finally:
        stop.set()


async def cancel_stream(events: AsyncIterator[Event]) -> None:
    """Close an engine stream early (the consumer gave up on it)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
