"""Streaming to the screen: every answer goes through ``run_turn`` and is drawn on a frame clock.

Engines deliver text as fast as they make it (5,000 tokens/s from a fast server). Handing each
chunk to the Markdown widget made Textual re-parse the open block per chunk and fall seconds
behind (DESIGN.md, "Streaming to the screen"). So :class:`LiveAnswer` only *collects* text as
events arrive, and a :class:`FrameClock` (~30 Hz, one per screen, running only while something
streams) appends what arrived since the last frame and redraws the figures in the same step:
text and status move together.

:func:`stream_answer` is the one way the chat screen and every compare pane run an answer:
``tedchat.session.run_turn`` with this module's ``on_event`` and the turn's
:class:`~tedchat.session.ReplyBuffer` as the recorder (it writes to the history off the event
loop). Cancelling the task running it (Esc) ends the answer as ``cancelled``; run_turn
finalises the meter and the recorder, and the partial text stays on screen.

Tool calls (a turn given a :class:`~tedchat.session.ToolRunner`) reach the reply as blocks
when they start and end: the text before a call is drawn first, so each block sits where the
model made the call. While calls run, each frame moves their running time and the figures
say which tool runs; an answer without calls pays nothing for any of it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from textual.timer import Timer
from textual.widget import Widget

from tedchat.engine import (
    Event,
    Notice,
    TextDelta,
)
from tedchat.errors import EngineError
from tedchat.metrics import StreamMetrics
from tedchat.session import (
    DEFAULT_MAX_STEPS,
    ReplyRecorder,
    ToolCallFinished,
    ToolCallStarted,
    ToolRunner,
    Turn,
    TurnEvent,
    TurnResult,
    run_turn,
)
from tedchat.tools.base import Approver, ToolCallRecord
from tedchat.tui.widgets.messages import ReplyView

#: Frames per second of the clock that draws streamed text and figures.
FRAME_HZ = 30.0

#: How long after the last answer ends the garbage collector resumes (see :class:`GcPause`).
GC_RESUME_DELAY_S = 0.3


class FigureTarget(Protocol):
    """Where an answer's live figures go (the status bar, a compare pane's status line)."""

    def show_figures(self, metrics: StreamMetrics | None, *, live: bool = False) -> None: ...

    def add_rate(self, rate: float) -> None: ...

    def reset_rates(self) -> None: ...

    def show_activity(self, text: str | None) -> None:
        """What the answer is doing besides streaming (a tool running); None: nothing."""
        ...


def activity_text(names: list[str]) -> str | None:
    """The status bar's words for the tools running now (None when none run)."""
    if not names:
        return None
    if len(names) == 1:
        return f"running {names[0]}…"
    return f"running {len(names)} tools ({', '.join(sorted(set(names)))})…"


class LiveAnswer:
    """One running answer: collects its text as events arrive, draws it on each frame."""

    def __init__(
        self,
        turn: Turn,
        view: ReplyView,
        figures: FigureTarget | None = None,
    ) -> None:
        self.turn = turn
        self.view = view
        self.figures = figures
        self._pending: list[str] = []
        self._last_sample: tuple[float, int] | None = None
        # Tool calls running now, with when they began (the wall clock: a running time shown).
        self._running: dict[int, tuple[ToolCallRecord, float]] = {}

    def on_event(self, event: Event | TurnEvent, _turn: Turn) -> None:
        """run_turn's callback: keep the text for the next frame (no drawing here). Every
        other event reaches the screen through the meter's figures, except a Notice, which is
        shown in the reply, and a tool call starting or ending, which its block shows."""
        if isinstance(event, TextDelta):
            if event.text:
                self._pending.append(event.text)
        elif isinstance(event, ToolCallStarted):
            text = self._take()
            if text:  # the step's text goes above its calls
                self.view.write(text)
            self.view.add_tool_call(event.record)
            self._running[id(event.record)] = (event.record, time.monotonic())
            self._show_activity()
        elif isinstance(event, ToolCallFinished):
            self._running.pop(id(event.record), None)
            block = self.view.block_for(event.record)
            if block is not None:
                block.redraw()
            self._show_activity()
        elif isinstance(event, Notice):
            self.view.add_notice(event.text)

    def _show_activity(self) -> None:
        if self.figures is not None:
            names = [record.name for record, _t in self._running.values()]
            self.figures.show_activity(activity_text(names))

    def _tick_tools(self) -> None:
        now = time.monotonic()
        for record, started in self._running.values():
            block = self.view.block_for(record)
            if block is not None:
                block.show_running(now - started)

    def _take(self) -> str:
        text = "".join(self._pending)
        self._pending.clear()
        return text

    def draw(self) -> None:
        """One frame: append the text that arrived since the last one, redraw the figures."""
        text = self._take()
        if text:
            self.view.write(text)
        if self._running:
            self._tick_tools()
        if self.figures is not None:
            metrics = self.turn.metrics()
            self.figures.show_figures(metrics, live=True)
            self._sample(metrics)

    def _sample(self, metrics: StreamMetrics) -> None:
        if metrics.ttft_s is None:
            return  # nothing to draw before the first token
        now = self.turn.clock()
        n = metrics.output_tokens
        if self._last_sample is not None and self.figures is not None:
            t0, n0 = self._last_sample
            if now > t0:
                self.figures.add_rate((n - n0) / (now - t0))
        self._last_sample = (now, n)

    def finish(self, metrics: StreamMetrics, error: str | None) -> None:
        """Draw what is left, stop the stream and show the final figures."""
        text = self._take()
        if text:
            self.view.write(text)
        for record, _started in self._running.values():  # cancelled while they ran
            if record.status == "running":  # run_turn marks them only when it records them
                record.status = "cancelled"
            block = self.view.block_for(record)
            if block is not None:
                block.redraw()
        if self._running:
            self._running.clear()
            self._show_activity()
        self.view.set_result(metrics, error)
        if self.figures is not None:
            self.figures.show_figures(metrics, live=False)


class GcPause:
    """Holds Python's cyclic garbage collector off while answers stream.

    Measured: a 4,000-token answer at 5,000 tokens/s set off ~300 collections (0.1-0.15 s of
    the screen's CPU, some single ones 50 ms); held off, about a third of that remains, before
    and after the stream. Almost everything a stream allocates is freed by reference counting;
    the cycles it leaves (removed widgets) are collected once the last answer ends.
    """

    def __init__(self) -> None:
        self._holds = 0
        self._was_enabled = False
        self._resuming = False  # a resume is scheduled (the collector is still held off)

    def hold(self) -> None:
        if self._holds == 0 and not self._resuming:
            self._was_enabled = gc.isenabled()
            gc.disable()
        self._holds += 1

    def release(self) -> None:
        self._holds = max(0, self._holds - 1)
        if self._holds != 0 or not self._was_enabled:
            return
        # Not at once: the first collection after a stream takes tens of milliseconds (profiled
        # with py-spy), and run right away it would hold back the frame that shows the
        # answer's end. The collector resumes shortly after, unless another answer began.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            gc.enable()
        else:
            self._resuming = True
            loop.call_later(GC_RESUME_DELAY_S, self._resume)

    def _resume(self) -> None:
        self._resuming = False
        if self._holds == 0 and self._was_enabled:
            gc.enable()


class FrameClock:
    """A ~30 Hz clock owned by a screen; it draws every live answer and stops when none are."""

    def __init__(self, owner: Widget, hz: float = FRAME_HZ) -> None:
        self.owner = owner
        self.interval = 1.0 / hz
        self._answers: list[LiveAnswer] = []
        self._timer: Timer | None = None

    @property
    def running(self) -> bool:
        return self._timer is not None

    def add(self, answer: LiveAnswer) -> None:
        self._answers.append(answer)
        if self._timer is None:
            self._timer = self.owner.set_interval(self.interval, self._tick, name="frame-clock")

    def remove(self, answer: LiveAnswer) -> None:
        if answer in self._answers:
            self._answers.remove(answer)
        if not self._answers and self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _tick(self) -> None:
        for answer in list(self._answers):
            answer.draw()


async def stream_answer(
    turn: Turn,
    view: ReplyView,
    clock: FrameClock,
    *,
    figures: FigureTarget | None = None,
    recorder: ReplyRecorder | None = None,
    gc_pause: GcPause | None = None,
    tools: ToolRunner | None = None,
    approver: Approver | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> TurnResult:
    """Run ``turn`` through :func:`tedchat.session.run_turn`, drawing it into ``view``.

    Returns the turn's result (``error`` set if the engine failed; its text is kept). If the
    task is cancelled the partial answer is drawn, marked ``cancelled``, and the cancellation
    re-raised. A :class:`~tedchat.engine.Notice` from the engine is shown in the reply.
    ``gc_pause`` is the app's shared one (answers streaming at once hold the same collector).
    ``tools``, ``approver`` and ``max_steps`` go to run_turn (the model may call the tools;
    each call shows as a block in ``view``).
    """
    live = LiveAnswer(turn, view, figures)
    gc_pause = gc_pause or GcPause()
    gc_pause.hold()  # released once the answer is drawn to its end
    try:
        return await _stream(
            turn,
            view,
            clock,
            live,
            figures,
            lambda: run_turn(
                turn,
                on_event=live.on_event,
                recorder=recorder,
                tools=tools,
                approver=approver,
                max_steps=max_steps,
            ),
        )
    finally:
        gc_pause.release()


async def _stream(
    turn: Turn,
    view: ReplyView,
    clock: FrameClock,
    live: LiveAnswer,
    figures: FigureTarget | None,
    run: Callable[[], Awaitable[TurnResult]],
) -> TurnResult:
    view.begin_stream()
    if figures is not None:
        figures.reset_rates()
        figures.show_figures(turn.metrics(), live=True)
    clock.add(live)
    try:
        result = await run()
    except asyncio.CancelledError:
        clock.remove(live)
        live.finish(turn.meter.snapshot(), None)
        raise
    except BaseException:
        clock.remove(live)
        live.finish(turn.meter.snapshot(), "the answer stopped unexpectedly")
        raise
    clock.remove(live)
    error = result.error.message if isinstance(result.error, EngineError) else None
    live.finish(result.metrics, error)
    return result
