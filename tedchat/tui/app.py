"""The Textual application: themes, keymap, engines loading in the background, history.

:class:`TedchatApp` builds what every screen shares, one :class:`~tedchat.tui.services.Services`
value handed to each screen's constructor: the :class:`~tedchat.engines.Context`, the
:class:`~tedchat.tui.loader.EngineLoader`, the history (opened in a worker thread after the
first frame; None when history is disabled or unusable), the clock turns are timed on
(injectable, so tests freeze the figures) and the tools (:class:`~tedchat.tui.tools.AppTools`,
opened after the first frame, MCP servers starting in the background).

Startup stays light: nothing here imports NumPy or llama.cpp; the first engine load starts
after the first frame, so the prompt takes keys at once.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tedchat.engine import Engine, GenerationParams
from tedchat.engines import Context
from tedchat.errors import HistoryError, TedchatError
from tedchat.metrics import Clock
from tedchat.session import ToolRunner
from tedchat.tui.continue_chat import ContinueInChat
from tedchat.tui.live import GcPause
from tedchat.tui.loader import EngineLoader
from tedchat.tui.screens.approval import ApprovalDialog
from tedchat.tui.screens.arena import ArenaScreen
from tedchat.tui.screens.chat import ChatScreen
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.screens.floorplan import FloorplanScreen
from tedchat.tui.screens.help import HelpScreen, binding_rows, unknown_keymap_ids
from tedchat.tui.screens.history import HistoryScreen
from tedchat.tui.screens.params import ParamsScreen
from tedchat.tui.screens.pickers import ComparePicker, EnginePicker, TextPrompt
from tedchat.tui.services import History, Services, no_tool_sources, real_clock
from tedchat.tui.terminal_watch import TerminalWatch
from tedchat.tui.themes import choose_theme, discover_themes, remember
from tedchat.tui.tools import AppTools
from tedchat.tui.widgets.prompt import PromptInput
from tedchat.tui.widgets.tool_call import ToolCallBlock

if TYPE_CHECKING:
    from tedchat.history.store import Store

FALLBACK_THEME = "tokyo-electron"


def binding_owners() -> list[tuple[str, type]]:
    """Every class with key bindings, as the help screen and keymap check list them."""
    return [
        ("app", TedchatApp),
        ("prompt", PromptInput),
        ("chat", ChatScreen),
        ("compare", CompareScreen),
        ("arena", ArenaScreen),
        ("conversations", HistoryScreen),
        ("settings", ParamsScreen),
        ("floorplan", FloorplanScreen),
        ("dialogs", EnginePicker),
        ("dialogs", ComparePicker),
        ("dialogs", TextPrompt),
        ("help", HelpScreen),
        ("tool calls", ToolCallBlock),
        ("approval", ApprovalDialog),
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
        blind: bool = False,
        seed: int | None = None,
        preset: str | None = None,
        live: bool = False,
        params: GenerationParams | None = None,
        system: str = "",
        clock_for: Callable[[Engine], Clock] | None = None,
        store: Store | None = None,
        new_history: bool = False,
        preload: bool = True,
        tools: ToolRunner | None = None,
    ) -> None:
        super().__init__()
        self.context = context
        self.settings = context.settings
        self.loader = EngineLoader(context.engines)
        self.engine_name = engine or self.settings.default_engine
        self.compare_engines = compare
        self.replay = replay
        self.blind = blind  # compare --blind / tedchat arena: the ArenaScreen
        self.seed = seed
        self.preset = preset
        self.live = live
        self.preload = preload
        self.history = History(
            self.settings,
            notify_error=lambda text: self.notify(text, severity="error", timeout=10),
            on_open_error=self._history_open_failed,
            store=store,
            new_history=new_history,
        )
        self._problems: list[str] = []
        # The [tools] toolbox, opened once the app runs (tests hand in a ToolRunner of their own).
        self.tools: AppTools | None = (
            AppTools(self.settings, context.plugins) if tools is None else None
        )
        # Ends the app when its terminal goes away (tedchat.tui.terminal_watch).
        self.terminal = TerminalWatch(self)
        self.keymap = dict(self.settings.keymap)
        self.services = Services(
            context=context,
            loader=self.loader,
            history=self.history,
            gc_pause=GcPause(),  # the collector waits while answers stream (tui.live)
            keymap=self.keymap,
            clock_for=clock_for or real_clock,
            initial_system=system,
            initial_params=params or GenerationParams(),
            # A reply cut short by a lost terminal is saved as interrupted, not cancelled
            # (looked up per reply: tests swap in a watch of their own).
            watch_reply=lambda recorder: self.terminal.recorder(recorder),
            tools=tools if tools is not None else self.tools,
            max_steps=self.settings.tools.max_steps,
            tools_ready=self.tools.ready if self.tools is not None else no_tool_sources,
            use_tool_sources=self.tools.use_sources if self.tools is not None else None,
        )
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
        return ChatScreen(self.services, self.engine_name)

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
        if self.tools is not None:
            # After the first frame; MCP servers start in the background from here.
            self.call_after_refresh(self.tools.start)
        if self.compare_engines:
            services = self.services
            options: dict[str, Any] = {
                "replay": self.replay,
                "live": self.live,
                "params": services.initial_params,
                "system": services.initial_system,
            }
            engines = self.compare_engines
            self.push_screen(
                ArenaScreen(services, engines, seed=self.seed, preset=self.preset, **options)
                if self.blind
                else CompareScreen(services, engines, **options)
            )
            self.call_after_refresh(gc.freeze)
        elif self.preload:
            # After the first frame: the prompt must take keys before any engine loads.
            self.call_after_refresh(self._warm_up)

    async def on_unmount(self) -> None:
        # MCP servers live on this event loop: they are stopped before it ends (close_resources
        # runs after it, on another loop).
        if self.tools is not None:
            await self.tools.aclose()

    def _warm_up(self) -> None:
        # Everything alive now (imports, the first screen) lives as long as the app: moved out
        # of the collector's reach, a full collection during a stream costs a few ms, not ~50.
        gc.freeze()
        self.loader.start(self.engine_name)
        if self.settings.history.enabled:
            self.run_worker(self.history.writer(), group="history-open", exit_on_error=False)

    # --- the history --------------------------------------------------------------------------

    def _history_open_failed(self, exc: TedchatError) -> None:
        if isinstance(exc, HistoryError) and not self.history.new_history:
            self._offer_fresh_history(exc.message)
        else:
            self.notify(f"history off: {self.history.error}", severity="error", timeout=10)

    def _offer_fresh_history(self, problem: str) -> None:
        """The same choice ``--new-history`` gives on the command line, as a dialog."""
        from tedchat.tui.screens.history import FreshHistoryDialog

        def chosen(fresh: bool | None) -> None:
            if not fresh:
                self.notify(f"history off: {self.history.error}", severity="error", timeout=10)
                return
            self.history.retry(new_history=True)
            self.run_worker(self.history.writer(), group="history-open", exit_on_error=False)

        self.push_screen(FreshHistoryDialog(problem), chosen)

    async def history_idle(self) -> None:
        """Wait until every history write queued so far is done."""
        await self.history.idle()

    # --- screens ------------------------------------------------------------------------------

    def chat_screen(self) -> ChatScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, ChatScreen):
                return screen
        return None

    async def on_continue_in_chat(self, message: ContinueInChat) -> None:
        """A side-by-side screen chose a pane: chat goes on with its conversation and engine."""
        chat = self.chat_screen()
        if chat is None:
            return
        if message.conversation_id is not None:
            await chat.open_conversation(message.conversation_id)
        chat.set_engine(message.engine)

    async def close_resources(self) -> None:
        """Close the history (open replies end as interrupted) and unload engines."""
        self.terminal.stop()
        # Queued writes first: the store marks replies still open at close as interrupted.
        self.history.close()
        if self.tools is not None:
            await self.tools.aclose()  # MCP servers stop with the app
        await self.context.engines.close()

    # --- actions and commands ---------------------------------------------------------------

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(binding_rows(binding_owners(), self.keymap)))

    def action_arena(self) -> None:
        """Pick 2-4 engines, then open the arena on them (the chat's system prompt and
        parameters)."""
        chat = self.chat_screen()
        current = [chat.engine_name] if chat is not None else []

        def chosen(names: list[str] | None) -> None:
            if not names:
                return
            conv = chat.conversation if chat is not None else None
            self.push_screen(
                ArenaScreen(
                    self.services,
                    names,
                    seed=self.seed,
                    preset=self.preset,
                    params=conv.params if conv is not None else self.services.initial_params,
                    system=conv.system if conv is not None else self.services.initial_system,
                )
            )

        self.push_screen(ComparePicker(self.services.engine_choices(), current), chosen)

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
        yield SystemCommand(
            "Arena (blind vote)",
            "2-4 engines answer blind in panes A, B, ...; vote, then see which was which",
            self.action_arena,
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
            "Regenerate",
            "Answer the selected (else the last) prompt again: a sibling reply (Ctrl+R)",
            chat.action_regenerate,
        )
        yield SystemCommand(
            "Edit prompt",
            "Edit the selected (else the last) prompt and send it as a new branch (Ctrl+L)",
            chat.action_edit_last,
        )
        yield SystemCommand(
            "Previous version",
            "Step the selected message (else the last reply) to its previous version (Alt+←)",
            chat.action_branch_previous,
        )
        yield SystemCommand(
            "Next version",
            "Step the selected message (else the last reply) to its next version (Alt+→)",
            chat.action_branch_next,
        )
        yield SystemCommand(
            "Attach files",
            "Attach a file, glob or folder to the next prompt (Ctrl+F; or type @path)",
            chat.action_attach,
        )
        yield SystemCommand(
            "Copy reply", "Copy the last reply to the clipboard (F8)", chat.action_copy_reply
        )
        yield SystemCommand(
            "Copy code block", "Copy one code block of the last reply (F9)", chat.action_copy_code
        )
        yield SystemCommand(
            "Preset", "Use a [presets.NAME] for the next prompts (F11)", chat.action_presets
        )
        yield SystemCommand(
            "Edit prompt in $EDITOR",
            "Write the prompt in $VISUAL or $EDITOR (Ctrl+G)",
            chat.action_external_editor,
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
