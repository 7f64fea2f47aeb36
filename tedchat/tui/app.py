"""The Textual application: themes, keymap, engines loading in the background, history.

:class:`TedchatApp` owns what every screen shares: the :class:`~tedchat.engines.Context`, the
:class:`~tedchat.tui.engines.EngineLoader`, the history store (opened in a worker thread after
the first frame; None when history is disabled or unusable) and the clock turns are timed on
(injectable, so tests freeze the figures).

Startup stays light: nothing here imports NumPy or llama.cpp; the first engine load starts
after the first frame, so the prompt takes keys at once.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tedchat.engine import Engine, GenerationParams
from tedchat.engines import Context
from tedchat.errors import HistoryError, TedchatError
from tedchat.metrics import Clock
from tedchat.tui.engines import EngineLoader
from tedchat.tui.live import BackgroundRecorder, GcPause
from tedchat.tui.screens.chat import ChatScreen
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.screens.floorplan import FloorplanScreen
from tedchat.tui.screens.help import HelpScreen, binding_rows, unknown_keymap_ids
from tedchat.tui.screens.history import HistoryScreen
from tedchat.tui.screens.params import ParamsScreen
from tedchat.tui.screens.pickers import ComparePicker, EngineChoice, EnginePicker, TextPrompt
from tedchat.tui.terminal_watch import HangupAwareRecorder, TerminalWatch
from tedchat.tui.themes import choose_theme, discover_themes, remember
from tedchat.tui.widgets.prompt import PromptInput

FALLBACK_THEME = "tokyo-electron"


def binding_owners() -> list[tuple[str, type]]:
    """Every class with key bindings, as the help screen and keymap check list them."""
    return [
        ("app", TedchatApp),
        ("prompt", PromptInput),
        ("chat", ChatScreen),
        ("compare", CompareScreen),
        ("conversations", HistoryScreen),
        ("settings", ParamsScreen),
        ("floorplan", FloorplanScreen),
        ("dialogs", EnginePicker),
        ("dialogs", ComparePicker),
        ("dialogs", TextPrompt),
        ("help", HelpScreen),
    ]


class TedchatApp(App[int]):
    """tedchat's terminal UI."""

    TITLE = "tedchat"
    CSS = """
    Screen { background: $background; }
    Toast { max-width: 70; }
    """
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True, show=False),
        # The footer shows the palette key on its own (right-hand side).
        Binding(
            "ctrl+p", "command_palette", "Commands", id="command-palette", priority=True, show=False
        ),
        Binding("f1", "help", "Help", id="help"),
    ]

    def __init__(
        self,
        context: Context,
        *,
        engine: str | None = None,
        theme: str | None = None,
        compare: list[str] | None = None,
        replay: bool = False,
        params: GenerationParams | None = None,
        system: str = "",
        clock_for: Callable[[Engine], Clock] | None = None,
        store: Any = None,
        new_history: bool = False,
        preload: bool = True,
    ) -> None:
        super().__init__()
        self.context = context
        self.settings = context.settings
        self.loader = EngineLoader(context.engines)
        self.gc_pause = GcPause()  # the collector waits while answers stream (tui.live)
        self.engine_name = engine or self.settings.default_engine
        self.compare_engines = compare
        self.replay = replay
        self.initial_params = params or GenerationParams()
        self.initial_system = system
        self._clock_for = clock_for
        self.preload = preload
        self.new_history = new_history
        self._store = store
        self._store_task: asyncio.Task[Any] | None = None
        self._store_error: str | None = None
        # Every history write runs on this one thread, in order: the store's fsyncs must not
        # stall the event loop (see tedchat.tui.live.BackgroundRecorder).
        self.history_executor = ThreadPoolExecutor(1, thread_name_prefix="tedchat-history")
        self._problems: list[str] = []
        # Ends the app when its terminal goes away (tedchat.tui.terminal_watch).
        self.terminal = TerminalWatch(self)
        self.keymap = dict(self.settings.keymap)
        self._setup_themes(theme)
        self.set_keymap(self.keymap)

    # --- themes and keys ---------------------------------------------------------------------

    def _setup_themes(self, cli_theme: str | None) -> None:
        found = discover_themes()
        self._problems.extend(found.problems)
        for theme in found.themes.values():
            self.register_theme(theme)
        wanted = choose_theme(cli_theme, self.settings.ui.theme)
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self._problems.append(
                f"unknown theme {wanted!r}; themes: {', '.join(sorted(found.themes))} "
                "(and Textual's own; Ctrl+P > Theme lists them)"
            )
            if FALLBACK_THEME in self.available_themes:
                self.theme = FALLBACK_THEME

    def _theme_changed(self, theme: Any) -> None:
        remember("theme", theme.name)

    # --- lifecycle -----------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        return ChatScreen(self.engine_name)

    def on_mount(self) -> None:
        if not self.is_headless:
            self.terminal.start()
        # Subscribed now, so only choices made while running are remembered.
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        unknown = unknown_keymap_ids(binding_owners(), self.keymap)
        if unknown:
            self._problems.append(
                f"[keymap] names no binding {', '.join(unknown)} (F1 lists the binding ids)"
            )
        for problem in self._problems:
            self.notify(problem, severity="warning", timeout=10)
        for failure in getattr(self.context.plugins, "failures", []):
            self.notify(failure.message, severity="warning", timeout=10)
        if self.compare_engines:
            self.open_compare(self.compare_engines, replay=self.replay)
            self.call_after_refresh(gc.freeze)
        elif self.preload:
            # After the first frame: the prompt must take keys before any engine loads.
            self.call_after_refresh(self._warm_up)

    def _warm_up(self) -> None:
        # Everything alive now (imports, the first screen) lives as long as the app: moved out
        # of the collector's reach, a full collection during a stream costs a few ms, not ~50.
        gc.freeze()
        self.loader.start(self.engine_name)
        if self.settings.history.enabled:
            self.run_worker(self.history(), group="history-open", exit_on_error=False)

    # --- what screens share -----------------------------------------------------------------

    def clock_for(self, engine: Engine) -> Clock:
        """The clock a turn on ``engine`` is timed on (tests inject a frozen one)."""
        return self._clock_for(engine) if self._clock_for is not None else time.perf_counter

    async def history(self) -> Any:
        """The history store, opened on first use; None if disabled or it cannot be used."""
        if self._store is not None or not self.settings.history.enabled:
            return self._store
        if self._store_error is not None:
            return None
        if self._store_task is None:
            from tedchat.history.files import open_history

            self._store_task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(open_history, self.settings, new_history=self.new_history)
            )
        try:
            self._store = await asyncio.shield(self._store_task)
        except TedchatError as exc:
            self._store_error = exc.message + (f" ({exc.hint})" if exc.hint else "")
            if isinstance(exc, HistoryError) and not self.new_history:
                self._offer_fresh_history(exc.message)
            else:
                self.notify(f"history off: {self._store_error}", severity="error", timeout=10)
            return None
        return self._store

    def _offer_fresh_history(self, problem: str) -> None:
        """The same choice ``--new-history`` gives on the command line, as a dialog."""
        from tedchat.tui.screens.history import FreshHistoryDialog

        def chosen(fresh: bool | None) -> None:
            if not fresh:
                self.notify(f"history off: {self._store_error}", severity="error", timeout=10)
                return
            self.new_history = True
            self._store_error = None
            self._store_task = None
            self.run_worker(self.history(), group="history-open", exit_on_error=False)

        self.push_screen(FreshHistoryDialog(problem), chosen)

    async def in_history(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a store call on the history thread (after every write queued before it)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.history_executor, partial(fn, *args, **kwargs))

    async def history_idle(self) -> None:
        """Wait until every history write queued so far is done."""
        await self.in_history(lambda: None)

    async def reply_recorder(
        self, store: Any, conversation_id: int, message_id: int, engine: Engine
    ) -> HangupAwareRecorder | None:
        """A recorder saving one reply as it streams, or None if the history failed."""
        try:
            writer = await self.in_history(
                store.begin_reply, conversation_id, message_id, engine.name, engine.model
            )
        except TedchatError as exc:
            self.history_failed(exc)
            return None
        recorder = BackgroundRecorder(writer, self.history_executor, self.history_failed)
        return self.terminal.recorder(recorder)  # interrupted, not cancelled, on a hangup

    def history_unavailable(self) -> str:
        """Why there is no history, in one line."""
        if not self.settings.history.enabled:
            return "history is disabled ([history] enabled = false)"
        return f"history is unavailable: {self._store_error or 'not open yet'}"

    def history_failed(self, exc: Exception) -> None:
        """A write to the history failed: say so once per failure, keep chatting."""
        message = getattr(exc, "message", str(exc))
        self.notify(f"history not saved: {message}", severity="error", timeout=10)

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

    def open_compare(self, names: list[str], *, replay: bool = False) -> None:
        """Show the side-by-side screen for ``names`` (2 to 4 engines)."""
        chat = self.chat_screen()
        params = chat.conversation.params if chat is not None else self.initial_params
        system = chat.conversation.system if chat is not None else self.initial_system
        self.push_screen(CompareScreen(names, replay=replay, params=params, system=system))
        if self.settings.history.enabled:
            self.run_worker(self.history(), group="history-open", exit_on_error=False)

    def chat_screen(self) -> ChatScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, ChatScreen):
                return screen
        return None

    async def close_resources(self) -> None:
        """Close the history (open replies end as interrupted) and unload engines."""
        self.terminal.stop()
        # Queued writes first: the store marks replies still open at close as interrupted.
        self.history_executor.shutdown(wait=True)
        if self._store is not None:
            self._store.close()
            self._store = None
        await self.context.engines.close()

    # --- actions and commands ---------------------------------------------------------------

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(binding_rows(binding_owners(), self.keymap)))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Help: keys", "Every key binding and its id for [keymap] (F1)", self.action_help
        )
        chat = self.chat_screen()
        yield SystemCommand(
            "Compare engines",
            "Send one prompt to 2-4 engines side by side",
            chat.action_compare if chat is not None else self.action_help,
        )
        if chat is None or screen is not chat:
            return
        yield SystemCommand(
            "New conversation", "Start a new conversation (Ctrl+N)", chat.action_new_conversation
        )
        yield SystemCommand(
            "Conversations",
            "Resume, rename, delete or search conversations (Ctrl+O)",
            chat.action_conversations,
        )
        yield SystemCommand(
            "Regenerate", "Answer the last prompt again (Ctrl+R)", chat.action_regenerate
        )
        yield SystemCommand(
            "Edit last prompt", "Edit the last prompt and resend it (Ctrl+L)", chat.action_edit_last
        )
        yield SystemCommand(
            "Copy reply", "Copy the last reply to the clipboard (F8)", chat.action_copy_reply
        )
        yield SystemCommand(
            "Copy code block", "Copy one code block of the last reply (F9)", chat.action_copy_code
        )
        yield SystemCommand(
            "Conversation settings",
            "System prompt and generation parameters (F4)",
            chat.action_settings,
        )
        yield SystemCommand(
            "Wafer floorplan", "Where a wafer engine placed the model (F10)", chat.action_floorplan
        )
        for name in self.context.engines.names():
            yield SystemCommand(
                f"Engine: {name}",
                f"Send the next prompts to {name}",
                partial(chat.set_engine, name),
            )
