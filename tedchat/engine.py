"""The engine contract: what every inference engine is and what it streams.

An engine turns a list of :class:`Message` and :class:`GenerationParams` into an async stream
of *events*. Text arrives as :class:`TextDelta` (and :class:`ReasoningDelta` for models that
think aloud), calls of the tools offered in ``GenerationParams.tools`` as :class:`ToolCallDelta`
(only from engines that declare ``tools``); what the engine or server knows for certain
arrives as :class:`Usage` (token counts), :class:`Timings` (its own clocks) and, for emulated
hardware, :class:`EmulatedTimings`; the stream always ends with exactly one :class:`Done`.

Errors are :class:`tedchat.errors.EngineError` subclasses raised from the stream; the text
received before the error stays with the caller.

Engines that block (llama.cpp, NumPy) produce their events in a worker thread through
:func:`stream_from_thread`, the one helper that hands events to the event loop and stops the
worker between tokens when the consumer goes away.

What an engine can do beyond streaming is *declared*, never probed: ``engine.capabilities`` is a
:class:`Capabilities`, and each optional feature has a typed protocol here (:class:`Recorder`,
:class:`Paced`, :class:`HasFloorplan`, :class:`ModelLister`, :class:`CacheResetting`,
:class:`HasTokenIds`). Callers read the declaration through :func:`capabilities_of` and reach
the feature through its accessor (:func:`as_recorder`, ...), which checks the declaration. An
engine that sets no ``capabilities`` (plugins written before it existed) offers nothing
optional: ``Capabilities()``. :mod:`tedchat.testing` checks that declarations and members agree.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, cast

from tedchat.errors import EngineError, EngineUnavailable

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled", "error", "interrupted", "tool_calls"]
FINISH_REASONS: tuple[str, ...] = (
    "stop",
    "length",
    "cancelled",
    "error",
    "interrupted",
    "tool_calls",
)


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for: ``arguments`` is the JSON text exactly as the model wrote it
    (it may be invalid; the caller checks it)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does, its JSON Schema parameters."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ImagePart:
    """An image attached to a user message: its bytes and MIME type (``image/png``, ...)."""

    mime: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Message:
    """One message of a conversation.

    An assistant message may carry the ``tool_calls`` it made (its ``content`` is then the text
    written before them, often empty); a ``tool`` message is one call's result, ``tool_call_id``
    naming the call. Engines that do not declare ``tools`` never receive either. A user message
    may carry ``images`` after its text; engines that do not declare ``vision`` never receive
    any (attached text files are part of ``content``).
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    images: tuple[ImagePart, ...] = ()


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
    #: Tools the model may call (only sent to engines that declare ``tools``).
    tools: tuple[ToolSpec, ...] = ()
    #: ``auto`` (the model decides), ``required`` (it must call one), ``none``, or a tool name.
    tool_choice: str = "auto"

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
class ToolCallDelta:
    """A piece of a tool call as it streams. Pieces with the same ``index`` are one call: the
    first carries ``id`` and ``name``, ``arguments`` pieces are concatenated in order. An
    engine that knows the whole call at once sends it in one delta. A stream that made calls
    ends with ``Done("tool_calls")``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


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
    # Speculative decoding on the emulated hardware, when on: ``mode``, ``draft_tokens`` (k),
    # ``drafted``, ``accepted``, ``acceptance_rate`` (accepted / drafted), ``tokens_per_step``
    # (and ``assumed_acceptance`` / ``assumed_tokens_per_step`` where the clock used an
    # assumed acceptance: a draft against a stand-in). None for engines without it.
    speculative: Mapping[str, Any] | None = None


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


Event = (
    TextDelta | ReasoningDelta | ToolCallDelta | Usage | Timings | EmulatedTimings | Notice | Done
)


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


@dataclass(frozen=True)
class Capabilities:
    """What an engine offers beyond the required members of :class:`Engine`.

    A flag set to True promises the members of its protocol; a flag left False promises their
    absence (the contract suite checks both ways). ``tools`` and ``vision`` are declarations
    only (whether the engine accepts tool definitions / image parts); they carry no members.
    """

    #: The engine reads ``GenerationParams.tools`` / ``tool_choice`` and ``Message.tool_calls``
    #: / ``tool`` messages, and streams :class:`ToolCallDelta` events.
    tools: bool = False
    #: The engine reads ``Message.images`` (user messages only).
    vision: bool = False
    #: :class:`Recorder`: ``record()`` computes a whole answer with each event's own time
    #: (an emulated clock), used for replays.
    record: bool = False
    #: :class:`Paced`: ``pace_speeds()`` says whether the engine releases tokens at emulated
    #: times and how fast that is beside this machine's own speed for the model (compare's
    #: race start prepares a pane first when the host is the slower).
    pace: bool = False
    #: :class:`HasFloorplan`: ``floorplan()`` and ``activity()`` for the TUI's floorplan view.
    floorplan: bool = False
    #: :class:`ModelLister`: ``list_models()`` says which models the engine can serve.
    list_models: bool = False
    #: :class:`CacheResetting`: ``reset_cache()`` forgets cached prompt state (bench runs cold).
    cache_reset: bool = False
    #: :class:`HasTokenIds`: ``last_token_ids`` holds the ids of the answer streamed last.
    token_ids: bool = False
    #: :class:`PromptTokenCounter`: ``count_prompt_tokens()`` counts a request's prompt with
    #: the model's own tokenizer and chat template (the context gauge).
    prompt_tokens: bool = False
    #: The context window in tokens, when the engine knows it (None: unknown).
    context_size: int | None = None


#: The declaration of an engine that sets none: nothing optional, context size unknown.
NO_CAPABILITIES = Capabilities()


class Engine(Protocol):
    """An inference engine instance, as configured in ``[engines.NAME]``.

    ``name`` is the instance name, ``type`` the engine type that made it, ``model`` the model it
    runs (as a person would call it). ``local`` engines compute on this machine and share its
    thread budget. ``capabilities`` declares the optional features (read it through
    :func:`capabilities_of`: engines from older plugins may not set it).
    """

    name: str
    type: str
    model: str
    local: bool
    capabilities: Capabilities

    async def load(self, progress: ProgressCallback | None = None) -> None:
        """Make the engine ready (open files, connect); idempotent; may take long."""
        ...

    def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        """Generate an answer (an ``async def`` with ``yield`` is the usual way).

        ``aclose()`` on the generator cancels generation promptly: nothing more is delivered
        and the engine's work for this request stops. The stream ends with exactly one
        :class:`Done`; a failure raises an :class:`~tedchat.errors.EngineError` after the text
        produced so far has been delivered.
        """
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


# --- optional features: each declared by a Capabilities flag -------------------------------


class Recorder(Protocol):
    """``Capabilities.record``: answers computed ahead, each event with its own time."""

    async def record(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        progress: Callable[[int], None] | None = None,
    ) -> list[tuple[float, Event]]:
        """The whole answer as ``(seconds since the request, event)`` pairs, on the engine's
        own (e.g. emulated) clock, computed as fast as possible. ``progress``, when given, is
        called with the output tokens made so far (from any thread)."""
        ...


@dataclass(frozen=True)
class PaceSpeeds:
    """An emulated-clock engine's speeds (:class:`Paced`).

    ``paced``: tokens are released at their emulated times (else as fast as they are made).
    ``emulated_tokens_per_s``: the emulated hardware's decode speed for one answer.
    ``host_tokens_per_s``: this machine's measured speed making the text of the engine's model
    (None: not measured yet).
    """

    paced: bool
    emulated_tokens_per_s: float
    host_tokens_per_s: float | None


class Paced(Protocol):
    """``Capabilities.pace``: an emulated clock whose live pacing may outrun this machine."""

    def pace_speeds(self) -> PaceSpeeds:
        """The engine's speeds (call after ``load``: the host figure is measured there)."""
        ...


class HasFloorplan(Protocol):
    """``Capabilities.floorplan``: a placement picture and the stage working right now."""

    def floorplan(self) -> dict[str, Any]:
        """The placement as a JSON-ready dict (``tedchat wafer plan --json``'s shape)."""
        ...

    def activity(self) -> dict[str, Any] | None:
        """``{"system": i, "layer": n or None}`` being computed now, or None between steps."""
        ...


class ModelLister(Protocol):
    """``Capabilities.list_models``: the models the engine can serve."""

    async def list_models(self) -> list[dict[str, Any]]:
        """One dict per model, each with at least ``id`` (``owned_by`` where known)."""
        ...


class CacheResetting(Protocol):
    """``Capabilities.cache_reset``: forget cached prompt state, so the next request is cold."""

    def reset_cache(self) -> Awaitable[None] | None:
        """Plain or ``async``; ``tedchat bench`` calls it before every run."""
        ...


class HasTokenIds(Protocol):
    """``Capabilities.token_ids``: the token ids of the answer streamed last."""

    @property
    def last_token_ids(self) -> Sequence[int] | None:
        """Ids of the last answer (None before any); read only after that answer ended."""
        ...


class PromptTokenCounter(Protocol):
    """``Capabilities.prompt_tokens``: the prompt tokens a request would take."""

    async def count_prompt_tokens(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> int | None:
        """Tokens of the prompt ``messages`` (and ``params.tools``) make for this model, as
        the engine would render them, before any trimming; None when the engine has no
        tokenizer for it (an http engine without ``tokenizer``): callers then estimate."""
        ...


def capabilities_of(engine: object) -> Capabilities:
    """What ``engine`` declares. The one place that reads the attribute without trusting it:
    an engine without ``capabilities`` (a plugin older than the declaration) offers nothing
    optional, :data:`NO_CAPABILITIES`; anything but a :class:`Capabilities` is a plugin bug."""
    declared = getattr(engine, "capabilities", NO_CAPABILITIES)
    if not isinstance(declared, Capabilities):
        name = getattr(engine, "name", type(engine).__name__)
        raise EngineError(
            f"engine {name!r}: capabilities must be a tedchat.Capabilities, "
            f"not {type(declared).__name__}"
        )
    return declared


#: Members every engine has (the :class:`Engine` protocol): attributes, then methods.
ENGINE_ATTRIBUTES = ("name", "type", "model", "local")
ENGINE_METHODS = ("load", "stream", "status", "describe", "close")


def declaration_problems(engine: object) -> list[str]:
    """Where ``engine``'s members and its declaration disagree (empty: they agree).

    Every :class:`Engine` member must be present; a feature declared True must have its
    protocol's members, and a feature's member present without the declaration is a problem
    too (a caller would never use it). Used by the contract suite (:mod:`tedchat.testing`).
    """
    problems = [f"missing attribute {a!r}" for a in ENGINE_ATTRIBUTES if not hasattr(engine, a)]
    problems += [
        f"missing method {m}()" for m in ENGINE_METHODS if not callable(getattr(engine, m, None))
    ]
    try:
        caps = capabilities_of(engine)
    except EngineError as exc:
        return [*problems, exc.message]
    if caps.context_size is not None and not (
        isinstance(caps.context_size, int) and caps.context_size > 0
    ):
        problems.append(f"context_size must be a positive int or None, not {caps.context_size!r}")
    features = (
        ("record", caps.record, ("record",), True),
        ("pace", caps.pace, ("pace_speeds",), True),
        ("floorplan", caps.floorplan, ("floorplan", "activity"), True),
        ("list_models", caps.list_models, ("list_models",), True),
        ("cache_reset", caps.cache_reset, ("reset_cache",), True),
        ("token_ids", caps.token_ids, ("last_token_ids",), False),
        ("prompt_tokens", caps.prompt_tokens, ("count_prompt_tokens",), True),
    )
    for flag, declared, members, methods in features:
        for member in members:
            present = hasattr(engine, member)
            if methods and present and not callable(getattr(engine, member)):
                problems.append(f"{member} is not callable")
            if declared and not present:
                problems.append(f"declares {flag} but has no {member}")
            elif present and not declared:
                problems.append(f"has {member} but does not declare {flag} in its capabilities")
    return problems


def _undeclared(engine: Engine, feature: str) -> EngineUnavailable:
    return EngineUnavailable(
        f"engine {engine.name!r} (type {engine.type}) does not offer {feature} "
        "(its capabilities do not declare it)"
    )


def as_recorder(engine: Engine) -> Recorder:
    """``engine`` as a :class:`Recorder`; EngineUnavailable unless it declares ``record``."""
    if not capabilities_of(engine).record:
        raise _undeclared(engine, "record")
    return cast(Recorder, engine)


def as_paced(engine: Engine) -> Paced:
    """``engine`` as a :class:`Paced`; EngineUnavailable unless it declares ``pace``."""
    if not capabilities_of(engine).pace:
        raise _undeclared(engine, "pace speeds")
    return cast(Paced, engine)


def as_floorplan(engine: Engine) -> HasFloorplan:
    """``engine`` as a :class:`HasFloorplan`; EngineUnavailable unless it declares it."""
    if not capabilities_of(engine).floorplan:
        raise _undeclared(engine, "a floorplan")
    return cast(HasFloorplan, engine)


def as_model_lister(engine: Engine) -> ModelLister:
    """``engine`` as a :class:`ModelLister`; EngineUnavailable unless it declares it."""
    if not capabilities_of(engine).list_models:
        raise _undeclared(engine, "list_models")
    return cast(ModelLister, engine)


def as_cache_resetting(engine: Engine) -> CacheResetting:
    """``engine`` as a :class:`CacheResetting`; EngineUnavailable unless it declares it."""
    if not capabilities_of(engine).cache_reset:
        raise _undeclared(engine, "reset_cache")
    return cast(CacheResetting, engine)


def as_token_ids(engine: Engine) -> HasTokenIds:
    """``engine`` as a :class:`HasTokenIds`; EngineUnavailable unless it declares it."""
    if not capabilities_of(engine).token_ids:
        raise _undeclared(engine, "last_token_ids")
    return cast(HasTokenIds, engine)


def as_prompt_token_counter(engine: Engine) -> PromptTokenCounter:
    """``engine`` as a :class:`PromptTokenCounter`; EngineUnavailable unless it declares it."""
    if not capabilities_of(engine).prompt_tokens:
        raise _undeclared(engine, "count_prompt_tokens")
    return cast(PromptTokenCounter, engine)


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
) -> AsyncGenerator[Event, None]:
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
