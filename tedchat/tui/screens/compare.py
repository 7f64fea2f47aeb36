"""Side by side: one prompt to 2-4 engines at once, each streaming in its own pane.

All engines are loaded first; a pane whose emulated hardware outruns this machine prepares
its answer (:mod:`tedchat.race`); then every answer starts in the same event-loop step, the race
start, so no engine's TTFT includes another's load or preparation. Local engines running
together share the machine's thread budget: ``runtime.local_engines_at_once`` is set to how
many of them are local before they load or run, and restored when the screen closes.

Each pane's answer runs through :func:`tedchat.tui.live.stream_answer` like the chat screen's,
all drawn on one frame clock. When all have finished, a summary table compares their figures.
Every pane whose engine declares ``tools`` is offered the app's tools; the panes' approval
questions queue for the one dialog (:class:`~tedchat.tui.screens.approval.ApprovalDialogs`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker

from tedchat.conversation import engine_context_tokens
from tedchat.engine import Engine, GenerationParams, Message, capabilities_of
from tedchat.errors import EngineError, TedchatError
from tedchat.gauges import measure_context, reply_cost
from tedchat.race import Mode, PreparedRecorder, Race
from tedchat.session import Turn, TurnHistory
from tedchat.tui.live import FrameClock, stream_answer
from tedchat.tui.loader import LoadState
from tedchat.tui.services import Services
from tedchat.tui.widgets.compare_pane import ComparePane
from tedchat.tui.widgets.compare_summary import CompareSummary, PaneResult, time_to_last_token
from tedchat.tui.widgets.messages import Notice, reply_caption
from tedchat.tui.widgets.prompt import PromptInput

MIN_PANES, MAX_PANES = 2, 4


REPLAY_NOTICE = (
    "replay: every answer is computed first, then played from a common start at its emulated "
    "times (engines without an emulated clock play back as they streamed)"
)


class CompareScreen(Screen[None]):
    """2 to 4 engines answering the same prompts side by side."""

    DEFAULT_CSS = """
    CompareScreen > #panes { height: 1fr; }
    CompareScreen > #notice { height: auto; color: $warning; padding: 0 1; display: none; }
    CompareScreen > #notice.-shown { display: block; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Stop all", id="compare-cancel"),
        Binding("f12,ctrl+b", "close", "Back to chat", id="compare-close"),
        Binding("f3", "continue_in_chat", "Continue in chat", id="compare-continue", show=False),
    ]

    def __init__(
        self,
        services: Services,
        engine_names: list[str],
        *,
        replay: bool = False,
        live: bool = False,
        params: GenerationParams | None = None,
        system: str = "",
    ) -> None:
        if not MIN_PANES <= len(engine_names) <= MAX_PANES:
            raise ValueError(f"compare takes 2 to 4 engines, got {len(engine_names)}")
        super().__init__()
        self.services = services
        self.engine_names = list(engine_names)
        self.replay = replay
        # tedchat.race: prepare when needed (auto), always (--replay) or never (--live).
        self.mode: Mode = "replay" if replay else "live" if live else "auto"
        self.params = params or GenerationParams()
        self.system = system
        self.frame_clock = FrameClock(self)
        self._run: Worker[Any] | None = None
        self._conversation_id: int | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._saved_local_at_once: int | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="notice")
        with Horizontal(id="panes"):
            for name in self.engine_names:
                try:
                    model = self.services.loader.engine(name).model
                except TedchatError:
                    model = "?"
                yield self.make_pane(name, model)
        yield CompareSummary()
        yield PromptInput(id="prompt")
        yield Footer()

    def make_pane(self, name: str, model: str) -> ComparePane:
        """The pane for engine ``name`` (the arena's panes are blind)."""
        return ComparePane(name, model)

    def heading(self) -> str:
        """The header's subtitle (the arena's names no engine)."""
        return "side by side: " + " · ".join(self.engine_names)

    def on_mount(self) -> None:
        self.sub_title = self.heading()
        loader = self.services.loader
        engines = []
        for name in self.engine_names:
            try:
                engines.append(loader.engine(name))
            except TedchatError as exc:
                self._notice(exc.message)
        # Share the thread budget before anything loads: llama.cpp sizes its threads at load.
        runtime = self.services.context.engines.runtime
        self._saved_local_at_once = runtime.local_engines_at_once
        runtime.local_engines_at_once = max(1, sum(1 for e in engines if e.local))
        if self.replay:
            self._notice(REPLAY_NOTICE)
        self._unsubscribe = loader.subscribe(self._load_changed)
        for pane in self.query(ComparePane):
            pane.status.show_load(loader.state(pane.engine_name))
        for name in self.engine_names:
            loader.start(name)
        self.query_one(PromptInput).focus()
        if self.services.history.enabled:  # opened now, so the first prompt need not wait
            self.run_worker(
                self.services.history.writer(), group="history-open", exit_on_error=False
            )

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._saved_local_at_once is not None:
            self.services.context.engines.runtime.local_engines_at_once = self._saved_local_at_once

    def _notice(self, text: str) -> None:
        notice = self.query_one("#notice", Static)
        notice.update(Text(text))
        notice.add_class("-shown")

    def _load_changed(self, state: LoadState) -> None:
        for pane in self.query(ComparePane):
            if pane.engine_name == state.name:
                pane.status.show_load(state)

    @property
    def busy(self) -> bool:
        return self._run is not None and self._run.is_running

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return True if self.busy else None
        if action == "continue_in_chat":
            return True if not self.busy and self._conversation_id is not None else None
        return True

    # --- sending -----------------------------------------------------------------------------

    @on(PromptInput.Submitted)
    def _submitted(self, event: PromptInput.Submitted) -> None:
        if self.busy:
            event.prompt.set_text(event.text)
            self.notify("answers are still streaming: Esc stops them", severity="warning")
            return
        self.send(event.text)

    def send(self, prompt: str) -> None:
        """Send ``prompt`` to every pane's engine at once."""
        self.query_one(CompareSummary).hide()
        panes = list(self.query(ComparePane))
        views = [pane.add_exchange(prompt) for pane in panes]
        self._run = self.run_worker(
            self._run_all(prompt, panes, views), group="compare", exit_on_error=False
        )
        self.refresh_bindings()

    async def _run_all(self, prompt: str, panes: list[ComparePane], views: list[Any]) -> None:
        services = self.services
        loader = services.loader

        def waiting(line: str | None) -> None:  # the history file is locked: say so
            for pane, view in zip(panes, views, strict=True):
                plain = reply_caption(view.engine_name, view.model_name, None)
                view.set_caption(f"{pane.engine_name} · {line}" if line else plain)

        history = TurnHistory(
            await services.history.turn_writer(waiting),
            self._conversation_id,
            system=self.system,
            params=self.params,
        )
        # One prompt, one message: every pane answers it.
        if not await services.history.saved(history.save_prompt(prompt, on_wait=waiting)):
            history.writer = None
        self._conversation_id = history.conversation_id
        for pane, view in zip(panes, views, strict=True):
            if not loader.is_ready(pane.engine_name):
                view.set_caption(f"{pane.engine_name} · waiting for the engine to load…")
        loaded = await asyncio.gather(
            *(loader.ready(p.engine_name) for p in panes), return_exceptions=True
        )
        ready = []
        for pane, view, engine in zip(panes, views, loaded, strict=True):
            if isinstance(engine, BaseException):
                message = engine.message if isinstance(engine, TedchatError) else str(engine)
                view.set_result(None, message)
                continue
            ready.append((pane, view, engine))
        messages = self._messages(prompt)
        race = Race([engine for _p, _v, engine in ready], self.mode)
        if race.prepares:
            ready = await self._prepare(race, ready, messages)
        prepare_s = {id(e.engine): e.prepare_s for e in race.entrants}
        if services.tools is not None and any(capabilities_of(e).tools for _p, _v, e in ready):
            for line in await services.tools_ready():  # MCP servers still starting
                self._notice(line)
        approver = services.approver(self.app, stop=self.action_cancel)
        for pane, _view, engine in ready:
            specs = (
                services.tools.specs() if services.tools and capabilities_of(engine).tools else ()
            )
            context = engine_context_tokens(engine, services.settings.ui.context_tokens)
            gauge = await measure_context(engine, messages, self.params, context, tools=specs)
            pane.status.show_context(gauge)
        jobs = []
        for pane, view, engine in ready:
            recorder = services.reply_recorder(await history.begin_reply(engine))
            prepared = prepare_s.get(id(engine))
            if prepared is not None:
                view.add_notice(
                    f"prepared in {prepared:.1f} s before the race start "
                    "(TTFT and tok/s count from the start)"
                )
                if recorder is not None:
                    recorder = PreparedRecorder(recorder, prepared)
            turn = Turn(engine, messages, self.params, clock=services.clock_for(engine))
            jobs.append(
                (
                    pane,
                    turn,
                    stream_answer(
                        turn,
                        view,
                        self.frame_clock,
                        figures=pane.status,
                        recorder=recorder,
                        gc_pause=services.gc_pause,
                        tools=services.tools,
                        approver=approver,
                        max_steps=services.max_steps,
                    ),
                )
            )
        # The race start: every answer starts in this same step (prepared panes play from
        # here, live engines get their request now), a fair start for TTFT.
        try:
            results = await asyncio.gather(*(job for _p, _t, job in jobs), return_exceptions=True)
        except asyncio.CancelledError:
            # gather let every pane finish its cancellation (partial text drawn) first.
            self._summarise(jobs, [None] * len(jobs))
            raise
        self._summarise(jobs, list(results))

    async def _prepare(
        self, race: Race, ready: list[tuple[ComparePane, Any, Engine]], messages: list[Message]
    ) -> list[tuple[ComparePane, Any, Engine]]:
        """Prepare the panes that need it (tedchat.race), showing each pane's state:
        ``preparing`` with its progress, then ``waiting`` for the race start."""
        max_tokens = max(1, self.params.max_tokens)
        entrants = race.entrants

        def show() -> None:
            for (pane, view, _e), entrant in zip(ready, entrants, strict=True):
                if entrant.prepares and not entrant.prepared:
                    pct = min(99, 100 * entrant.tokens // max_tokens)
                    view.set_caption(f"{pane.engine_name} · preparing {pct}%…")
                else:
                    view.set_caption(f"{pane.engine_name} · waiting for the race start…")

        show()
        timer = self.set_interval(0.25, show, name="race-prepare")
        try:
            outcomes = await race.prepare(messages, self.params)
        except asyncio.CancelledError:
            for _pane, view, _e in ready:
                view.set_caption("preparation cancelled")
            raise
        finally:
            timer.stop()
        kept: list[tuple[ComparePane, Any, Engine]] = []
        for (pane, view, _e), entrant, outcome in zip(ready, entrants, outcomes, strict=True):
            if outcome is not None:
                message = outcome.message if isinstance(outcome, TedchatError) else str(outcome)
                view.set_result(None, message)
            else:
                kept.append((pane, view, entrant.engine))
        return kept

    def _summarise(self, jobs: list[tuple[ComparePane, Turn, Any]], results: list[Any]) -> None:
        summary = []
        for (pane, turn, _job), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(
                result, (EngineError, asyncio.CancelledError)
            ):
                pane.log_view.mount(Notice(f"{type(result).__name__}: {result}", error=True))
            metrics = turn.meter.snapshot()
            prices = self.services.context.engines.prices(pane.engine_name)
            cost = reply_cost(prices, metrics.prompt_tokens, metrics.output_tokens)
            pane.status.show_cost(cost)
            summary.append(
                PaneResult(
                    pane.engine_name,
                    pane.model,
                    metrics,
                    time_to_last_token(turn.meter),
                    cost,
                )
            )
        if summary:
            self.query_one(CompareSummary).show(summary)
        self.call_after_refresh(self.refresh_bindings)

    def _messages(self, prompt: str) -> list[Message]:
        # Each prompt stands alone: the panes' answers differ, so there is no one history.
        system = [Message("system", self.system)] if self.system.strip() else []
        return [*system, Message("user", prompt)]

    # --- actions -----------------------------------------------------------------------------

    def action_cancel(self) -> None:
        if self._run is not None and self._run.is_running:
            self._run.cancel()

    def action_continue_in_chat(self) -> None:
        """Pick a pane; its reply becomes the conversation's and chat goes on with its engine."""
        from tedchat.tui.continue_chat import ContinuePicker
        from tedchat.tui.screens.pickers import EngineChoice

        choices = [EngineChoice(p.engine_name, p.model) for p in self.query(ComparePane)]
        self.app.push_screen(
            ContinuePicker(choices, ""),
            lambda name: self.continue_with(name) if name else None,
        )

    def continue_with(self, engine: str) -> None:
        """Continue in chat with ``engine``'s reply to the last prompt (:mod:`continue_chat`)."""
        from tedchat.tui.continue_chat import ContinueInChat, choose_reply

        async def go() -> None:
            await choose_reply(self.services, self._conversation_id, engine)
            self.app.post_message(ContinueInChat(self._conversation_id, engine))
            self.dismiss(None)

        self.run_worker(go(), group="continue", exclusive=True, exit_on_error=False)

    def action_close(self) -> None:
        if self._run is not None and self._run.is_running:
            self._run.cancel()
        self.dismiss(None)
