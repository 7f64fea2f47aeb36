"""The history file's schema: its tables and the forward steps between its versions.

What is stored
--------------
``conversations`` (title, created/updated times, system prompt, generation params as JSON) and
``messages``. A user message is a top-level row; every model reply to it (regenerations,
the panes of a side-by-side comparison) is a row whose ``parent_id`` points at that user
message, with its engine, model, finish reason (``stop|length|cancelled|error|interrupted``)
and metrics (TTFT, output tokens/s, prompt/output tokens, and a JSON of whatever else the
meter or the server reported). Times are Unix seconds (UTC) as floats. A streaming reply's
row also carries its writer's identity (see :mod:`tedchat.history.liveness`), and
``message_fts`` is the search index (see :mod:`tedchat.history.search`).

Schema versions
---------------
``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS` lists the forward steps
(v1: the basic tables; v2: reply metrics, the writer liveness columns and the search index,
backfilled from existing rows; v3: a reply's tool calls, a JSON list in ``tool_calls`` in the
shape of :meth:`tedchat.tools.base.ToolCallRecord.as_dict`; v4: attachments, stored once by
content hash in ``attachments`` and linked to user messages by ``message_attachments``; v5: the
message tree, a user message's ``follows_id`` (the message it was sent after) and a
conversation's ``active_id``, backfilled so an old conversation is one branch through the
newest reply of each prompt, as it was shown; v6: arena votes, ``votes`` (one per vote: the
prompt, the outcome, the preset and parameters) with ``vote_panes`` (every pane voted on: its
blind label, engine, model, text model, reply id, reply text and figures) and ``vote_pairs``
(the pairwise results the vote stands for; see :mod:`tedchat.history.votes`)). Opening a store
runs the missing steps in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tedchat.errors import HistorySchemaError
from tedchat.history.integrity import NEW_HISTORY_HINT
from tedchat.history.search import index_text


@dataclass(frozen=True)
class Migration:
    """One forward step of the schema: SQL statements, then an optional Python step (for work
    SQL cannot do, like filling the search index with Python-tokenized text)."""

    version: int
    statements: tuple[str, ...]
    python: Callable[[sqlite3.Connection], None] | None = None


def _backfill_search_index(conn: sqlite3.Connection) -> None:
    rows = conn.execute(
        "SELECT id, content FROM messages WHERE parent_id IS NULL OR finish_reason IS NOT NULL"
    )
    conn.executemany(
        "INSERT INTO message_fts(rowid, body) VALUES (?, ?)",
        ((mid, index_text(content)) for mid, content in rows.fetchall()),
    )


def _backfill_follows(conn: sqlite3.Connection) -> None:
    """Before v4 a conversation was a line of prompts, each showing its newest reply: each
    prompt follows the newest reply of the prompt before it (or that prompt, if unanswered)."""
    rows = conn.execute(
        "SELECT id, conversation_id, parent_id FROM messages ORDER BY conversation_id, id"
    ).fetchall()
    newest_reply: dict[int, int] = {}
    for mid, _cid, parent in rows:
        if parent is not None:
            newest_reply[parent] = max(mid, newest_reply.get(parent, mid))
    updates: list[tuple[int, int]] = []
    previous: dict[int, int] = {}  # conversation -> its previous prompt
    for mid, cid, parent in rows:
        if parent is not None:
            continue
        before = previous.get(cid)
        if before is not None:
            updates.append((newest_reply.get(before, before), mid))
        previous[cid] = mid
    conn.executemany("UPDATE messages SET follows_id = ? WHERE id = ?", updates)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            # AUTOINCREMENT: an id is never reused after a delete, so a reply still streaming
            # into a deleted conversation, or a remembered "last conversation", can never
            # land on someone else's row.
            """CREATE TABLE conversations (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                title TEXT,
                created REAL NOT NULL,
                updated REAL NOT NULL,
                system TEXT,
                params TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX conversations_by_updated ON conversations(updated, id)",
            """CREATE TABLE messages (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                conversation_id INTEGER NOT NULL
                    REFERENCES conversations(id) ON DELETE CASCADE,
                parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
                role TEXT NOT NULL,
                content TEXT NOT NULL DEFAULT '',
                engine TEXT,
                model TEXT,
                created REAL NOT NULL,
                finish_reason TEXT
            )""",
            "CREATE INDEX messages_by_conversation ON messages(conversation_id, id)",
            # Without it every cascade delete of a message would scan the table for replies.
            "CREATE INDEX messages_by_parent ON messages(parent_id)",
        ),
    ),
    Migration(
        2,
        (
            "ALTER TABLE messages ADD COLUMN ttft_s REAL",
            "ALTER TABLE messages ADD COLUMN output_tokens_per_s REAL",
            "ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER",
            "ALTER TABLE messages ADD COLUMN output_tokens INTEGER",
            "ALTER TABLE messages ADD COLUMN extra_json TEXT",
            "ALTER TABLE messages ADD COLUMN writer_pid INTEGER",
            "ALTER TABLE messages ADD COLUMN writer_start TEXT",
            # v1 kept no writer identity, so an unfinished v1 reply cannot be proven alive.
            "UPDATE messages SET finish_reason = 'interrupted'"
            " WHERE parent_id IS NOT NULL AND finish_reason IS NULL",
            # Finding unfinished replies at every open must not scan all messages.
            "CREATE INDEX messages_unfinished ON messages(id)"
            " WHERE parent_id IS NOT NULL AND finish_reason IS NULL",
            "CREATE VIRTUAL TABLE message_fts USING fts5("
            "body, tokenize = 'unicode61 remove_diacritics 2')",
        ),
        _backfill_search_index,
    ),
    Migration(3, ("ALTER TABLE messages ADD COLUMN tool_calls TEXT",)),
    Migration(
        4,
        (
            # One row per content, however many messages attach it.
            """CREATE TABLE attachments (
                sha256 TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                mime TEXT NOT NULL,
                size INTEGER NOT NULL,
                data BLOB NOT NULL
            )""",
            """CREATE TABLE message_attachments (
                message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                sha256 TEXT NOT NULL REFERENCES attachments(sha256),
                name TEXT NOT NULL,
                PRIMARY KEY (message_id, position)
            )""",
            "CREATE INDEX message_attachments_by_hash ON message_attachments(sha256)",
        ),
    ),
    Migration(
        5,
        (
            "ALTER TABLE messages ADD COLUMN follows_id INTEGER"
            " REFERENCES messages(id) ON DELETE CASCADE",
            "CREATE INDEX messages_by_follows ON messages(follows_id)",
            # No foreign key: a stale id is ignored when read (the newest path is shown).
            "ALTER TABLE conversations ADD COLUMN active_id INTEGER",
        ),
        _backfill_follows,
    ),
    Migration(
        6,
        (
            # A vote outlives the conversation it was cast in: the prompt and the replies are
            # copied, the ids are kept for as long as the messages exist.
            """CREATE TABLE votes (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                created REAL NOT NULL,
                conversation_id INTEGER REFERENCES conversations(id) ON DELETE SET NULL,
                message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
                prompt TEXT NOT NULL,
                outcome TEXT NOT NULL CHECK (outcome IN ('win', 'tie', 'all_bad')),
                winner TEXT,
                blind INTEGER NOT NULL DEFAULT 1,
                shared_text_model INTEGER NOT NULL DEFAULT 0,
                preset TEXT,
                system TEXT,
                params TEXT NOT NULL DEFAULT '{}'
            )""",
            """CREATE TABLE vote_panes (
                vote_id INTEGER NOT NULL REFERENCES votes(id) ON DELETE CASCADE,
                label TEXT NOT NULL,
                engine TEXT NOT NULL,
                model TEXT,
                text_model TEXT,
                reply_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
                reply TEXT NOT NULL DEFAULT '',
                finish_reason TEXT,
                ttft_s REAL,
                output_tokens_per_s REAL,
                prompt_tokens INTEGER,
                output_tokens INTEGER,
                extra_json TEXT,
                PRIMARY KEY (vote_id, label)
            )""",
            """CREATE TABLE vote_pairs (
                vote_id INTEGER NOT NULL REFERENCES votes(id) ON DELETE CASCADE,
                first TEXT NOT NULL,
                second TEXT NOT NULL,
                result TEXT NOT NULL CHECK (result IN ('first', 'tie', 'both_bad')),
                PRIMARY KEY (vote_id, first, second)
            )""",
            "CREATE INDEX vote_panes_by_engine ON vote_panes(engine)",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the database on ``conn`` up to schema ``target`` in one ``BEGIN IMMEDIATE``
    transaction and return the version it had. Exposed so tests can build old versions.

    The version is read again under the write lock, so two processes opening a fresh file
    at once do not both run the steps.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise newer_schema_error(None, current)
        for step in MIGRATIONS:
            if current < step.version <= target:
                for sql in step.statements:
                    conn.execute(sql)
                if step.python is not None:
                    step.python(conn)
                # user_version is part of the database header, so it commits with the steps.
                conn.execute(f"PRAGMA user_version = {int(step.version)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return current


def newer_schema_error(path: Path | None, version: int) -> HistorySchemaError:
    """The error for a file whose schema is newer than this tedchat knows."""
    where = f"history file {path}" if path else "history file"
    return HistorySchemaError(
        f"{where} uses schema v{version}, newer than this tedchat's v{SCHEMA_VERSION};"
        f" upgrade tedchat or {NEW_HISTORY_HINT}"
    )
