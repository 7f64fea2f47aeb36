"""The conversation history in one SQLite file (stdlib ``sqlite3`` only): the :class:`Store`.

The file's tables and versions are in :mod:`~tedchat.history.schema`, what reads give back in
:mod:`~tedchat.history.records`, the streaming reply's writer in :mod:`~tedchat.history.writer`
(nothing typed is lost), the check of an existing file in :mod:`~tedchat.history.integrity`,
the search tokenizer in :mod:`~tedchat.history.search` and the export documents in
:mod:`~tedchat.history.export`.

Several processes at once
-------------------------
WAL mode lets readers and one writer work together. Every write is a short ``BEGIN IMMEDIATE``
transaction (taking the write lock up front, so a transaction never has to upgrade a read lock,
the one case SQLite's busy handler cannot wait out), with a busy timeout, and the whole
transaction is retried with backoff on ``SQLITE_BUSY`` until a generous deadline. When a store
is opened, replies whose writer is gone are marked ``interrupted``
(:mod:`~tedchat.history.liveness` says which).
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tedchat import paths
from tedchat.errors import ConversationNotFoundError, HistoryBusyError, HistoryError
from tedchat.history import export
from tedchat.history.integrity import (
    BUSY_DEADLINE_S,
    busy_timeout_ms,
    check_existing_file,
    corrupt_error,
    fresh_path_for,
    is_busy,
    is_corrupt,
    is_full,
)
from tedchat.history.liveness import own_writer_identity, writer_alive
from tedchat.history.records import (
    Conversation,
    ConversationSummary,
    Reply,
    ReplyMetrics,
    SearchHit,
    StoredAttachment,
    StoredMessage,
    compact_json,
    json_list_of_objects,
    json_object,
)
from tedchat.history.schema import SCHEMA_VERSION, migrate, newer_schema_error
from tedchat.history.search import fts_query, index_text, snippet
from tedchat.history.tree import ACTIVE_END, Node, Tree, branch_leaf
from tedchat.history.votes import Vote, insert_vote, read_votes
from tedchat.history.writer import FLUSH_INTERVAL_S, ReplyWriter
from tedchat.metrics import Clock

T = TypeVar("T")

_MESSAGE_COLUMNS = (
    "id, conversation_id, parent_id, role, content, engine, model, created, finish_reason,"
    " ttft_s, output_tokens_per_s, prompt_tokens, output_tokens, extra_json, tool_calls,"
    " follows_id"
)

SEARCH_SQL = (
    "SELECT m.id, m.conversation_id, m.role, m.created, m.content, c.title"
    " FROM message_fts AS f"
    " JOIN messages AS m ON m.id = f.rowid"
    " JOIN conversations AS c ON c.id = m.conversation_id"
    " WHERE message_fts MATCH ?"
    " ORDER BY f.rowid DESC LIMIT ?"
)
"""The search query; ``explain_search`` shows its plan (it must drive from the FTS index)."""


class Store:
    """The conversation history in one SQLite file. Use :meth:`open`; close with :meth:`close`
    (or ``with``). One store may be used from several threads: calls are serialised."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        lock_timeout_s: float = BUSY_DEADLINE_S,
    ) -> None:
        self._conn = conn
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self._clock = clock
        self._now = wall_clock
        self._lock = threading.RLock()
        self._writers: weakref.WeakSet[ReplyWriter] = weakref.WeakSet()
        self._closed = False

    # -- opening and closing

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        new_history: bool = False,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        lock_timeout_s: float = BUSY_DEADLINE_S,
    ) -> Store:
        """Open (creating folders and file as needed) the history at ``path``, migrate it to
        the current schema and mark replies whose writer died as ``interrupted``.

        ``new_history`` opens a new file next to ``path`` instead (see :func:`fresh_path_for`);
        ``store.path`` says which file is in use. ``clock`` paces reply flushes; ``wall_clock``
        stamps created/updated times; ``lock_timeout_s`` is how long a write waits for another
        process's lock before :class:`HistoryBusyError`. Raises :class:`HistoryCorruptError`
        for a damaged or unreadable file (left untouched) and :class:`HistorySchemaError` for a
        newer schema.
        """
        path = Path(path).expanduser().absolute()  # error messages name the whole path
        if new_history:
            path = fresh_path_for(path)
        try:
            paths.private_dir(path.parent)
        except OSError as exc:
            raise HistoryError(
                f"cannot create the history folder {path.parent}: {exc.strerror or exc}"
            ) from exc
        check_existing_file(path, lock_timeout_s)
        try:
            paths.private_file(path)  # 0600; SQLite gives -wal and -shm the same mode
            conn = sqlite3.connect(
                str(path),
                timeout=busy_timeout_ms(lock_timeout_s) / 1000,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,  # guarded by the store's lock instead
            )
        except (sqlite3.Error, OSError) as exc:
            raise corrupt_error(path, str(exc)) from exc
        store = cls(conn, path, clock=clock, wall_clock=wall_clock, lock_timeout_s=lock_timeout_s)
        try:
            store._setup()
        except BaseException:
            conn.close()
            raise
        return store

    def _setup(self) -> None:
        def pragmas() -> None:
            self._conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms(self.lock_timeout_s)}")
            # Refuse a newer schema before anything (even the journal mode) is changed.
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise newer_schema_error(self.path, version)
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise HistoryError(f"history file {self.path} cannot use WAL mode ({mode})")
            # FULL: a committed user message survives a power cut, not only a crash; the cost
            # (one fsync per commit, at most 4 a second per streaming reply) is small.
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")

        self._retry(pragmas)
        self._retry(lambda: migrate(self._conn))
        self.mark_interrupted()

    def close(self) -> None:
        """Finish any reply still open here as ``interrupted`` (its text kept), then close."""
        with self._lock:
            if self._closed:
                return
            try:
                for writer in list(self._writers):
                    # If the file takes no more writes (full, locked), the row keeps its
                    # writer's pid, so the next open marks it interrupted instead.
                    with contextlib.suppress(HistoryError):
                        writer.interrupt()
            finally:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` again after SQLITE_BUSY (with backoff) until the deadline."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.002
        with self._lock:
            while True:
                try:
                    return fn()
                except sqlite3.OperationalError as exc:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    if not is_busy(exc):
                        if is_corrupt(exc):
                            raise corrupt_error(self.path, str(exc)) from exc
                        if is_full(exc):
                            raise HistoryError(
                                f"history file {self.path} is full: this write was not saved",
                                hint="free disk space there; what is already saved is intact",
                            ) from exc
                        raise HistoryError(f"history file {self.path}: {exc}") from exc
                    if time.monotonic() > deadline:
                        raise HistoryBusyError(
                            f"history file {self.path} stayed locked by another process for "
                            f"{self.lock_timeout_s:g} s ([history] lock_timeout_s)",
                            hint="another tedchat may be stuck; close it and try again",
                        ) from exc
                    time.sleep(delay * (0.5 + random.random()))  # jitter: don't retry in step
                    delay = min(delay * 2, 0.1)
                except sqlite3.DatabaseError as exc:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    if is_corrupt(exc):
                        raise corrupt_error(self.path, str(exc)) from exc
                    raise

    def _transaction(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        """Run ``fn`` in one short transaction (``BEGIN IMMEDIATE`` for writes), retried whole
        on SQLITE_BUSY. ``fn`` must only touch the database, so a retry repeats it exactly."""

        def attempt() -> T:
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(self._conn)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            return result

        return self._retry(attempt)

    # -- writing

    def new_conversation(
        self,
        title: str | None = None,
        system: str | None = None,
        params: Mapping[str, Any] | object | None = None,
    ) -> int:
        """Create a conversation and return its id. ``params`` (a mapping or a dataclass such
        as GenerationParams) is stored as JSON. Without a title, the first user message's
        first line becomes it."""
        now = self._now()
        params_json = compact_json(params if params is not None else {})

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO conversations(title, created, updated, system, params)"
                " VALUES (?, ?, ?, ?, ?)",
                (title, now, now, system, params_json),
            )
            return int(cur.lastrowid or 0)

        return self._transaction(run)

    def add_user_message(
        self,
        conversation_id: int,
        content: str,
        *,
        engine: str | None = None,
        model: str | None = None,
        attachments: Sequence[StoredAttachment] = (),
        follows: int | str | None = ACTIVE_END,
    ) -> int:
        """Commit a user message (call it before sending the request) and return its id.
        ``engine``/``model`` say where it was addressed, when there is one target;
        ``attachments`` are linked to it, each content stored once.

        ``follows`` is the message it is sent after: :data:`ACTIVE_END` (the end of the active
        path: continuing the conversation), a message id of this conversation (an edited
        prompt follows what the original followed: a new branch), or None (a first prompt).
        The new message becomes the active one."""
        now = self._now()
        indexed = index_text(content)

        def run(conn: sqlite3.Connection) -> int:
            active = self._require_conversation(conn, conversation_id)
            if follows == ACTIVE_END:
                after = _tree(conn, conversation_id).end_for_next_prompt(active)
            else:
                after = None if follows is None else int(follows)
                if after is not None:
                    self._require_message(conn, conversation_id, after)
            cur = conn.execute(
                "INSERT INTO messages(conversation_id, role, content, engine, model, created,"
                " follows_id) VALUES (?, 'user', ?, ?, ?, ?, ?)",
                (conversation_id, content, engine, model, now, after),
            )
            mid = int(cur.lastrowid or 0)
            conn.execute("INSERT INTO message_fts(rowid, body) VALUES (?, ?)", (mid, indexed))
            _link_attachments(conn, mid, attachments)
            conn.execute(
                "UPDATE conversations SET updated = ?, title = coalesce(title, ?), active_id = ?"
                " WHERE id = ?",
                (now, _title_from(content), mid, conversation_id),
            )
            return mid

        return self._transaction(run)

    def begin_reply(
        self,
        conversation_id: int,
        parent_id: int,
        engine: str | None,
        model: str | None,
        *,
        clock: Clock | None = None,
        flush_interval: float = FLUSH_INTERVAL_S,
    ) -> ReplyWriter:
        """Start a reply to user message ``parent_id`` and return the writer that saves it
        as it streams. The row exists (empty, unfinished) once this returns."""
        now = self._now()
        pid, start = own_writer_identity()

        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT conversation_id, parent_id FROM messages WHERE id = ?", (parent_id,)
            ).fetchone()
            if row is None or row[0] != conversation_id or row[1] is not None:
                raise HistoryError(
                    f"message {parent_id} is not a user message of conversation {conversation_id}"
                )
            cur = conn.execute(
                "INSERT INTO messages(conversation_id, parent_id, role, content, engine, model,"
                " created, writer_pid, writer_start)"
                " VALUES (?, ?, 'assistant', '', ?, ?, ?, ?, ?)",
                (conversation_id, parent_id, engine, model, now, pid, start),
            )
            rid = int(cur.lastrowid or 0)
            conn.execute(
                "UPDATE conversations SET updated = ?, active_id = ? WHERE id = ?",
                (now, rid, conversation_id),
            )
            return rid

        reply_id = self._transaction(run)
        writer = ReplyWriter(
            self._transaction,
            reply_id,
            conversation_id,
            clock=clock or self._clock,
            wall_clock=self._now,
            flush_interval=flush_interval,
        )
        self._writers.add(writer)
        return writer

    def set_active(self, conversation_id: int, message_id: int) -> None:
        """Make the active path go through ``message_id`` (a prompt or a reply of this
        conversation) and on to the newest leaf below it; see :mod:`tedchat.history.tree`."""

        def run(conn: sqlite3.Connection) -> None:
            self._require_conversation(conn, conversation_id)
            self._require_message(conn, conversation_id, message_id)
            conn.execute(
                "UPDATE conversations SET active_id = ? WHERE id = ?",
                (message_id, conversation_id),
            )

        self._transaction(run)

    def rename(self, conversation_id: int, title: str | None) -> None:
        """Set a conversation's title."""

        def run(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
            )
            if cur.rowcount == 0:
                raise ConversationNotFoundError(f"no conversation {conversation_id} in history")

        self._transaction(run)

    def set_settings(
        self,
        conversation_id: int,
        system: str | None,
        params: Mapping[str, Any] | object | None = None,
    ) -> None:
        """Set a conversation's system prompt and generation params (changed mid-way)."""
        params_json = compact_json(params if params is not None else {})

        def run(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE conversations SET system = ?, params = ? WHERE id = ?",
                (system, params_json, conversation_id),
            )
            if cur.rowcount == 0:
                raise ConversationNotFoundError(f"no conversation {conversation_id} in history")

        self._transaction(run)

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation, its messages, replies and their search entries."""

        def run(conn: sqlite3.Connection) -> None:
            self._require_conversation(conn, conversation_id)
            conn.execute(
                "DELETE FROM message_fts WHERE rowid IN"
                " (SELECT id FROM messages WHERE conversation_id = ?)",
                (conversation_id,),
            )
            conn.execute(
                "DELETE FROM message_attachments WHERE message_id IN"
                " (SELECT id FROM messages WHERE conversation_id = ?)",
                (conversation_id,),
            )
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            # Contents no other message attaches go with it.
            conn.execute(
                "DELETE FROM attachments WHERE NOT EXISTS"
                " (SELECT 1 FROM message_attachments AS l WHERE l.sha256 = attachments.sha256)"
            )

        self._transaction(run)

    def mark_interrupted(self) -> int:
        """Mark unfinished replies whose writing process is gone as ``interrupted`` (their
        partial text is kept and indexed). Replies of live processes are left alone. Runs at
        every open; returns how many replies it marked."""

        def run(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT id, writer_pid, writer_start, content FROM messages"
                " WHERE parent_id IS NOT NULL AND finish_reason IS NULL"
            ).fetchall()
            dead = [
                (mid, content) for mid, pid, start, content in rows if not writer_alive(pid, start)
            ]
            for mid, content in dead:
                conn.execute(
                    "UPDATE messages SET finish_reason = 'interrupted', writer_pid = NULL,"
                    " writer_start = NULL WHERE id = ?",
                    (mid,),
                )
                conn.execute(
                    "INSERT INTO message_fts(rowid, body) VALUES (?, ?)", (mid, index_text(content))
                )
            return len(dead)

        return self._transaction(run)

    def import_json(self, data: str | bytes | Mapping[str, Any]) -> int:
        """Import a conversation exported by :meth:`export_json` (as text or parsed) under new
        ids and return the new conversation id: the whole tree (every branch) and its active
        path. Replies exported mid-stream come back as ``interrupted``. Rows are written in the
        order of their exported ids, so branch numbers stay the same."""
        doc = export.parse(data)
        conv = doc["conversation"]
        now = self._now()
        rows = export.tree_rows(doc)

        def run(conn: sqlite3.Connection) -> int:
            created = float(conv.get("created") or now)
            cur = conn.execute(
                "INSERT INTO conversations(title, created, updated, system, params)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    conv.get("title"),
                    created,
                    float(conv.get("updated") or created),
                    conv.get("system"),
                    compact_json(conv.get("params") or {}),
                ),
            )
            cid = int(cur.lastrowid or 0)
            new_ids: dict[Any, int] = {}
            fts_rows: list[tuple[int, str]] = []
            for row in rows:
                item = row.item
                if row.parent is None:
                    cur = conn.execute(
                        "INSERT INTO messages(conversation_id, role, content, engine, model,"
                        " created, follows_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            cid,
                            item["role"],
                            item["content"],
                            item.get("engine"),
                            item.get("model"),
                            float(item.get("created") or created),
                            None if row.follows is None else new_ids[row.follows],
                        ),
                    )
                else:
                    m = ReplyMetrics.from_any(item.get("metrics") or {})
                    calls = item.get("tool_calls")
                    cur = conn.execute(
                        "INSERT INTO messages(conversation_id, parent_id, role, content, engine,"
                        " model, created, finish_reason, ttft_s, output_tokens_per_s,"
                        " prompt_tokens, output_tokens, extra_json, tool_calls)"
                        " VALUES (?, ?, 'assistant', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            cid,
                            new_ids[row.parent],
                            item["content"],
                            item.get("engine"),
                            item.get("model"),
                            float(item.get("created") or created),
                            item.get("finish_reason") or "interrupted",
                            m.ttft_s,
                            m.output_tokens_per_s,
                            m.prompt_tokens,
                            m.output_tokens,
                            compact_json(m.extra) if m.extra else None,
                            compact_json(calls) if calls else None,
                        ),
                    )
                new_id = int(cur.lastrowid or 0)
                new_ids[row.key] = new_id
                fts_rows.append((new_id, item["content"]))
                if row.parent is None:
                    _link_attachments(conn, new_id, export.message_attachments(doc, item))
            conn.executemany(
                "INSERT INTO message_fts(rowid, body) VALUES (?, ?)",
                ((rid, index_text(text)) for rid, text in fts_rows),
            )
            active = new_ids.get(conv.get("active")) if conv.get("active") is not None else None
            conn.execute("UPDATE conversations SET active_id = ? WHERE id = ?", (active, cid))
            return cid

        return self._transaction(run)

    # -- reading

    def list_conversations(self, limit: int = 50, offset: int = 0) -> list[ConversationSummary]:
        """Conversations, most recently updated first."""

        def run(conn: sqlite3.Connection) -> list[ConversationSummary]:
            rows = conn.execute(
                "SELECT c.id, c.title, c.created, c.updated,"
                " (SELECT count(*) FROM messages AS m WHERE m.conversation_id = c.id)"
                " FROM conversations AS c ORDER BY c.updated DESC, c.id DESC LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            return [ConversationSummary(*row) for row in rows]

        return self._transaction(run, write=False)

    def last_conversation_id(self) -> int | None:
        """The most recently updated conversation (for "continue where I left off")."""

        def run(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT id FROM conversations ORDER BY updated DESC, id DESC LIMIT 1"
            ).fetchone()
            return None if row is None else int(row[0])

        return self._transaction(run, write=False)

    def get_conversation(self, conversation_id: int) -> Conversation:
        """A conversation with its messages in order, each with its replies in order."""

        def run(conn: sqlite3.Connection) -> Conversation:
            row = conn.execute(
                "SELECT id, title, created, updated, system, params, active_id FROM conversations"
                " WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                raise ConversationNotFoundError(f"no conversation {conversation_id} in history")
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
            attached: dict[int, list[StoredAttachment]] = {}
            for mid, name, sha, kind, mime, data in conn.execute(
                "SELECT l.message_id, l.name, a.sha256, a.kind, a.mime, a.data"
                " FROM message_attachments AS l JOIN attachments AS a ON a.sha256 = l.sha256"
                " JOIN messages AS m ON m.id = l.message_id"
                " WHERE m.conversation_id = ? ORDER BY l.message_id, l.position",
                (conversation_id,),
            ):
                attached.setdefault(mid, []).append(
                    StoredAttachment(name, kind, mime, bytes(data), sha)
                )
            return _build_conversation(row, rows, attached)

        return self._transaction(run, write=False)

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Messages and finished replies matching ``query`` (all its terms), newest first.
        Japanese of any length is found as a substring; other words as whole words
        (``word*`` for a prefix)."""
        match = fts_query(query)
        if match is None:
            return []

        def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(SEARCH_SQL, (match, limit)).fetchall()

        hits = []
        for mid, cid, role, created, content, title in self._transaction(run, write=False):
            excerpt, start, end = snippet(content, query)
            hits.append(SearchHit(cid, mid, role, created, excerpt, title, start, end))
        return hits

    def explain_search(self, query: str) -> list[str]:
        """The ``EXPLAIN QUERY PLAN`` lines of :meth:`search` (for tests and benchmarks)."""
        match = fts_query(query) or '""'

        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("EXPLAIN QUERY PLAN " + SEARCH_SQL, (match, 50)).fetchall()
            return [str(r[-1]) for r in rows]

        return self._transaction(run, write=False)

    # -- arena votes

    def add_vote(self, vote: Vote) -> int:
        """Store an arena vote with its panes and pairwise results; return its id."""
        now = self._now()
        return self._transaction(lambda conn: insert_vote(conn, vote, now))

    def votes(self) -> list[Vote]:
        """Every arena vote, oldest first (see :mod:`tedchat.history.votes`)."""
        return self._transaction(read_votes, write=False)

    # -- export

    def export_json(self, conversation_id: int) -> str:
        """The conversation as JSON text with everything needed to import it again."""
        return export.to_json(self.get_conversation(conversation_id), self._now())

    def export_markdown(self, conversation_id: int, *, branch: int | None = None) -> str:
        """The conversation as a Markdown document (for reading, not for re-import): its
        active path, or branch ``branch`` (numbered as :mod:`tedchat.history.tree` says)."""
        conv = self.get_conversation(conversation_id)
        leaf = None if branch is None else branch_leaf(conv, branch)
        return export.to_markdown(conv, leaf)

    def set_active_branch(self, conversation_id: int, branch: int) -> None:
        """Make branch ``branch`` (1-based, leaves in creation order) the active path;
        :class:`~tedchat.errors.BranchNotFoundError` names the branches there are."""
        self.set_active(
            conversation_id, branch_leaf(self.get_conversation(conversation_id), branch)
        )

    # -- internals

    @staticmethod
    def _require_conversation(conn: sqlite3.Connection, conversation_id: int) -> int | None:
        """Check the conversation exists; return its active message id."""
        row = conn.execute(
            "SELECT active_id FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is not None:
            return None if row[0] is None else int(row[0])
        raise ConversationNotFoundError(f"no conversation {conversation_id} in history")

    @staticmethod
    def _require_message(conn: sqlite3.Connection, conversation_id: int, message_id: int) -> None:
        row = conn.execute(
            "SELECT conversation_id FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None or row[0] != conversation_id:
            raise HistoryError(f"message {message_id} is not in conversation {conversation_id}")


def _tree(conn: sqlite3.Connection, conversation_id: int) -> Tree:
    rows = conn.execute(
        "SELECT id, parent_id, follows_id FROM messages WHERE conversation_id = ?",
        (conversation_id,),
    ).fetchall()
    return Tree(
        Node(mid, parent if parent is not None else follows, parent is not None)
        for mid, parent, follows in rows
    )


def _link_attachments(
    conn: sqlite3.Connection, message_id: int, attachments: Sequence[StoredAttachment]
) -> None:
    for position, a in enumerate(attachments):
        conn.execute(
            "INSERT OR IGNORE INTO attachments(sha256, kind, mime, size, data)"
            " VALUES (?, ?, ?, ?, ?)",
            (a.sha256, a.kind, a.mime, a.size, a.data),
        )
        conn.execute(
            "INSERT INTO message_attachments(message_id, position, sha256, name)"
            " VALUES (?, ?, ?, ?)",
            (message_id, position, a.sha256, a.name),
        )


def _build_conversation(
    row: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    attached: Mapping[int, Sequence[StoredAttachment]] | None = None,
) -> Conversation:
    tops: list[tuple[Any, ...]] = []
    replies: dict[int, list[Reply]] = {}
    for r in rows:
        (mid, cid, parent, role, content, engine, model, created, finish) = r[:9]
        if parent is None:
            tops.append((mid, cid, role, content, created, engine, model, r[15]))
            continue
        ttft, tps, ptok, otok, extra, calls = r[9:15]
        metrics = ReplyMetrics(ttft, tps, ptok, otok, json_object(extra))
        replies.setdefault(parent, []).append(
            Reply(
                mid,
                parent,
                engine,
                model,
                content,
                created,
                finish,
                metrics,
                json_list_of_objects(calls),
            )
        )
    files = attached or {}
    messages = tuple(
        StoredMessage(
            mid,
            cid,
            role,
            content,
            created,
            engine,
            model,
            tuple(replies.get(mid, ())),
            tuple(files.get(mid, ())),
            follows,
        )
        for mid, cid, role, content, created, engine, model, follows in tops
    )
    cid, title, created, updated, system, params, active = row
    return Conversation(cid, title, created, updated, system, json_object(params), messages, active)


def _title_from(content: str) -> str | None:
    line = next((ln.strip() for ln in content.splitlines() if ln.strip()), "")
    if not line:
        return None
    return line if len(line) <= 60 else line[:59].rstrip() + "…"
