"""What the screens share, handed to each screen's constructor.

A screen gets one :class:`Services` value and uses nothing else of the app's: the configured
engines and their loader, the history, the clock turns are timed on, the garbage-collector
pause, the keymap, the settings a new conversation starts with, and the tools the model may
call (with the approval dialogs that ask about them). So no screen imports the app, and a test
can build a screen's world without one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.app import App

from tedchat.config import Settings
from tedchat.engine import Engine, GenerationParams
from tedchat.engines import Context
from tedchat.errors import TedchatError
from tedchat.history.integrity import waiting_for_lock
from tedchat.metrics import Clock
from tedchat.session import (
    DEFAULT_MAX_STEPS,
    HistoryWriter,
    ReplyRecorder,
    ToolRunner,
    said_if_slow,
)
from tedchat.tools.base import Approval, ApprovalRequest, Approver
from tedchat.tui.live import GcPause
from tedchat.tui.loader import EngineLoader
from tedchat.tui.screens.approval import ApprovalDialogs
from tedchat.tui.screens.pickers import EngineChoice

if TYPE_CHECKING:
    from tedchat.history.store import Store


def real_clock(_engine: Engine) -> Clock:
    """Turns are timed on the process's performance counter (tests inject a frozen clock)."""
    return time.perf_counter


def unwatched(recorder: ReplyRecorder) -> ReplyRecorder:
    """A reply's recorder as it is (no terminal watch)."""
    return recorder


async def no_tool_sources() -> list[str]:
    """Tools that need no start (or none at all): nothing to wait for, nothing to say."""
    return []


class History:
    """The history as the screens use it: opened on first use (in a worker thread, after the
    first frame), written only through its :class:`~tedchat.session.HistoryWriter`.

    ``store`` is the open :class:`~tedchat.history.store.Store`, or None while it is not open,
    when history is disabled, or when it cannot be used (``unavailable()`` says why).
    ``notify_error`` shows a one-line error; ``on_open_error`` is told when opening fails (the
    app offers a fresh history for a damaged file).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        notify_error: Callable[[str], None],
        on_open_error: Callable[[TedchatError], None],
        store: Store | None = None,
        new_history: bool = False,
    ) -> None:
        self.settings = settings
        self.new_history = new_history
        self._notify_error = notify_error
        self._on_open_error = on_open_error
        self._writer = self._writer_for(store) if store is not None else None
        self._task: asyncio.Task[Store] | None = None
        self._error: str | None = None

    @property
    def enabled(self) -> bool:
        return self._writer is not None or self.settings.history.enabled

    @property
    def store(self) -> Store | None:
        """The open store, or None."""
        return self._writer.store if self._writer is not None else None

    def _writer_for(self, store: Store) -> HistoryWriter:
        return HistoryWriter(store, on_error=self.failed)

    async def writer(self) -> HistoryWriter | None:
        """The history's writer, opening the store on first use; None if disabled or failed."""
        if self._writer is not None or not self.settings.history.enabled:
            return self._writer
        if self._error is not None:
            return None
        if self._task is None:
            from tedchat.history.files import open_history

            self._task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(open_history, self.settings, new_history=self.new_history)
            )
        try:
            store = await asyncio.shield(self._task)
        except TedchatError as exc:
            if self._error is None:  # several waiters: one report
                self._error = exc.message + (f" ({exc.hint})" if exc.hint else "")
                self._on_open_error(exc)
            return None
        if self._writer is None:
            self._writer = self._writer_for(store)
        return self._writer

    async def turn_writer(self, on_wait: Callable[[str | None], None]) -> HistoryWriter | None:
        """:meth:`writer` for a turn, which waits for it: opening writes (replies whose writer
        died are marked), so it may wait for another process's lock; ``on_wait`` is told so
        after half a second (:func:`~tedchat.session.said_if_slow`)."""
        line = waiting_for_lock(self.settings.history.lock_timeout_s)
        return await said_if_slow(self.writer(), on_wait, line)

    async def open(self) -> Store | None:
        """The store for reading (opened on first use); None if disabled or failed."""
        writer = await self.writer()
        return writer.store if writer is not None else None

    def retry(self, *, new_history: bool) -> None:
        """Forget a failed open, so the next use tries again (a fresh file if asked)."""
        self.new_history = new_history
        self._error = None
        self._task = None

    def unavailable(self) -> str:
        """Why there is no history, in one line."""
        if not self.enabled:
            return "history is disabled ([history] enabled = false)"
        return f"history is unavailable: {self._error or 'not open yet'}"

    @property
    def error(self) -> str | None:
        """Why the history could not be opened, if it could not."""
        return self._error

    def failed(self, exc: Exception) -> None:
        """A write to the history failed: say so once per failure, keep chatting."""
        message = getattr(exc, "message", str(exc))
        self._notify_error(f"history not saved: {message}")

    async def saved(self, save: Awaitable[None]) -> bool:
        """Await a turn's prompt save (:meth:`~tedchat.session.TurnHistory.save_prompt`);
        False when it failed (said once, as :meth:`failed` does): the turn goes on unsaved."""
        from tedchat.errors import HistoryError

        try:
            await save
        except HistoryError as exc:
            self.failed(exc)
            return False
        return True

    async def idle(self) -> None:
        """Wait until every history write queued so far is done."""
        if self._writer is not None:
            await self._writer.idle()

    def close(self) -> None:
        """Finish the queued writes and close the store (open replies end interrupted)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


@dataclass(frozen=True)
class Services:
    """Everything a screen may use, given to its constructor."""

    context: Context
    loader: EngineLoader
    history: History
    gc_pause: GcPause
    keymap: Mapping[str, str] = field(default_factory=dict)
    clock_for: Callable[[Engine], Clock] = real_clock
    initial_system: str = ""
    initial_params: GenerationParams = field(default_factory=GenerationParams)
    #: Wraps a streaming reply's recorder (the app's terminal watch: a reply cut short because
    #: the terminal went away is saved as ``interrupted``, not ``cancelled``).
    watch_reply: Callable[[ReplyRecorder], ReplyRecorder] = unwatched
    #: The tools the model may call (None: no tools; engines that do not declare ``tools``
    #: are never offered them).
    tools: ToolRunner | None = None
    #: Model steps in one turn (``[tools] max_steps``).
    max_steps: int = DEFAULT_MAX_STEPS
    #: Waits until the tool sources still starting (MCP servers) are in or left out; returns
    #: one line per source left out. Awaited before a turn that offers tools.
    tools_ready: Callable[[], Awaitable[list[str]]] = no_tool_sources
    #: Offers other tool sources from now on (a preset picked in the UI); the app's
    #: :meth:`~tedchat.tui.tools.AppTools.use_sources`.
    use_tool_sources: Callable[[list[str]], Awaitable[None]] | None = None
    #: The app's approval dialogs (one shown at a time).
    approvals: ApprovalDialogs = field(default_factory=ApprovalDialogs)

    def approver(self, app: App[Any], stop: Callable[[], None] | None = None) -> Approver:
        """The approver a screen hands to its turns: asks through a dialog on ``app``;
        ``stop`` (the screen's Esc) runs when the person chooses to stop the answer."""
        approvals = self.approvals

        async def approve(request: ApprovalRequest) -> Approval:
            return await approvals.ask(app, request, stop=stop)

        return approve

    def reply_recorder(self, buffer: ReplyRecorder | None) -> ReplyRecorder | None:
        """The recorder a screen hands to ``stream_answer`` for ``buffer`` (None: no history)."""
        return self.watch_reply(buffer) if buffer is not None else None

    @property
    def settings(self) -> Settings:
        return self.context.settings

    def engine_choices(self) -> list[EngineChoice]:
        """Every configured engine, as the pickers list them."""
        choices = []
        for name in self.context.engines.names():
            try:
                engine = self.loader.engine(name)
            except TedchatError as exc:
                choices.append(EngineChoice(name, f"unavailable: {exc.message}"))
                continue
            state = self.loader.state(name)
            status = (
                "loaded" if state and state.ready else ("failed" if state and state.error else "")
            )
            where = "local" if engine.local else "remote"
            detail = f"{engine.type} · {engine.model} · {where}" + (
                f" · {status}" if status else ""
            )
            choices.append(EngineChoice(name, detail))
        return choices
