"""The chat screen: a conversation with one engine at a time, streamed as Markdown.

- The log follows the bottom while an answer streams (``anchor()``) unless the user scrolls up;
  scrolling back to the bottom follows again (Textual re-anchors there).
- Every answer runs through :mod:`tedchat.session` (the prompt saved before the request, the
  reply recorded as it streams) and :func:`tedchat.tui.live.stream_answer` (drawing on the
  screen's frame clock). Esc cancels the worker running it: the partial reply stays, marked
  ``cancelled``.
- The prompt is usable at once: a prompt sent while the engine loads waits for the load.
- When the conversation outgrows the engine's context, the oldest exchanges are left out of the
  request and a notice in the log says how many (estimated at characters / 4).
- An engine that declares ``tools`` is offered the app's tools (``Services.tools``): each call
  shows as a block in the reply, a call that needs approval asks in a dialog, and a resumed
  conversation's tool calls are shown and sent again (as the steps they were) to tool engines.
  Esc cancels a running tool like a running answer.
- Branches (the history keeps a tree: :mod:`tedchat.history.tree`): Alt+↑/↓ select a prompt or
  reply, Ctrl+L edits the selected prompt (the last one when none is selected) and Enter sends
  it as a new branch from that point; Ctrl+R regenerates the selected (or last) reply as a
  sibling; Alt+←/→ step the selected (or last) message to its previous/next sibling, and the
  conversation below follows that branch. Messages with siblings show ``‹ 2/3 ›``. What is
  shown is the active path, and it is what the model is sent.
- Attachments: ``@path`` in the prompt completes paths under the workspace (Tab takes the first)
  and attaches when picked from completion or naming an existing file there; Ctrl+F (the attach
  command) adds a file, glob or folder. Chips above the prompt show each with its size and
  estimated tokens before sending; a refusal (binary, too large, an image for an engine
  without vision) is one notification and the prompt keeps its text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from tedchat.attachments import (
    Attachment,
    Limits,
    check_engine,
    collect,
    mentions,
    user_message,
)
from tedchat.conversation import (
    BuiltMessages,
    ChatConversation,
    Exchange,
    ReplyRecord,
    attachment_tokens,
    build_messages,
    context_budget,
    conversation_from_store,
    engine_context_tokens,
    history_pairs,
)
from tedchat.engine import Engine, Message, as_floorplan, capabilities_of
from tedchat.errors import AttachmentError, EngineError, HistoryError, TedchatError
from tedchat.gauges import measure_context, reply_cost
from tedchat.history.tree import ACTIVE_END, Tree
from tedchat.session import Turn, TurnHistory
from tedchat.tools.workspace import workspace_root
from tedchat.tui.live import FrameClock, stream_answer
from tedchat.tui.loader import LoadState
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.screens.floorplan import FloorplanScreen
from tedchat.tui.screens.history import HistoryChoice, HistoryScreen
from tedchat.tui.screens.params import ParamsScreen
from tedchat.tui.screens.pickers import (
    CodeBlockPicker,
    ComparePicker,
    EngineChoice,
    EnginePicker,
    PresetPicker,
    TextPrompt,
)
from tedchat.tui.services import Services
from tedchat.tui.widgets.attachments import (
    AttachmentChips,
    Chip,
    ChipInfo,
    CompletionList,
    PathSuggester,
)
from tedchat.tui.widgets.messages import (
    Notice,
    ReplyView,
    UserMessage,
    code_blocks,
    reply_caption,
)
from tedchat.tui.widgets.prompt import PromptInput
from tedchat.tui.widgets.status_bar import StatusLine

#: A budget nothing outgrows: the whole conversation, for the context gauge.
UNLIMITED = 1 << 62

WELCOME = "Type a prompt below and press Enter. F1 lists the keys; Ctrl+P opens the commands."


class ChatScreen(Screen[None]):
    """One conversation, one engine at a time (switchable), streaming answers."""

    DEFAULT_CSS = """
    ChatScreen > #log {
        height: 1fr;
        padding: 0 1 1 1;
        scrollbar-size-vertical: 1;
        scrollbar-gutter: stable;  /* a width that never changes: frozen answers keep fitting */
    }
    ChatScreen #welcome { color: $text-muted; margin: 1 0 0 0; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Stop", id="cancel"),
        Binding("ctrl+r,f5", "regenerate", "Regenerate", id="regenerate"),
        Binding("f3", "switch_engine", "Engine", id="switch-engine"),
        Binding("ctrl+o,f2", "conversations", "Conversations", id="conversations"),
        Binding("ctrl+n", "new_conversation", "New", id="new-conversation"),
        Binding("ctrl+l", "edit_last", "Edit prompt", id="edit-last", show=False),
        Binding("alt+up", "select_previous", "Select message above", id="select-up", show=False),
        Binding("alt+down", "select_next", "Select message below", id="select-down", show=False),
        Binding(
            "alt+left", "branch_previous", "Previous version", id="branch-previous", show=False
        ),
        Binding("alt+right", "branch_next", "Next version", id="branch-next", show=False),
        Binding("f4", "settings", "Settings", id="settings", show=False),
        Binding("f8", "copy_reply", "Copy reply", id="copy-reply", show=False),
        Binding("f9", "copy_code", "Copy code block", id="copy-code", show=False),
        Binding("f10", "floorplan", "Floorplan", id="floorplan", show=False),
        Binding("f12", "compare", "Compare engines", id="compare", show=False),
        Binding("ctrl+t", "toggle_tools", "Expand tool calls", id="toggle-tools", show=False),
        Binding("ctrl+f", "attach", "Attach", id="attach", show=False),
        Binding("f11", "presets", "Presets", id="presets", show=False),
        Binding("ctrl+g", "external_editor", "Edit in $EDITOR", id="external-editor", show=False),
    ]

    def __init__(self, services: Services, engine_name: str) -> None:
        super().__init__()
        self.services = services
        self.engine_name = engine_name
        self.conversation = ChatConversation()
        self._answer: Worker[Any] | None = None
        self._views: dict[int, tuple[UserMessage, ReplyView | None]] = {}  # id(exchange) ->
        self._editing: Exchange | None = None
        #: The selected message: (exchange index, "prompt" or "reply"); None: none.
        self._cursor: tuple[int, str] | None = None
        self._chosen_reply: ReplyView | None = None  # clicked: what F8 / F9 copy
        self.frame_clock = FrameClock(self)
        self._unsubscribe: Callable[[], None] | None = None
        #: Files the attach command added for the next prompt.
        self.attached: list[Attachment] = []
        self._mention_cache: dict[str, list[Attachment]] = {}
        self.workspace = workspace_root(services.settings.tools.workspace)
        self.limits = Limits.from_settings(services.settings)

    # --- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with VerticalScroll(id="log"):
            yield Static(Text(WELCOME), id="welcome")
        yield StatusLine()
        yield CompletionList(id="completions")
        yield AttachmentChips(id="chips")
        yield PromptInput(id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        services = self.services
        self.conversation.system = services.initial_system
        self.conversation.params = services.initial_params
        self.query_one("#log", VerticalScroll).anchor()
        self._unsubscribe = services.loader.subscribe(self._load_changed)
        self._show_engine()
        prompt = self.query_one(PromptInput)
        prompt.mention_root = self.workspace
        prompt.focus()
        self._update_title()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    @property
    def busy(self) -> bool:
        return self._answer is not None and self._answer.is_running

    @property
    def log_view(self) -> VerticalScroll:
        return self.query_one("#log", VerticalScroll)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return True if (self.busy or self._editing is not None) else None
        if action in (
            "regenerate",
            "copy_reply",
            "copy_code",
            "edit_last",
            "toggle_tools",
            "select_previous",
            "select_next",
            "branch_previous",
            "branch_next",
        ):
            return True if self.conversation.exchanges else None
        return True

    # --- engine ------------------------------------------------------------------------------

    def _show_engine(self) -> None:
        try:
            engine = self.services.loader.engine(self.engine_name)
        except TedchatError as exc:
            self.status.set_engine(self.engine_name, "?")
            self.status.show_load(LoadState(self.engine_name, "failed", error=exc.message))
            return
        self.status.set_engine(engine.name, engine.model)
        self.status.show_load(self.services.loader.state(self.engine_name))

    def _load_changed(self, state: LoadState) -> None:
        if state.name == self.engine_name and self.is_mounted:
            self.status.show_load(state)

    def set_engine(self, name: str) -> None:
        """Use ``name`` for the next prompts, and start loading it now."""
        try:
            self.services.loader.engine(name)
        except TedchatError as exc:
            self.notify(exc.message, severity="error")
            return
        self.engine_name = name
        self._show_engine()
        self.services.loader.start(name)
        self.notify(f"next prompts go to {name}")

    # --- sending -----------------------------------------------------------------------------

    @on(PromptInput.Submitted)
    def _submitted(self, event: PromptInput.Submitted) -> None:
        if self.busy:
            # Keep what they typed: it goes out once they stop the running answer.
            event.prompt.set_text(event.text)
            self.notify("an answer is still streaming: Esc stops it", severity="warning")
            return
        try:
            attachments = self._attachments_for(event.text, event.picked)
        except AttachmentError as exc:
            event.prompt.set_text(event.text)
            event.prompt.picked.update(event.picked)
            self.notify(exc.message, severity="error")
            return
        self.attached = []
        self._mention_cache.clear()
        self._show_chips([])
        edited = self._editing
        if edited is not None:
            self._editing = None
            self._resend(edited, event.text, attachments)
            return
        self.send(event.text, attachments)

    def _resend(self, edited: Exchange, prompt: str, attachments: list[Attachment]) -> None:
        """Send an edited prompt as a new branch at ``edited``'s point: the exchanges from
        there on leave the view (the history keeps them as another branch)."""
        exchanges = self.conversation.exchanges
        index = exchanges.index(edited) if edited in exchanges else len(exchanges)
        follows = exchanges[index - 1].end_id if index > 0 else None
        stored = edited.message_id is not None
        for later in exchanges[index:]:
            self._drop_exchange(later)
        branch = (edited.branch[1] + 1, edited.branch[1] + 1) if stored else (1, 1)
        if index > 0 and follows is None:  # the point is not stored: continue as before
            self.send(prompt, attachments)
            return
        self.send(prompt, attachments, follows=follows, branch=branch)

    def send(
        self,
        prompt: str,
        attachments: list[Attachment] | None = None,
        *,
        follows: int | str | None = ACTIVE_END,
        branch: tuple[int, int] = (1, 1),
    ) -> Exchange:
        """Add ``prompt`` (with its attachments) to the conversation and start its answer.
        ``follows``: the stored message it is sent after (by default the end of what is shown;
        an edited prompt names its point, making a new branch)."""
        if follows == ACTIVE_END and self.conversation.exchanges:
            end = self.conversation.exchanges[-1].end_id
            follows = end if end is not None else ACTIVE_END
        exchange = Exchange(
            prompt, attachments=tuple(attachments or ()), branch=branch, follows=follows
        )
        self._select(None)
        self.conversation.exchanges.append(exchange)
        user = UserMessage(prompt, exchange.attachments, branch)
        self._mount_in_log(user)
        self._views[id(exchange)] = (user, None)
        self._start_answer(exchange)
        return exchange

    def _mount_in_log(self, *widgets: Any) -> None:
        log = self.log_view
        for welcome in self.query("#welcome"):
            welcome.remove()
        log.mount(*widgets)
        log.anchor()  # a new prompt brings the view back to the bottom and follows it

    def _start_answer(self, exchange: Exchange) -> None:
        engine = self._engine_or_notice()
        if engine is None:
            return
        view = ReplyView(engine.name, engine.model)
        user, _old = self._views[id(exchange)]
        self._views[id(exchange)] = (user, view)
        self._mount_in_log(view)
        self._answer = self.run_worker(
            self._run_answer(exchange, engine, view),
            group="answer",
            exit_on_error=False,
        )
        self.refresh_bindings()

    def _engine_or_notice(self) -> Engine | None:
        try:
            return self.services.loader.engine(self.engine_name)
        except TedchatError as exc:
            self._mount_in_log(Notice(exc.message, error=True))
            return None

    async def _run_answer(self, exchange: Exchange, engine: Engine, view: ReplyView) -> None:
        try:
            await self._answer_exchange(exchange, engine, view)
        except asyncio.CancelledError:
            if exchange.reply is None:  # stopped while the engine was still loading
                exchange.reply = ReplyRecord(engine.name, engine.model, finish_reason="cancelled")
                view.set_caption(f"{engine.name} · {engine.model} · cancelled before it began")
            raise
        finally:
            self.call_after_refresh(self.refresh_bindings)

    async def _answer_exchange(self, exchange: Exchange, engine: Engine, view: ReplyView) -> None:
        services = self.services
        conv = self.conversation

        def waiting(line: str | None) -> None:  # the history file is locked: say so
            plain = reply_caption(engine.name, engine.model, None)
            view.set_caption(f"{engine.name} · {engine.model} · {line}" if line else plain)

        history = TurnHistory(
            await services.history.turn_writer(waiting),
            conv.id,
            system=conv.system,
            params=conv.params,
            message_id=exchange.message_id,
            follows=exchange.follows,
        )
        save = history.save_prompt(
            exchange.prompt, engine=engine, attachments=exchange.attachments, on_wait=waiting
        )
        if not await services.history.saved(save):
            history.writer = None
        conv.id, exchange.message_id = history.conversation_id, history.message_id
        loader = services.loader
        if not loader.is_ready(engine.name):
            view.set_caption(f"{engine.name} · {engine.model} · waiting for the engine to load…")
        try:
            await loader.ready(engine.name)
        except EngineError as exc:
            exchange.reply = ReplyRecord(engine.name, engine.model, error=exc.message)
            view.set_result(None, exc.message + (f" ({exc.hint})" if exc.hint else ""))
            return
        index = conv.exchanges.index(exchange) if exchange in conv.exchanges else 0
        context, known = engine_context_tokens(engine, services.settings.ui.context_tokens)
        caps = capabilities_of(engine)
        takes_tools = caps.tools
        asked = user_message(exchange.prompt, exchange.attachments, vision=caps.vision)
        built = build_messages(
            conv.system,
            history_pairs(conv.exchanges[:index]),
            asked,
            context_budget(context, conv.params.max_tokens),
            tools=takes_tools,
            vision=caps.vision,
        )
        if built.dropped_exchanges:
            self._context_notice(built.dropped_exchanges, context, known, engine.name, view)
        if takes_tools and services.tools is not None:
            for line in await services.tools_ready():  # MCP servers still starting
                self.log_view.mount(Notice(line), before=view)
        await self._show_context(engine, conv, index, asked, built, (context, known))
        buffer = await history.begin_reply(engine)
        turn = Turn(engine, built.messages, conv.params, clock=services.clock_for(engine))
        self.status.set_engine(engine.name, engine.model)
        record = ReplyRecord(engine.name, engine.model)
        if buffer is not None:
            record.store_id = buffer.id  # kept however the answer ends (a cancel too)
            old = exchange.reply
            if old is not None and old.store_id is not None:  # a regenerated reply: a sibling
                record.branch = (old.branch[1] + 1, old.branch[1] + 1)
                view.set_branch(record.branch)
        exchange.reply = record
        try:
            result = await stream_answer(
                turn,
                view,
                self.frame_clock,
                figures=self.status,
                recorder=services.reply_recorder(buffer),
                gc_pause=services.gc_pause,
                tools=services.tools,
                approver=services.approver(self.app, stop=self.action_cancel),
                max_steps=services.max_steps,
            )
        except asyncio.CancelledError:
            record.text = turn.text
            record.metrics = turn.meter.snapshot()
            record.finish_reason = "cancelled"
            record.tool_calls = list(turn.tool_calls)
            raise
        record.tool_calls = result.tool_calls
        record.text = result.text
        record.metrics = result.metrics
        record.finish_reason = result.metrics.finish_reason
        record.error = result.error.message if result.error else None
        record.store_id = buffer.id if buffer is not None else None
        prices = services.context.engines.prices(engine.name)
        m = result.metrics
        self.status.show_cost(reply_cost(prices, m.prompt_tokens, m.output_tokens))
        self._update_title()

    async def _show_context(
        self,
        engine: Engine,
        conv: ChatConversation,
        index: int,
        prompt: Message,
        built: BuiltMessages,
        context: tuple[int, bool],
    ) -> None:
        """The status bar's context gauge for this request: the whole conversation's prompt
        (before trimming), counted by the engine's tokenizer where it has one."""
        services = self.services
        caps = capabilities_of(engine)
        takes_tools = caps.tools
        whole = build_messages(
            conv.system,
            history_pairs(conv.exchanges[:index]),
            prompt,
            UNLIMITED,
            tools=takes_tools,
            vision=caps.vision,
        )
        specs = services.tools.specs() if takes_tools and services.tools is not None else ()
        gauge = await measure_context(
            engine,
            whole.messages,
            conv.params,
            context,
            dropped_exchanges=built.dropped_exchanges,
            tools=specs,
        )
        self.status.show_context(gauge)

    def _context_notice(
        self, dropped: int, context: int, known: bool, engine: str, view: ReplyView
    ) -> None:
        source = f"{engine}'s context" if known else "the assumed context ([ui] context_tokens)"
        text = (
            f"⚠ The conversation outgrew {source} of {context:,} tokens: the oldest "
            f"{dropped} exchange{'s were' if dropped != 1 else ' was'} left out of this request "
            "(estimated at 4 characters a token)."
        )
        self.log_view.mount(Notice(text), before=view)

    # --- attachments -------------------------------------------------------------------------

    def _attachments_for(self, text: str, picked: frozenset[str] | set[str]) -> list[Attachment]:
        """What the prompt ``text`` carries: the attach command's files, then its ``@paths``;
        checked against the caps and the engine (raises :class:`AttachmentError`)."""
        named = mentions(text, self.workspace, picked)
        found = collect(named, limits=self.limits, cwd=self.workspace) if named else []
        have = {a.name for a in self.attached}
        attachments = [*self.attached, *(a for a in found if a.name not in have)]
        total = sum(a.size for a in attachments)
        if total > self.limits.max_total_bytes:
            raise AttachmentError(
                f"attachments total {total:,} bytes, over [attachments] max_total_bytes"
            )
        if attachments:
            try:
                engine = self.services.loader.engine(self.engine_name)
            except TedchatError:
                return attachments  # the send itself says what is wrong with the engine
            check_engine(engine.name, attachments, vision=capabilities_of(engine).vision)
        return attachments

    @on(PromptInput.CompletionsChanged)
    def _completions_changed(self, event: PromptInput.CompletionsChanged) -> None:
        self.query_one(CompletionList).show(event.candidates)

    @on(CompletionList.OptionSelected)
    def _completion_chosen(self, event: CompletionList.OptionSelected) -> None:
        prompt = self.query_one(PromptInput)
        prompt.focus()
        prompt.accept_completion(str(event.option.id))

    @on(PromptInput.Changed)
    def _prompt_changed(self, event: PromptInput.Changed) -> None:
        self._refresh_chips()

    def _refresh_chips(self) -> None:
        prompt = self.query_one(PromptInput)
        chips = [self._chip(a, removable=True) for a in self.attached]
        have = {a.name for a in self.attached}
        for name in mentions(prompt.text, self.workspace, prompt.picked):
            if name in have:
                continue
            found = self._mention_cache.get(name)
            if found is None:
                try:
                    found = collect([name], limits=self.limits, cwd=self.workspace)
                except AttachmentError:
                    found = []  # said when sending
                # Read once per draft, not at every key: sending reads the files again.
                self._mention_cache[name] = found
            chips += [self._chip(a, removable=False) for a in found if a.name not in have]
            have.update(a.name for a in found)
        self._show_chips(chips)

    def _show_chips(self, chips: list[ChipInfo]) -> None:
        self.query_one(AttachmentChips).show(chips)

    @staticmethod
    def _chip(attachment: Attachment, *, removable: bool) -> ChipInfo:
        return ChipInfo(
            attachment.name,
            attachment.kind,
            attachment.size,
            attachment_tokens(attachment),
            removable,
        )

    @on(Chip.Removed)
    def _chip_removed(self, event: Chip.Removed) -> None:
        self.attached = [a for a in self.attached if a.name != event.name]
        self._refresh_chips()

    def action_attach(self) -> None:
        self.app.push_screen(
            TextPrompt(
                "Attach a file, glob or folder",
                placeholder="src/*.py",
                suggester=PathSuggester(self.workspace),
                hint=f"under {self.workspace} · → takes the suggestion · Enter attaches · "
                "Esc closes",
            ),
            self.attach,
        )

    def attach(self, spec: str | None) -> None:
        """Add the files ``spec`` names to the next prompt (a notification if refused)."""
        if not spec or not spec.strip():
            return
        try:
            found = collect([spec.strip()], limits=self.limits, cwd=self.workspace)
        except AttachmentError as exc:
            self.notify(exc.message, severity="error")
            return
        have = {a.name for a in self.attached}
        self.attached += [a for a in found if a.name not in have]
        self._refresh_chips()
        self.query_one(PromptInput).focus()

    # --- actions -----------------------------------------------------------------------------

    def action_cancel(self) -> None:
        if self.busy and self._answer is not None:
            self._answer.cancel()
            return
        if self._editing is not None:
            self._editing = None
            self.query_one(PromptInput).set_text("")
            self.attached = []
            self._refresh_chips()
            self.notify("edit abandoned: the conversation is unchanged")
            self.refresh_bindings()

    def action_regenerate(self) -> None:
        if self.busy:
            self.notify("an answer is still streaming: Esc stops it first", severity="warning")
            return
        exchanges = self.conversation.exchanges
        if not exchanges:
            return
        index = self._cursor[0] if self._cursor is not None else len(exchanges) - 1
        exchange = exchanges[index]
        for later in exchanges[index + 1 :]:  # a new reply here starts a new branch
            self._drop_exchange(later)
        self._select(None)
        _user, view = self._views.get(id(exchange), (None, None))
        if view is not None:
            view.remove()
        self._start_answer(exchange)

    def action_edit_last(self) -> None:
        if self.busy:
            self.notify("an answer is still streaming: Esc stops it first", severity="warning")
            return
        exchanges = self.conversation.exchanges
        if not exchanges:
            return
        index = self._cursor[0] if self._cursor is not None else len(exchanges) - 1
        self._editing = exchanges[index]
        box = self.query_one(PromptInput)
        box.set_text(self._editing.prompt)
        # Its attachments come back as chips (those its @paths name come back with the text).
        named = set(mentions(self._editing.prompt, self.workspace))
        self.attached = [a for a in self._editing.attachments if a.name not in named]
        self._refresh_chips()
        which = "the last prompt" if index == len(exchanges) - 1 else f"prompt {index + 1}"
        self.notify(
            f"editing {which}: Enter sends it as a new branch from there (Alt+←/→ steps back)"
            " · Esc keeps the conversation as it is"
        )
        self.refresh_bindings()

    # --- branches ----------------------------------------------------------------------------

    def _items(self) -> list[tuple[int, str]]:
        """The selectable messages in order: each prompt, then its reply if shown."""
        items: list[tuple[int, str]] = []
        for i, exchange in enumerate(self.conversation.exchanges):
            items.append((i, "prompt"))
            if self._views.get(id(exchange), (None, None))[1] is not None:
                items.append((i, "reply"))
        return items

    def _select(self, item: tuple[int, str] | None) -> None:
        """Move the selection to ``item`` (None: no selection) and show it."""
        for user, _view in self._views.values():
            user.remove_class("-selected")
        self._cursor = item
        if item is None:
            return
        exchange = self.conversation.exchanges[item[0]]
        shown = self._views.get(id(exchange))
        widget: Any = None if shown is None else shown[0 if item[1] == "prompt" else 1]
        if widget is None:
            return
        if item[1] == "prompt":
            widget.add_class("-selected")
        else:  # a selected reply is also the one the copy keys work on
            old = self._chosen_reply
            if old is not None and old is not widget and old.is_mounted:
                old.mark_chosen(False)
            self._chosen_reply = widget
            widget.mark_chosen(True)
        widget.scroll_visible(animate=False)

    def action_select_previous(self) -> None:
        items = self._items()
        if not items:
            return
        if self._cursor is None or self._cursor not in items:
            self._select(items[-1])
        else:
            self._select(items[max(0, items.index(self._cursor) - 1)])

    def action_select_next(self) -> None:
        items = self._items()
        if self._cursor is None or self._cursor not in items:
            return
        at = items.index(self._cursor)
        self._select(items[at + 1] if at + 1 < len(items) else None)

    def action_branch_previous(self) -> None:
        self._step_branch(-1)

    def action_branch_next(self) -> None:
        self._step_branch(1)

    @work(exclusive=True, group="branch")
    async def _step_branch(self, step: int) -> None:
        """Show the previous/next sibling of the selected message (else of the last reply, or
        prompt) and the branch below it; the history remembers it as the active path."""
        if self.busy:
            self.notify("an answer is still streaming: Esc stops it first", severity="warning")
            return
        items = self._items()
        conv = self.conversation
        if not items or conv.id is None:
            self.notify("no branches here yet")
            return
        item = self._cursor if self._cursor in items else items[-1]
        assert item is not None
        exchange = conv.exchanges[item[0]]
        if item[1] == "prompt":
            node, count = exchange.message_id, exchange.branch[1]
        else:
            reply = exchange.reply
            node, count = (reply.store_id, reply.branch[1]) if reply else (None, 1)
        if node is None or count <= 1:
            self.notify(f"this {item[1]} has no other versions")
            return
        writer = await self.services.history.writer()
        if writer is None:
            self.notify(self.services.history.unavailable(), severity="warning")
            return
        try:
            stored = writer.store.get_conversation(conv.id)
            siblings = Tree.of(stored).siblings(node)
            target = siblings[(siblings.index(node) + step) % len(siblings)]
            await writer.set_active(conv.id, target)
            shown = conversation_from_store(writer.store.get_conversation(conv.id))
        except (HistoryError, KeyError, ValueError) as exc:
            self.notify(getattr(exc, "message", str(exc)), severity="error")
            return
        shown.system, shown.params = conv.system, conv.params  # unsaved settings stay
        await self._reset(shown)
        if item in self._items():
            self._select(item)
        self.notify(f"{item[1]} {siblings.index(target) + 1} of {len(siblings)}")

    def _drop_exchange(self, exchange: Exchange) -> None:
        """Take an exchange out of the view and of what is sent (the history keeps it)."""
        user, view = self._views.pop(id(exchange), (None, None))
        for widget in (user, view):
            if widget is not None:
                widget.remove()
        if exchange in self.conversation.exchanges:
            self.conversation.exchanges.remove(exchange)

    def _selected_reply(self) -> ReplyView | None:
        """The reply the copy actions work on: the one last clicked, else the newest."""
        chosen = self._chosen_reply
        if chosen is not None and chosen.is_mounted:
            return chosen
        replies = list(self.query(ReplyView))
        return replies[-1] if replies else None

    def on_reply_view_chosen(self, message: ReplyView.Chosen) -> None:
        if self._chosen_reply is not None and self._chosen_reply is not message.view:
            self._chosen_reply.mark_chosen(False)
        self._chosen_reply = message.view
        message.view.mark_chosen(True)

    def action_copy_reply(self) -> None:
        view = self._selected_reply()
        if view is None or not view.text:
            self.notify("no reply to copy yet")
            return
        self.app.copy_to_clipboard(view.text)
        self.notify(f"copied the reply ({len(view.text):,} characters)")

    def action_copy_code(self) -> None:
        view = self._selected_reply()
        blocks = code_blocks(view.text) if view is not None else []
        if not blocks:
            self.notify("the reply has no code block")
            return
        if len(blocks) == 1:
            self._copy_block(blocks, 0)
            return
        self.app.push_screen(
            CodeBlockPicker(blocks),
            lambda i: self._copy_block(blocks, i) if i is not None else None,
        )

    def _copy_block(self, blocks: list[str], index: int) -> None:
        self.app.copy_to_clipboard(blocks[index])
        self.notify(f"copied code block {index + 1} ({len(blocks[index].splitlines())} lines)")

    def action_toggle_tools(self) -> None:
        view = self._selected_reply()
        if view is None or not view.tool_blocks:
            self.notify("the reply called no tools")
            return
        view.toggle_tool_calls()

    def action_switch_engine(self) -> None:
        self.app.push_screen(
            EnginePicker(self.services.engine_choices(), self.engine_name),
            lambda name: self.set_engine(name) if name else None,
        )

    def action_settings(self) -> None:
        def apply(result: tuple[str, Any] | None) -> None:
            if result is None:
                return
            conv = self.conversation
            conv.system, conv.params = result
            self.notify("settings apply from the next prompt")
            if conv.id is not None:  # a conversation in the history keeps them too
                self.run_worker(self._save_settings(conv), group="history")

        self.app.push_screen(
            ParamsScreen(self.conversation.system, self.conversation.params), apply
        )

    def action_presets(self) -> None:
        presets = self.services.settings.presets
        if not presets:
            self.notify(
                "no presets: add [presets.NAME] tables to the config file (README: Presets)",
                severity="warning",
            )
            return
        choices = [EngineChoice(p.name, p.summary()) for p in presets.values()]
        self.app.push_screen(
            PresetPicker(choices, self.preset_name or ""),
            lambda name: self.use_preset(name) if name else None,
        )

    preset_name: str | None = None

    def use_preset(self, name: str) -> None:
        """Apply ``[presets.NAME]`` from the next prompt: what it sets replaces the
        conversation's system prompt, parameters, engine and tool sources."""
        from dataclasses import replace

        preset = self.services.settings.presets[name]
        conv = self.conversation
        if preset.system_prompt is not None:
            conv.system = preset.system_prompt
        changes = {
            key: getattr(preset, key)
            for key in ("temperature", "top_p", "max_tokens", "seed")
            if getattr(preset, key) is not None
        }
        conv.params = replace(conv.params, **changes)
        self.preset_name = name
        if preset.tools is not None and self.services.use_tool_sources is not None:
            self.run_worker(self.services.use_tool_sources(list(preset.tools)), group="tools")
        if preset.engine is not None and preset.engine != self.engine_name:
            self.set_engine(preset.engine)
        self.notify(f"preset {name} applies from the next prompt")
        if conv.id is not None:
            self.run_worker(self._save_settings(conv), group="history")

    def action_external_editor(self) -> None:
        from tedchat.tui.editor import EditorError, edit_text

        prompt = self.query_one(PromptInput)
        try:
            text = edit_text(self.app, prompt.text)
        except EditorError as exc:
            self.notify(exc.message, severity="warning")
            return
        prompt.set_text(text)
        prompt.focus()

    async def _save_settings(self, conv: ChatConversation) -> None:
        history = self.services.history
        writer = await history.writer()
        if writer is None or conv.id is None:
            return
        try:
            await writer.save_settings(conv.id, conv.system, conv.params)
        except HistoryError as exc:
            history.failed(exc)

    def action_floorplan(self) -> None:
        try:
            engine = self.services.loader.engine(self.engine_name)
        except TedchatError as exc:
            self.notify(exc.message, severity="error")
            return
        if not capabilities_of(engine).floorplan:
            self.notify(
                f"{self.engine_name} has no floorplan (wafer engines have one)", severity="warning"
            )
            return
        planned = as_floorplan(engine)
        self.app.push_screen(FloorplanScreen(self.engine_name, planned.floorplan, planned.activity))

    def action_compare(self) -> None:
        self.app.push_screen(
            ComparePicker(self.services.engine_choices(), [self.engine_name]),
            lambda names: self._open_compare(names) if names else None,
        )

    def _open_compare(self, names: list[str]) -> None:
        conv = self.conversation
        self.app.push_screen(
            CompareScreen(self.services, names, params=conv.params, system=conv.system)
        )

    @work(exclusive=True, group="history-screen")
    async def action_conversations(self) -> None:
        store = await self.services.history.open()
        if store is None:
            self.notify(self.services.history.unavailable(), severity="warning")
            return
        choice: HistoryChoice = await self.app.push_screen_wait(
            HistoryScreen(store, self.conversation.id)
        )
        if self.conversation.id in choice.deleted and choice.action != "open":
            await self._reset(ChatConversation())
        if choice.action == "new":
            await self._new()
        elif choice.action == "open" and choice.conversation_id is not None:
            await self.open_conversation(choice.conversation_id)

    async def action_new_conversation(self) -> None:
        await self._new()

    async def _new(self) -> None:
        conv = ChatConversation(
            system=self.services.initial_system, params=self.services.initial_params
        )
        await self._reset(conv)

    async def open_conversation(self, conversation_id: int) -> None:
        """Show a stored conversation; the next prompt continues it."""
        store = await self.services.history.open()
        if store is None:
            self.notify(self.services.history.unavailable(), severity="warning")
            return
        try:
            stored = store.get_conversation(conversation_id)
        except HistoryError as exc:
            self.notify(exc.message, severity="error")
            return
        await self._reset(conversation_from_store(stored))

    async def _reset(self, conv: ChatConversation) -> None:
        """Replace the shown conversation (stopping an answer that still streams)."""
        if self.busy and self._answer is not None:
            worker = self._answer
            worker.cancel()
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()
        self.conversation = conv
        self._views.clear()
        self._editing = None
        self._cursor = None
        log = self.log_view
        await log.remove_children()
        widgets: list[Any] = []
        for exchange in conv.exchanges:
            user = UserMessage(exchange.prompt, exchange.attachments, exchange.branch)
            view = None
            widgets.append(user)
            if exchange.reply is not None:
                r = exchange.reply
                view = ReplyView(
                    r.engine, r.model, r.text, tool_calls=r.tool_calls, branch=r.branch
                )
                widgets.append(view)
            self._views[id(exchange)] = (user, view)
        if not widgets:
            widgets.append(Static(Text(WELCOME), id="welcome"))
        await log.mount_all(widgets)
        for exchange in conv.exchanges:
            _user, view = self._views[id(exchange)]
            if view is not None and exchange.reply is not None:
                view.set_result(exchange.reply.metrics, exchange.reply.error)
        log.anchor()
        self.status.show_figures(None)
        self.status.reset_rates()
        self._update_title()
        self.refresh_bindings()

    def _update_title(self) -> None:
        title = self.conversation.title
        if title is None and self.conversation.exchanges:
            first = self.conversation.exchanges[0].prompt.strip().splitlines()
            title = first[0][:60] if first else None
        self.sub_title = title or "new conversation"
