"""Saving a reply while it streams, so nothing typed or received is lost.

The caller commits the user message (:meth:`~tedchat.history.store.Store.add_user_message`)
*before* it sends the request. The reply is written while it streams through a
:class:`ReplyWriter`, which buffers text and flushes it at most every 250 ms
(:data:`FLUSH_INTERVAL_S`), then finalises the row with its finish reason and metrics and puts
it in the search index. While it streams the row carries the writer's identity
(:mod:`tedchat.history.liveness`), so a later open can tell a live reply from one whose
process died.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from tedchat.engine import FINISH_REASONS
from tedchat.errors import HistoryError
from tedchat.history.records import ReplyMetrics, compact_json
from tedchat.history.search import index_text
from tedchat.metrics import Clock

T = TypeVar("T")

FLUSH_INTERVAL_S = 0.25
"""A streaming reply reaches the database at most this often (and always when it ends)."""


class Transaction(Protocol):
    """Runs ``fn`` in one short write transaction, retried whole on SQLITE_BUSY
    (:meth:`tedchat.history.store.Store._transaction`)."""

    def __call__(self, fn: Callable[[sqlite3.Connection], T], /) -> T: ...


class ReplyWriter:
    """Saves one reply while it streams. :meth:`append` buffers text and writes it out at most
    every ``flush_interval`` seconds of ``clock``; :meth:`finish` writes the rest with the
    finish reason and metrics. Also a context manager: leaving it by an exception finishes the
    reply as ``cancelled`` (for cancellation/Ctrl-C) or ``error``, and leaving it normally
    without :meth:`finish` as ``stop``. Made by
    :meth:`~tedchat.history.store.Store.begin_reply`, which has created the row."""

    def __init__(
        self,
        transaction: Transaction,
        reply_id: int,
        conversation_id: int,
        *,
        clock: Clock,
        wall_clock: Clock,
        flush_interval: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.id = reply_id
        self.conversation_id = conversation_id
        self._transaction = transaction
        self._clock = clock
        self._now = wall_clock
        self._interval = flush_interval
        self._last_flush = clock()
        self._saved: list[str] = []
        self._pending: list[str] = []
        self.finished = False
        # Set once the row is gone (its conversation was deleted while the reply streamed).
        self.deleted = False

    @property
    def text(self) -> str:
        """All text received so far, saved or not."""
        return "".join(self._saved) + "".join(self._pending)

    @property
    def pending(self) -> str:
        """Text received but not yet in the database."""
        return "".join(self._pending)

    def append(self, text: str) -> None:
        """Add streamed text; it reaches the database when a flush is due."""
        if self.finished:
            raise HistoryError(f"reply {self.id} is already finished")
        if text:
            self._pending.append(text)
        if self._clock() - self._last_flush >= self._interval:
            self.flush()

    def flush(self) -> None:
        """Write the buffered text now (a caller may also call this on its own timer)."""
        self._last_flush = self._clock()
        if not self._pending or self.deleted:
            return
        chunk = "".join(self._pending)

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE messages SET content = content || ? WHERE id = ?", (chunk, self.id)
            )
            return cur.rowcount

        if self._transaction(run) == 0:
            self.deleted = True  # the stream goes on for the user; there is nowhere to save it
        self._saved.append(chunk)
        self._pending.clear()

    def add_tool_call(self, call: Mapping[str, Any]) -> None:
        """Write the buffered text, then add an ended tool call (``ToolCallRecord.as_dict()``)
        to the reply's list, in one transaction each."""
        if self.finished:
            raise HistoryError(f"reply {self.id} is already finished")
        self.flush()
        if self.deleted:
            return
        item = compact_json(dict(call))

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE messages SET tool_calls ="
                " json_insert(coalesce(tool_calls, '[]'), '$[#]', json(?)) WHERE id = ?",
                (item, self.id),
            )
            return cur.rowcount

        if self._transaction(run) == 0:
            self.deleted = True

    def finish(self, finish_reason: str, metrics: object = None) -> None:
        """Write the remaining text, the finish reason (stop|length|cancelled|error|
        interrupted) and the metrics (ReplyMetrics, a mapping, or StreamMetrics) at once."""
        if self.finished:
            raise HistoryError(f"reply {self.id} is already finished")
        self._end(_check_finish_reason(finish_reason), ReplyMetrics.from_any(metrics))

    def interrupt(self) -> None:
        """Write the remaining text and finish as ``interrupted`` (the store is closing)."""
        if not self.finished:
            self._end("interrupted", None)

    def _end(self, finish_reason: str, metrics: ReplyMetrics | None) -> None:
        m = metrics or ReplyMetrics()
        chunk = "".join(self._pending)
        text = "".join(self._saved) + chunk
        now = self._now()

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE messages SET content = content || ?, finish_reason = ?, ttft_s = ?,"
                " output_tokens_per_s = ?, prompt_tokens = ?, output_tokens = ?,"
                " extra_json = ?, writer_pid = NULL, writer_start = NULL WHERE id = ?",
                (
                    chunk,
                    finish_reason,
                    m.ttft_s,
                    m.output_tokens_per_s,
                    m.prompt_tokens,
                    m.output_tokens,
                    compact_json(m.extra) if m.extra else None,
                    self.id,
                ),
            )
            if cur.rowcount:
                # Replace, not insert: the row may have been indexed already if another
                # process wrongly took this writer for dead.
                conn.execute("DELETE FROM message_fts WHERE rowid = ?", (self.id,))
                conn.execute(
                    "INSERT INTO message_fts(rowid, body) VALUES (?, ?)",
                    (self.id, index_text(text)),
                )
                conn.execute(
                    "UPDATE conversations SET updated = ? WHERE id = ?",
                    (now, self.conversation_id),
                )
            return cur.rowcount

        if not self.deleted and self._transaction(run) == 0:
            self.deleted = True
        self._saved.append(chunk)
        self._pending.clear()
        self.finished = True

    def __enter__(self) -> ReplyWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self.finished:
            return
        if exc_type is None:
            self.finish("stop")
        elif issubclass(exc_type, (KeyboardInterrupt, asyncio.CancelledError)):
            self.finish("cancelled")
        else:
            self.finish("error")


def _check_finish_reason(reason: str) -> str:
    if reason not in FINISH_REASONS:
        raise ValueError(f"finish reason must be one of {', '.join(FINISH_REASONS)}: {reason!r}")
    return reason
