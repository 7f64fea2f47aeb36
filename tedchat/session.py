"""One turn of a conversation: prompt -> history -> engine -> meter -> history -> the caller.

``ask``, the TUI chat screen and every compare pane drive their turns through this module, so
all of them save, measure, record and end answers the same way:

1. :meth:`TurnHistory.save_prompt` creates the conversation if there is none yet and commits
   the user message *before* the request is sent (nothing typed is lost);
2. :meth:`TurnHistory.begin_reply` opens the reply's row and returns its :class:`ReplyBuffer`;
3. :func:`run_turn` streams the answer, metering every event, hands text to the buffer as it
   arrives and finalises the reply however the stream ends.

Every history write goes through one :class:`HistoryWriter`: one thread, in order, so the
store's fsyncs never stall an event loop (the TUI's drawing, ``ask``'s output).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol, TypeVar

from tedchat.conversation import params_to_dict
from tedchat.engine import (
    Done,
    Engine,
    Event,
    GenerationParams,
    Message,
    Notice,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    capabilities_of,
)
from tedchat.errors import EngineError, HistoryError
from tedchat.history.integrity import waiting_for_lock
from tedchat.history.tree import ACTIVE_END
from tedchat.metrics import Clock, StreamMeter, StreamMetrics
from tedchat.tools.base import Approver, ToolCallRecord

if TYPE_CHECKING:
    from tedchat.attachments import Attachment
    from tedchat.history.store import Store
    from tedchat.history.writer import ReplyWriter

T = TypeVar("T")

#: The longest a streamed reply's text waits in :class:`ReplyBuffer` before it is written.
#: Below 250 ms on purpose: the promise is that text received 250 ms before the process dies
#: is in the database, and the write itself (one fsync) needs part of that time.
REPLY_FLUSH_S = 0.2


class ReplyRecorder(Protocol):
    """Where a reply is saved while it streams (a :class:`ReplyBuffer` for the history)."""

    def append(self, text: str) -> None: ...

    def tool_call(self, record: ToolCallRecord) -> None:
        """A tool call of this reply has ended (its result or error is set)."""
        ...

    def finish(self, finish_reason: str, metrics: StreamMetrics) -> None: ...


class ToolRunner(Protocol):
    """The tools a turn may use (:class:`tedchat.tools.toolbox.Toolbox`)."""

    def specs(self) -> tuple[ToolSpec, ...]:
        """The tools offered to the model, under the names the model calls them by."""
        ...

    async def call(self, call: ToolCall, record: ToolCallRecord, approver: Approver | None) -> None:
        """Run ``call`` and fill ``record`` (``args``, ``source``, ``status``, ``result`` or
        ``error``, ``elapsed_s``). Never raises but ``CancelledError``: an unknown tool,
        invalid arguments, a refusal, a timeout or a failure is an error in the record.
        ``approver`` asks a person; None means nobody can be asked (calls that need approval
        are refused)."""
        ...


@dataclass(frozen=True)
class ToolCallStarted:
    """A turn event (given to ``on_event`` beside the engine's): a tool call is about to run
    (it may still wait for approval)."""

    record: ToolCallRecord


@dataclass(frozen=True)
class ToolCallFinished:
    """A turn event: a tool call ended; ``record`` holds its result or error and time."""

    record: ToolCallRecord


@dataclass(frozen=True)
class StepStarted:
    """A turn event: the model is asked again with the tool results (``step`` >= 1)."""

    step: int


TurnEvent = ToolCallStarted | ToolCallFinished | StepStarted


#: Model steps in one turn (model -> tools -> model ...) unless ``[tools] max_steps`` says.
DEFAULT_MAX_STEPS = 8


@dataclass
class TurnResult:
    """What one turn produced. ``error`` is set when the engine failed; ``text`` is kept."""

    text: str
    reasoning: str
    metrics: StreamMetrics
    error: EngineError | None = None
    events: int = 0
    tool_calls: list[ToolCallRecord] = field(default_factory=list)


@dataclass
class Turn:
    """A running turn: its meter, the text and the tool calls so far, readable while it
    streams."""

    engine: Engine
    messages: Sequence[Message]
    params: GenerationParams
    clock: Clock = time.perf_counter
    meter: StreamMeter = field(default_factory=StreamMeter)
    parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def metrics(self) -> StreamMetrics:
        return self.meter.snapshot(self.clock())


OnEvent = Callable[["Event | TurnEvent", Turn], None]


async def run_turn(
    turn: Turn,
    *,
    on_event: OnEvent | None = None,
    recorder: ReplyRecorder | None = None,
    tools: ToolRunner | None = None,
    approver: Approver | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> TurnResult:
    """Stream ``turn``'s answer to the end, metering every event on the turn's clock.

    With ``tools`` (and an engine that declares ``tools``) the model is offered them: a step
    that ends with tool calls runs them (concurrently, each through ``tools.call``, which asks
    ``approver`` where the policy says so), sends the results back and asks the model again,
    until it answers without calls or ``max_steps`` model steps were made (the turn then ends
    as ``length``, with a :class:`~tedchat.engine.Notice`). A forced ``tool_choice``
    (``required`` or a name) applies to the first step; later steps are ``auto``.
    ``on_event`` sees the engine's
    events and the turn's own (:class:`ToolCallStarted`, :class:`ToolCallFinished`,
    :class:`StepStarted`); each step's ``Done`` but the last stays inside.

    Cancellation (the task is cancelled: Esc, Ctrl-C) ends the answer as ``cancelled`` and is
    re-raised; an :class:`EngineError` ends it as ``error`` and is returned with the partial
    text. Either way the recorder is finalised (text and finished calls kept).
    """
    meter, clock = turn.meter, turn.clock
    specs = tools.specs() if tools is not None and capabilities_of(turn.engine).tools else ()
    params = replace(turn.params, tools=specs) if specs else replace(turn.params, tools=())
    messages = list(turn.messages)
    meter.start(clock())
    count = 0
    error: EngineError | None = None
    try:
        step = 0
        while True:
            calls, n = await _run_step(turn, messages, params, on_event, recorder)
            count += n
            if not calls:
                break
            if tools is None or not specs:  # calls nobody offered: the answer is what it is
                break
            if step + 1 >= max_steps:
                names = ", ".join(sorted({c.name for c in calls}))
                notice = Notice(
                    f"stopped after {max_steps} model steps (max_steps); "
                    f"the model still asked for: {names}"
                )
                if on_event is not None:
                    on_event(notice, turn)
                meter.finish("length", clock())
                break
            await _run_tools(turn, calls, step, tools, approver, on_event, recorder)
            messages += _step_messages(turn, calls, step)
            if params.tool_choice not in ("auto", "none"):
                # A forced call is made; with its result the model may answer (else it would
                # be forced to call again at every step).
                params = replace(params, tool_choice="auto")
            step += 1
            meter.next_step()
            if on_event is not None:
                on_event(StepStarted(step), turn)
    except (asyncio.CancelledError, KeyboardInterrupt):
        meter.tool_finished(clock())
        meter.finish("cancelled", clock())
        if recorder is not None:
            for record in turn.tool_calls:
                if record.status in ("running", "cancelled"):
                    record.status = "cancelled"
                    recorder.tool_call(record)
            recorder.finish("cancelled", meter.snapshot())
        raise
    except EngineError as exc:
        error = exc
        meter.finish("error", clock())
    if meter.finish_reason is None:  # an engine that ended without Done
        meter.finish("stop", clock())
    metrics = meter.snapshot()
    if recorder is not None:
        recorder.finish(metrics.finish_reason or "stop", metrics)
    return TurnResult(
        turn.text, "".join(turn.reasoning_parts), metrics, error, count, list(turn.tool_calls)
    )


@dataclass
class _PendingCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


async def _run_step(
    turn: Turn,
    messages: Sequence[Message],
    params: GenerationParams,
    on_event: OnEvent | None,
    recorder: ReplyRecorder | None,
) -> tuple[list[ToolCall], int]:
    """One model step: stream it, metering every event; return the tool calls it made (their
    pieces joined by index) and the number of events. A ``Done`` that ends a step with calls
    is not the turn's end: the meter does not see it."""
    meter, clock = turn.meter, turn.clock
    pending: dict[int, _PendingCall] = {}
    count = 0
    events = turn.engine.stream(messages, params)
    try:
        async for event in events:
            now = clock()
            count += 1
            if isinstance(event, Done) and (pending or event.finish_reason == "tool_calls"):
                if pending:
                    break
                event = Done("stop")  # "tool_calls" without a call: nothing to run
            meter.observe(event, now)
            if isinstance(event, TextDelta) and event.text:
                turn.parts.append(event.text)
                if recorder is not None:
                    recorder.append(event.text)
            elif isinstance(event, ReasoningDelta):
                turn.reasoning_parts.append(event.text)
            elif isinstance(event, ToolCallDelta):
                call = pending.setdefault(event.index, _PendingCall())
                if event.id:
                    call.id = event.id
                if event.name and not call.name:
                    call.name = event.name
                call.arguments.append(event.arguments)
            if on_event is not None:
                on_event(event, turn)
            if isinstance(event, Done):
                break
    finally:
        await asyncio.shield(events.aclose())
    step = meter.steps - 1
    return [
        ToolCall(call.id or f"call_{step}_{index}", call.name, "".join(call.arguments))
        for index, call in sorted(pending.items())
    ], count


async def _run_tools(
    turn: Turn,
    calls: Sequence[ToolCall],
    step: int,
    tools: ToolRunner,
    approver: Approver | None,
    on_event: OnEvent | None,
    recorder: ReplyRecorder | None,
) -> None:
    """Run one step's calls concurrently; each ends in its record (result or error)."""
    meter, clock = turn.meter, turn.clock
    offset = len(turn.text)
    records = [ToolCallRecord(c.id, c.name, c.arguments, step=step, offset=offset) for c in calls]
    turn.tool_calls.extend(records)

    async def one(call: ToolCall, record: ToolCallRecord) -> None:
        if on_event is not None:
            on_event(ToolCallStarted(record), turn)
        await tools.call(call, record, approver)
        if recorder is not None:
            recorder.tool_call(record)
        if on_event is not None:
            on_event(ToolCallFinished(record), turn)

    meter.tool_started(clock())
    try:
        await asyncio.gather(*(one(c, r) for c, r in zip(calls, records, strict=True)))
    finally:
        meter.tool_finished(clock())


def _step_messages(turn: Turn, calls: Sequence[ToolCall], step: int) -> list[Message]:
    """What the model is sent after a step with calls: its own message (the step's text and
    calls), then each call's result."""
    records = [r for r in turn.tool_calls if r.step == step]
    earlier = [r.offset for r in turn.tool_calls if r.step < step]
    start = max(earlier) if earlier else 0
    text = turn.text[start : records[0].offset if records else len(turn.text)]
    return [
        Message("assistant", text, tool_calls=tuple(calls)),
        *(Message("tool", r.content_for_model(), tool_call_id=r.id) for r in records),
    ]


# --- the history side of a turn ----------------------------------------------------------------


class HistoryWriter:
    """Every write a turn makes to the history store, run on one thread in the order given.

    The store commits with ``synchronous = FULL`` (an fsync per transaction, milliseconds
    each): on an event loop every commit would stall drawing and typing. One thread keeps the
    writes in order (a reply's row exists before its text is appended). A write that fails
    while a reply streams is reported once per reply through ``on_error`` (on the event loop
    that started the reply); the answer goes on.
    """

    def __init__(
        self, store: Store, *, on_error: Callable[[HistoryError], None] | None = None
    ) -> None:
        self.store = store
        self.on_error = on_error
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tedchat-history")

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the history thread, after every write queued before it."""
        return await asyncio.wrap_future(self._executor.submit(fn))

    def submit(self, fn: Callable[[], None]) -> Future[None]:
        """Queue ``fn`` on the history thread without waiting for it."""
        return self._executor.submit(fn)

    async def idle(self) -> None:
        """Wait until every write queued so far is done."""
        await self.run(lambda: None)

    async def save_settings(
        self, conversation_id: int, system: str, params: GenerationParams
    ) -> None:
        """Store a conversation's changed system prompt and generation parameters."""
        store = self.store
        await self.run(
            lambda: store.set_settings(conversation_id, system or None, params_to_dict(params))
        )

    async def set_active(
        self, conversation_id: int, message_id: int | None = None, *, branch: int | None = None
    ) -> None:
        """Make the path through ``message_id``, or branch number ``branch``, the
        conversation's active path (see :mod:`tedchat.history.tree`)."""
        store = self.store
        if branch is not None:
            number = branch
            await self.run(lambda: store.set_active_branch(conversation_id, number))
        elif message_id is not None:
            node = message_id
            await self.run(lambda: store.set_active(conversation_id, node))

    def close(self) -> None:
        """Finish the queued writes, then close the store (open replies end ``interrupted``)."""
        self._executor.shutdown(wait=True)
        self.store.close()


SLOW_SAVE_S = 0.5
"""How long a prompt's save (or the history's opening) may take before the turn says what it
is waiting for."""


async def said_if_slow(
    work: Awaitable[T], on_wait: Callable[[str | None], None] | None, line: str
) -> T:
    """Await ``work``; if it takes longer than :data:`SLOW_SAVE_S`, tell ``on_wait`` ``line``
    first and None once it is over (done, failed or cancelled)."""
    task = asyncio.ensure_future(work)
    waited = False
    try:
        done, _ = await asyncio.wait({task}, timeout=SLOW_SAVE_S)
        if not done and on_wait is not None:
            waited = True
            on_wait(line)
        return await task
    finally:
        task.cancel()  # a no-op once done; a cancelled turn stops waiting for it
        if waited and on_wait is not None:
            on_wait(None)


@dataclass
class TurnHistory:
    """One turn's place in the history: its conversation, its user message, its replies.

    ``writer`` None means no history (disabled, or it failed): every step is then a no-op, so
    callers need no second path. A conversation id of None means a new conversation, created
    with ``system`` and ``params`` when the prompt is saved; a message id already set (a
    regenerated answer) means the prompt is stored and the reply becomes a sibling.
    ``follows`` is the stored message the prompt is sent after: the end of the active path
    (:data:`~tedchat.history.tree.ACTIVE_END`), a message id (an edited prompt: a new branch)
    or None (a first prompt).
    """

    writer: HistoryWriter | None
    conversation_id: int | None = None
    system: str = ""
    params: GenerationParams = field(default_factory=GenerationParams)
    message_id: int | None = None
    follows: int | str | None = ACTIVE_END

    async def save_prompt(
        self,
        prompt: str,
        *,
        engine: Engine | None = None,
        attachments: Sequence[Attachment] = (),
        on_wait: Callable[[str | None], None] | None = None,
    ) -> None:
        """Create the conversation if needed and commit ``prompt`` with its ``attachments``:
        call it before the request is sent. ``engine`` names where it went when there is one
        target (not for compare). The request waits for this, so when it takes longer than
        :data:`SLOW_SAVE_S` (another process holds the file's lock) ``on_wait`` is told one
        line saying so, and None once the wait is over. Raises :class:`HistoryError` (the
        caller says so and goes on, or stops)."""
        if self.writer is None or self.message_id is not None:
            return
        store = self.writer.store
        name, model = (engine.name, engine.model) if engine is not None else (None, None)
        system, params = self.system or None, params_to_dict(self.params)
        follows = self.follows
        from tedchat.history.records import StoredAttachment

        stored = [StoredAttachment(a.name, a.kind, a.mime, a.data) for a in attachments]

        def save() -> None:
            # Kept as each step lands: a new conversation is not made twice if the prompt failed.
            if self.conversation_id is None:
                self.conversation_id = store.new_conversation(None, system, params)
            self.message_id = store.add_user_message(
                self.conversation_id,
                prompt,
                engine=name,
                model=model,
                attachments=stored,
                follows=follows,
            )

        await said_if_slow(self.writer.run(save), on_wait, waiting_for_lock(store.lock_timeout_s))

    async def begin_reply(self, engine: Engine) -> ReplyBuffer | None:
        """Open ``engine``'s reply to the saved prompt and return the buffer that records it as
        it streams; None without history, without a saved prompt, or if the row cannot be
        made (reported through the writer's ``on_error``)."""
        writer = self.writer
        if writer is None or self.conversation_id is None or self.message_id is None:
            return None
        store, cid, mid = writer.store, self.conversation_id, self.message_id
        try:
            # This buffer decides when text is written: the store's writer never flushes alone.
            reply = await writer.run(
                lambda: store.begin_reply(
                    cid, mid, engine.name, engine.model, flush_interval=math.inf
                )
            )
        except HistoryError as exc:
            if writer.on_error is None:
                raise
            writer.on_error(exc)
            return None
        return ReplyBuffer(writer, reply)


class ReplyBuffer:
    """The one buffer between a streaming reply and the database.

    :func:`run_turn` appends text as it arrives (on the event loop); the buffer hands it to the
    history thread when the oldest unwritten text is ``interval`` seconds old, whether or not
    more text comes (a paused stream is saved too), and everything left at :meth:`finish`. So a
    process killed mid-answer loses at most the last ``interval`` seconds plus one write.
    """

    def __init__(
        self, writer: HistoryWriter, reply: ReplyWriter, *, interval: float = REPLY_FLUSH_S
    ) -> None:
        self.writer = writer
        self.reply = reply
        self.interval = interval
        self.failed = False
        self._pending: list[str] = []
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def id(self) -> int:
        """The reply's message id in the store."""
        return self.reply.id

    def append(self, text: str) -> None:
        """Keep ``text``; it is written at most ``interval`` seconds from now."""
        if not text or self.failed:
            return
        self._pending.append(text)
        if self._timer is None:
            self._timer = self._loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Hand the buffered text to the history thread now."""
        self._cancel_timer()
        if not self._pending:
            return
        chunk = self._take()
        reply = self.reply

        def write() -> None:
            reply.append(chunk)
            reply.flush()

        self._submit(write)

    def tool_call(self, record: ToolCallRecord) -> None:
        """Write an ended tool call (after the text before it)."""
        self._cancel_timer()
        chunk = self._take()
        reply, data = self.reply, record.as_dict()

        def write() -> None:
            if chunk:
                reply.append(chunk)
            reply.add_tool_call(data)

        self._submit(write)

    def finish(self, finish_reason: str, metrics: StreamMetrics) -> None:
        """Hand over the rest of the text with the finish reason and the final figures."""
        self._cancel_timer()
        chunk = self._take()
        reply = self.reply

        def end() -> None:
            if chunk:
                reply.append(chunk)
            reply.finish(finish_reason, metrics)

        self._submit(end)

    def _take(self) -> str:
        chunk = "".join(self._pending)
        self._pending.clear()
        return chunk

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _submit(self, fn: Callable[[], None]) -> None:
        if self.failed:
            return

        def run() -> None:
            if self.failed:
                return
            try:
                fn()
            except HistoryError as exc:
                self.failed = True  # one report per reply; the answer goes on streaming
                on_error = self.writer.on_error
                if on_error is not None:
                    try:
                        self._loop.call_soon_threadsafe(on_error, exc)
                    except RuntimeError:  # the loop has ended (ask, after its answer)
                        on_error(exc)

        self.writer.submit(run)
