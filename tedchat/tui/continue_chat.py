"""Continue in chat with one pane of a comparison: its reply becomes the conversation's reply.

The side-by-side screens store one prompt with a reply per pane (siblings in the message tree,
:mod:`tedchat.history.tree`). Continuing with a pane makes that pane's reply the active one
(:meth:`~tedchat.history.store.Store.set_active`), so the active path, which the chat screen
shows and sends, runs through it; the other replies stay in history as its siblings. The screen
then asks the app (:class:`ContinueInChat`, handled in :mod:`tedchat.tui.app`, which knows the
chat screen) to open that conversation in chat on the pane's engine: the next prompt goes to
it.
"""

from __future__ import annotations

from textual.message import Message

from tedchat.arena import round_replies
from tedchat.errors import HistoryError
from tedchat.tui.screens.pickers import EnginePicker, modal_css
from tedchat.tui.services import Services


class ContinueInChat(Message):
    """Open conversation ``conversation_id`` (None: a new one) in chat with ``engine``."""

    def __init__(self, conversation_id: int | None, engine: str) -> None:
        super().__init__()
        self.conversation_id = conversation_id
        self.engine = engine


class ContinuePicker(EnginePicker):
    """Pick the pane to continue with (the same list as the engine picker)."""

    DEFAULT_CSS = modal_css("ContinuePicker")
    HEADING = "Continue in chat with"
    HINT = "Enter picks · Esc closes · its reply becomes the conversation's reply"


async def choose_reply(services: Services, conversation_id: int | None, engine: str) -> int | None:
    """Make ``engine``'s reply to the newest prompt of the conversation its active reply, once
    the queued history writes have landed; return the reply's id (None: no history, no such
    reply, or the write failed, which the history reports)."""
    if conversation_id is None:
        return None
    writer = await services.history.writer()
    if writer is None:
        return None
    await services.history.idle()
    store = writer.store

    def choose() -> int | None:
        _message, _prompt, replies = round_replies(store.get_conversation(conversation_id))
        reply = replies.get(engine)
        if reply is None:
            return None
        store.set_active(conversation_id, reply.id)
        return reply.id

    try:
        return await writer.run(choose)
    except HistoryError as exc:
        services.history.failed(exc)
        return None
