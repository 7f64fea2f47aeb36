"""The conversation history: one SQLite file in the user data dir (stdlib ``sqlite3`` only).

What is stored
--------------
``conversations`` (title, created/updated times, system prompt, generation params as JSON) and
``messages``. A user message is a top-level row; every model reply to it (regenerations,
the panes of a side-by-side comparison) is a row whose ``parent_id`` points at that user
message, with its engine, model, finish reason (``stop|length|cancelled|error|interrupted``)
and metrics (TTFT, output tokens/s, prompt/output tokens, and a JSON of whatever else the
meter or the server reported). Times are Unix seconds (UTC) as floats.

Nothing typed is lost
---------------------
The caller commits the user message (:meth:`Store.add_user_message`) *before* it sends the
request. The reply is written while it streams through a :class:`ReplyWriter`, which buffers
text and flushes it at most every 250 ms, then finalises the row with its finish reason and
metrics. While a reply streams its row carries the writer's pid and process start time; when
a store is opened, replies whose writer is gone are marked ``interrupted`` (partial text kept),
and replies whose writer still runs are left alone. The start time (``/proc/<pid>/stat`` field
22, plus the boot id) is what tells a live writer from an unrelated process that reused its pid.

Several processes at once
-------------------------
WAL mode lets readers and one writer work together. Every write is a short ``BEGIN IMMEDIATE``
transaction (taking the write lock up front, so a transaction never has to upgrade a read lock,
the one case SQLite's busy handler cannot wait out), with a busy timeout, and the whole
transaction is retried with backoff on ``SQLITE_BUSY`` until a generous deadline.

Search (FTS5 and Japanese)
--------------------------
FTS5's ``unicode61`` tokenizer treats a run of kanji/kana as one huge token, and the
``trigram`` tokenizer cannot find a query shorter than three characters, so neither finds
東京 inside 東京タワーに行きました. Instead the text is tokenized in Python before it reaches
FTS5 (:func:`index_text`): words in other scripts stay words; a run of CJK characters becomes
its overlapping bigrams followed by its last character alone (東京タワー -> 東京 京タ タワ ワー ー).
The result goes into a one-column FTS5 ``unicode61`` table whose rowid is the message id.
A query is split the same way (:func:`fts_query`): a CJK run of two or more characters becomes
the *phrase* of its bigrams (エレクトロン -> "エレ レク クト トロ ロン", which only matches those
bigrams adjacent and in order, i.e. the substring), a single CJK character becomes the prefix
query ``"東"*`` (every character begins some token, thanks to the trailing single character),
and words are whole-word matches (``word*`` for a prefix). The trailing single character also
keeps a phrase from matching across two separate runs. Search therefore is an FTS5 index
lookup, never a scan; results are newest first (FTS5 walks its rowids backwards and stops at
the limit). Snippets are cut from the original text in Python, since the indexed text is the
tokenized form. Replies enter the index when they are finalised (or marked interrupted), so
the index is not rewritten on every 250 ms flush. If :func:`index_text` ever changes, a
migration must rebuild ``message_fts``.

Schema versions
---------------
``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS` lists the forward steps
(v1: the basic tables; v2: reply metrics, the writer liveness columns and the search index,
backfilled from existing rows). Opening a store runs the missing steps in one transaction.

A damaged file
--------------
Before anything writes to an existing file it is checked with ``PRAGMA quick_check`` on a
read-only connection (which also rejects a file without the ``SQLite format 3`` header; the
header is not read with plain file I/O, see :func:`_check_existing_file`). A damaged or
unreadable file raises :class:`HistoryCorruptError` and is left exactly as it was: nothing is
renamed, deleted or repaired. ``Store.open(path, new_history=True)`` (``--new-history``)
opens a new file next to it whose name comes from :func:`fresh_path_for`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import random
import re
import sqlite3
import sys
import threading
import time
import unicodedata
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from tedchat.engine import FINISH_REASONS
from tedchat.errors import HistoryError

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "FLUSH_INTERVAL_S",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Conversation",
    "ConversationNotFoundError",
    "ConversationSummary",
    "HistoryBusyError",
    "HistoryCorruptError",
    "HistoryError",
    "HistoryImportError",
    "HistorySchemaError",
    "Migration",
    "Reply",
    "ReplyMetrics",
    "ReplyWriter",
    "SearchHit",
    "Store",
    "StoredMessage",
    "fresh_path_for",
    "fts_query",
    "index_text",
    "migrate",
]

T = TypeVar("T")
Clock = Callable[[], float]

FLUSH_INTERVAL_S = 0.25
"""A streaming reply reaches the database at most this often (and always when it ends)."""

BUSY_TIMEOUT_MS = 5_000
"""How long SQLite itself waits for a lock before reporting SQLITE_BUSY."""

BUSY_DEADLINE_S = 60.0
"""How long a transaction is retried on SQLITE_BUSY before giving up with HistoryBusyError."""

EXPORT_FORMAT = "tedchat-conversation"
EXPORT_VERSION = 1

_NEW_HISTORY_HINT = "start a fresh history with --new-history"


# --- errors ----------------------------------------------------------------------------------


class HistoryCorruptError(HistoryError):
    """The history file is damaged or cannot be read; it has been left untouched."""


class HistorySchemaError(HistoryError):
    """The history file was written by a newer tedchat than this one."""


class HistoryBusyError(HistoryError):
    """Another process held the history's write lock for longer than the retry deadline."""


class ConversationNotFoundError(HistoryError):
    """No conversation has the given id."""


class HistoryImportError(HistoryError):
    """A conversation export could not be imported (bad JSON, unknown format or version)."""


# --- value objects ---------------------------------------------------------------------------

_CORE_METRICS = ("ttft_s", "output_tokens_per_s", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class ReplyMetrics:
    """A reply's figures (see DESIGN.md, Metrics). ``extra`` holds everything else reported:
    server/engine timings, elapsed time, where the token count came from, emulated figures."""

    ttft_s: float | None = None
    output_tokens_per_s: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_any(cls, metrics: object) -> ReplyMetrics:
        """Accept a :class:`ReplyMetrics`, a mapping, or any metrics object with ``as_dict()``
        or dataclass fields (e.g. :class:`tedchat.metrics.StreamMetrics`)."""
        if metrics is None:
            return cls()
        if isinstance(metrics, ReplyMetrics):
            return metrics
        if isinstance(metrics, Mapping):
            data = dict(metrics)
        elif hasattr(metrics, "as_dict"):
            data = dict(metrics.as_dict())
            # as_dict() is the JSON view; keep the richer fields it leaves out (emulated figures).
            if is_dataclass(metrics):
                for f in fields(metrics):
                    data.setdefault(f.name, getattr(metrics, f.name))
        elif is_dataclass(metrics) and not isinstance(metrics, type):
            data = {f.name: getattr(metrics, f.name) for f in fields(metrics)}
        else:
            raise TypeError(f"cannot read reply metrics from {type(metrics).__name__}")
        # The finish reason is an argument of its own; a copy here would only disagree with it.
        data.pop("finish_reason", None)
        core = {k: data.pop(k, None) for k in _CORE_METRICS}
        # Our own as_dict() nests the rest under "extra": read it back flat.
        nested = data.pop("extra", None)
        if isinstance(nested, Mapping):
            data = {**nested, **data}
        elif nested is not None:
            data["extra"] = nested
        extra = {k: _jsonable(v) for k, v in data.items() if v is not None and v != {}}
        return cls(
            ttft_s=_opt_float(core["ttft_s"]),
            output_tokens_per_s=_opt_float(core["output_tokens_per_s"]),
            prompt_tokens=_opt_int(core["prompt_tokens"]),
            output_tokens=_opt_int(core["output_tokens"]),
            extra=extra,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the JSON export)."""
        return {
            "ttft_s": self.ttft_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class Reply:
    """One model reply to a user message. ``finish_reason`` is None while it is being written."""

    id: int
    parent_id: int
    engine: str | None
    model: str | None
    content: str
    created: float
    finish_reason: str | None
    metrics: ReplyMetrics = field(default_factory=ReplyMetrics)

    @property
    def streaming(self) -> bool:
        """True while a live process is still writing this reply."""
        return self.finish_reason is None


@dataclass(frozen=True)
class StoredMessage:
    """A top-level message (a user turn) and its replies, oldest first."""

    id: int
    conversation_id: int
    role: str
    content: str
    created: float
    engine: str | None = None
    model: str | None = None
    replies: tuple[Reply, ...] = ()


@dataclass(frozen=True)
class ConversationSummary:
    """A row of the history list."""

    id: int
    title: str | None
    created: float
    updated: float
    message_count: int


@dataclass(frozen=True)
class Conversation:
    """A whole conversation: its settings and its messages in order, each with its replies."""

    id: int
    title: str | None
    created: float
    updated: float
    system: str | None
    params: dict[str, Any]
    messages: tuple[StoredMessage, ...] = ()


@dataclass(frozen=True)
class SearchHit:
    """One message that matched a search. ``snippet[match_start:match_end]`` is the match
    (both None when the match could not be located in the original text)."""

    conversation_id: int
    message_id: int
    role: str
    created: float
    snippet: str
    conversation_title: str | None = None
    match_start: int | None = None
    match_end: int | None = None


# --- text for the search index ---------------------------------------------------------------

# Characters written without spaces between words: kanji, kana (with the prolonged sound mark
# and iteration marks), Hangul. The katakana middle dot ・ is left out: it separates words.
_CJK = (
    "\u3005-\u3007\u3021-\u3029\u3031-\u3035\u303b\u303c"
    "\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff\u3131-\u318e"
    "\U00020000-\U0003134f"
)
_TOKEN_RE = re.compile(f"(?P<cjk>[{_CJK}]+)|(?P<word>[^\\W{_CJK}]+)")


def _normalize(text: str) -> str:
    # NFKC folds full-width Latin and half-width katakana into their usual forms, so ｔｏｋｙｏ
    # finds tokyo and ｴﾚｸﾄﾛﾝ finds エレクトロン; casefold on top of unicode61's own folding
    # keeps Python's and FTS5's idea of a token identical.
    return unicodedata.normalize("NFKC", text).casefold()


def index_text(text: str) -> str:
    """The text handed to FTS5 for ``text``: words, and CJK runs as bigrams + last character."""
    out: list[str] = []
    for m in _TOKEN_RE.finditer(_normalize(text)):
        run = m.group("cjk")
        if run:
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
            out.append(run[-1])
        else:
            out.append(m.group("word"))
    return " ".join(out)


def _query_terms(query: str) -> list[tuple[str, bool, bool]]:
    """(term, is_cjk, is_prefix) for every term of a search query."""
    text = _normalize(query)
    terms = []
    for m in _TOKEN_RE.finditer(text):
        prefix = m.end() < len(text) and text[m.end()] == "*"
        if m.group("cjk"):
            terms.append((m.group("cjk"), True, prefix))
        else:
            terms.append((m.group("word"), False, prefix))
    return terms


def fts_query(query: str) -> str | None:
    """The FTS5 MATCH expression for a user's search text (None if it has nothing to find).

    Every term is quoted, so no input can be an FTS5 syntax error; all terms must match.
    """
    parts = []
    for term, cjk, prefix in _query_terms(query):
        if cjk and len(term) == 1:
            parts.append(f'"{term}"*')
        elif cjk:
            bigrams = " ".join(term[i : i + 2] for i in range(len(term) - 1))
            parts.append(f'"{bigrams}"*' if prefix else f'"{bigrams}"')
        else:
            parts.append(f'"{term}"*' if prefix else f'"{term}"')
    return " AND ".join(parts) or None


_SNIPPET_BEFORE = 40
_SNIPPET_AFTER = 100


def _snippet(content: str, query: str) -> tuple[str, int | None, int | None]:
    """A one-line excerpt of ``content`` around the first match of any query term."""
    flat = " ".join(content.split())
    best: re.Match[str] | None = None
    for term, cjk, _prefix in _query_terms(query):
        pattern = re.escape(term) if cjk else r"(?<!\w)" + re.escape(term)
        m = re.search(pattern, flat, re.IGNORECASE)
        if m and (best is None or m.start() < best.start()):
            best = m
    if best is None:
        text = flat[: _SNIPPET_BEFORE + _SNIPPET_AFTER]
        return (text + "…" if len(flat) > len(text) else text), None, None
    start = max(0, best.start() - _SNIPPET_BEFORE)
    end = min(len(flat), best.end() + _SNIPPET_AFTER)
    lead = "…" if start > 0 else ""
    tail = "…" if end < len(flat) else ""
    offset = len(lead) - start
    return lead + flat[start:end] + tail, best.start() + offset, best.end() + offset


# --- schema and migrations -------------------------------------------------------------------


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
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise _newer_schema_error(None, current)
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


# --- process liveness ------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from /proc/<pid>/stat, None if absent."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    return rest[0].decode(), rest[19].decode()  # fields 3 and 22


def _process_start(pid: int) -> str | None:
    """An identity for the process's start (boot id + start ticks); None where /proc is absent."""
    stat = _proc_stat(pid)
    if stat is None:
        return None
    return f"{_boot_id()}:{stat[1]}"


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would *terminate* the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_alive(pid: int | None, start: str | None) -> bool:
    """Is the process that began a reply still running? Unknown counts as alive: leaving a
    dead reply unmarked until the next open is harmless, marking a live one is not."""
    if pid is None:
        return False
    if start is not None and Path("/proc").is_dir():
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or a zombie waiting to be reaped
            return False
        return f"{_boot_id()}:{stat[1]}" == start
    return _pid_alive(pid)


@functools.lru_cache(maxsize=4)
def _writer_identity(pid: int) -> tuple[int, str | None]:
    return pid, _process_start(pid)


def _own_writer_identity() -> tuple[int, str | None]:
    # Keyed by pid, not cached once: a forked child is a different writer.
    return _writer_identity(os.getpid())


# --- helpers ---------------------------------------------------------------------------------


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _jsonable(value: Any) -> Any:
    """Plain JSON data from dataclasses, mappings (also read-only ones) and sequences."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))


def _loads_dict(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (and extended codes)
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


def _is_corrupt(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    msg = str(exc).lower()
    return "malformed" in msg or "not a database" in msg


def _newer_schema_error(path: Path | None, version: int) -> HistorySchemaError:
    where = f"history file {path}" if path else "history file"
    return HistorySchemaError(
        f"{where} uses schema v{version}, newer than this tedchat's v{SCHEMA_VERSION};"
        f" upgrade tedchat or {_NEW_HISTORY_HINT}"
    )


def _corrupt_error(path: Path, why: str) -> HistoryCorruptError:
    why = " ".join(why.split())  # the message must stay one line
    return HistoryCorruptError(
        f"history file {path} cannot be used ({why}); it was left untouched: {_NEW_HISTORY_HINT}",
        hint=f"--new-history starts a new file next to it, e.g. {fresh_path_for(path).name}",
    )


def _title_from(content: str) -> str | None:
    line = next((ln.strip() for ln in content.splitlines() if ln.strip()), "")
    if not line:
        return None
    return line if len(line) <= 60 else line[:59].rstrip() + "…"


def _check_finish_reason(reason: str) -> str:
    if reason not in FINISH_REASONS:
        raise ValueError(f"finish reason must be one of {', '.join(FINISH_REASONS)}: {reason!r}")
    return reason


def fresh_path_for(path: str | os.PathLike[str], now: datetime | None = None) -> Path:
    """A new, unused file name next to ``path`` for ``--new-history``, e.g.
    ``history-2026-11-26T1005.db``. Nothing is created, moved or deleted."""
    path = Path(path)
    stamp = (now or datetime.now()).strftime("%Y-%m-%dT%H%M")
    n = 1
    while True:
        suffix = "" if n == 1 else f"-{n}"
        candidate = path.with_name(f"{path.stem}-{stamp}{suffix}{path.suffix}")
        # A leftover -wal or -shm would be taken as part of the new database: skip those too.
        taken = (candidate, Path(f"{candidate}-wal"), Path(f"{candidate}-shm"))
        if not any(p.exists() for p in taken):
            return candidate
        n += 1


def _check_existing_file(path: Path) -> None:
    """Raise HistoryCorruptError unless ``path`` (if it exists) is a sound SQLite database.

    Reads only, and only through SQLite: a read-only connection runs ``PRAGMA quick_check``
    (SQLite itself rejects a file without the ``SQLite format 3`` header). The file is never
    opened with plain file I/O: closing such a descriptor drops every POSIX lock this process
    holds on the file, including those of a store already open here, and another process may
    then checkpoint and delete the WAL under it (seen in the two-writer test).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _corrupt_error(path, exc.strerror or str(exc)) from exc
    if size == 0:
        return  # SQLite treats an empty file as a new database: nothing to lose
    if not os.access(path, os.R_OK):
        raise _corrupt_error(path, "permission denied")
    # A read-only connection to a WAL file creates -wal/-shm beside it and cannot remove them.
    sides = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    absent = [p for p in sides if not p.exists()]
    try:
        _quick_check(path)
    except HistoryCorruptError:
        # Tidy up only what this check itself created, and only while it holds no data.
        if sides[0] in absent and sides[0].exists() and sides[0].stat().st_size == 0:
            for p in absent:
                p.unlink(missing_ok=True)
        raise


def _quick_check(path: Path) -> None:
    deadline = time.monotonic() + BUSY_DEADLINE_S
    while True:
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
            )
            try:
                rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if _is_busy(exc) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise _corrupt_error(path, str(exc)) from exc
        except sqlite3.DatabaseError as exc:
            why = "not an SQLite database" if "not a database" in str(exc) else str(exc)
            raise _corrupt_error(path, why) from exc
        break
    if rows != ["ok"]:
        raise _corrupt_error(path, f"integrity check failed: {rows[0]}")


# --- the store -------------------------------------------------------------------------------

_MESSAGE_COLUMNS = (
    "id, conversation_id, parent_id, role, content, engine, model, created, finish_reason,"
    " ttft_s, output_tokens_per_s, prompt_tokens, output_tokens, extra_json"
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
    ) -> None:
        self._conn = conn
        self.path = path
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
    ) -> Store:
        """Open (creating folders and file as needed) the history at ``path``, migrate it to
        the current schema and mark replies whose writer died as ``interrupted``.

        ``new_history`` opens a new file next to ``path`` instead (see :func:`fresh_path_for`);
        ``store.path`` says which file is in use. ``clock`` paces reply flushes; ``wall_clock``
        stamps created/updated times. Raises :class:`HistoryCorruptError` for a damaged or
        unreadable file (left untouched) and :class:`HistorySchemaError` for a newer schema.
        """
        path = Path(path).expanduser().absolute()  # error messages name the whole path
        if new_history:
            path = fresh_path_for(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(
                f"cannot create the history folder {path.parent}: {exc.strerror or exc}"
            ) from exc
        _check_existing_file(path)
        try:
            conn = sqlite3.connect(
                str(path),
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,  # guarded by the store's lock instead
            )
        except sqlite3.Error as exc:
            raise _corrupt_error(path, str(exc)) from exc
        store = cls(conn, path, clock=clock, wall_clock=wall_clock)
        try:
            store._setup()
        except BaseException:
            conn.close()
            raise
        return store

    def _setup(self) -> None:
        def pragmas() -> None:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Refuse a newer schema before anything (even the journal mode) is changed.
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _newer_schema_error(self.path, version)
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
            for writer in list(self._writers):
                if not writer.finished:
                    writer._end("interrupted", None)
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` again after SQLITE_BUSY (with backoff) until the deadline."""
        deadline = time.monotonic() + BUSY_DEADLINE_S
        delay = 0.002
        with self._lock:
            while True:
                try:
                    return fn()
                except sqlite3.OperationalError as exc:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    if not _is_busy(exc):
                        if _is_corrupt(exc):
                            raise _corrupt_error(self.path, str(exc)) from exc
                        raise HistoryError(f"history file {self.path}: {exc}") from exc
                    if time.monotonic() > deadline:
                        raise HistoryBusyError(
                            f"history file {self.path} stayed locked by another process for "
                            f"{BUSY_DEADLINE_S:.0f} s",
                            hint="another tedchat may be stuck; close it and try again",
                        ) from exc
                    time.sleep(delay * (0.5 + random.random()))  # jitter: don't retry in step
                    delay = min(delay * 2, 0.1)
                except sqlite3.DatabaseError as exc:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    if _is_corrupt(exc):
                        raise _corrupt_error(self.path, str(exc)) from exc
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
        params_json = _dumps(params if params is not None else {})

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
    ) -> int:
        """Commit a user message (call it before sending the request) and return its id.
        ``engine``/``model`` say where it was addressed, when there is one target."""
        now = self._now()
        indexed = index_text(content)

        def run(conn: sqlite3.Connection) -> int:
            self._require_conversation(conn, conversation_id)
            cur = conn.execute(
                "INSERT INTO messages(conversation_id, role, content, engine, model, created)"
                " VALUES (?, 'user', ?, ?, ?, ?)",
                (conversation_id, content, engine, model, now),
            )
            mid = int(cur.lastrowid or 0)
            conn.execute("INSERT INTO message_fts(rowid, body) VALUES (?, ?)", (mid, indexed))
            conn.execute(
                "UPDATE conversations SET updated = ?, title = coalesce(title, ?) WHERE id = ?",
                (now, _title_from(content), conversation_id),
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
        pid, start = _own_writer_identity()

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
            conn.execute(
                "UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id)
            )
            return int(cur.lastrowid or 0)

        reply_id = self._transaction(run)
        writer = ReplyWriter(self, reply_id, conversation_id, clock or self._clock, flush_interval)
        self._writers.add(writer)
        return writer

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
        params_json = _dumps(params if params is not None else {})

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
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

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
                (mid, content) for mid, pid, start, content in rows if not _writer_alive(pid, start)
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
        ids and return the new conversation id. Replies exported mid-stream come back as
        ``interrupted``."""
        doc = _parse_export(data)
        conv = doc["conversation"]
        now = self._now()

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
                    _dumps(conv.get("params") or {}),
                ),
            )
            cid = int(cur.lastrowid or 0)
            fts_rows: list[tuple[int, str]] = []
            for msg in doc["messages"]:
                cur = conn.execute(
                    "INSERT INTO messages(conversation_id, role, content, engine, model, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        cid,
                        msg["role"],
                        msg["content"],
                        msg.get("engine"),
                        msg.get("model"),
                        float(msg.get("created") or created),
                    ),
                )
                mid = int(cur.lastrowid or 0)
                fts_rows.append((mid, msg["content"]))
                for rep in msg.get("replies") or ():
                    m = ReplyMetrics.from_any(rep.get("metrics") or {})
                    cur = conn.execute(
                        "INSERT INTO messages(conversation_id, parent_id, role, content, engine,"
                        " model, created, finish_reason, ttft_s, output_tokens_per_s,"
                        " prompt_tokens, output_tokens, extra_json)"
                        " VALUES (?, ?, 'assistant', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            cid,
                            mid,
                            rep["content"],
                            rep.get("engine"),
                            rep.get("model"),
                            float(rep.get("created") or created),
                            rep.get("finish_reason") or "interrupted",
                            m.ttft_s,
                            m.output_tokens_per_s,
                            m.prompt_tokens,
                            m.output_tokens,
                            _dumps(m.extra) if m.extra else None,
                        ),
                    )
                    fts_rows.append((int(cur.lastrowid or 0), rep["content"]))
            conn.executemany(
                "INSERT INTO message_fts(rowid, body) VALUES (?, ?)",
                ((rid, index_text(text)) for rid, text in fts_rows),
            )
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
                "SELECT id, title, created, updated, system, params FROM conversations"
                " WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                raise ConversationNotFoundError(f"no conversation {conversation_id} in history")
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
            return _build_conversation(row, rows)

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
            snippet, start, end = _snippet(content, query)
            hits.append(SearchHit(cid, mid, role, created, snippet, title, start, end))
        return hits

    def explain_search(self, query: str) -> list[str]:
        """The ``EXPLAIN QUERY PLAN`` lines of :meth:`search` (for tests and benchmarks)."""
        match = fts_query(query) or '""'

        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("EXPLAIN QUERY PLAN " + SEARCH_SQL, (match, 50)).fetchall()
            return [str(r[-1]) for r in rows]

        return self._transaction(run, write=False)

    # -- export

    def export_json(self, conversation_id: int) -> str:
        """The conversation as JSON text with everything needed to import it again."""
        conv = self.get_conversation(conversation_id)
        doc = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "schema": SCHEMA_VERSION,
            "exported": self._now(),
            "conversation": {
                "id": conv.id,
                "title": conv.title,
                "created": conv.created,
                "updated": conv.updated,
                "system": conv.system,
                "params": conv.params,
            },
            "messages": [
                {
                    "id": msg.id,
                    "role": msg.role,
                    "content": msg.content,
                    "engine": msg.engine,
                    "model": msg.model,
                    "created": msg.created,
                    "replies": [
                        {
                            "id": rep.id,
                            "engine": rep.engine,
                            "model": rep.model,
                            "content": rep.content,
                            "created": rep.created,
                            "finish_reason": rep.finish_reason,
                            "metrics": rep.metrics.as_dict(),
                        }
                        for rep in msg.replies
                    ],
                }
                for msg in conv.messages
            ],
        }
        return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"

    def export_markdown(self, conversation_id: int) -> str:
        """The conversation as a Markdown document (for reading, not for re-import)."""
        conv = self.get_conversation(conversation_id)
        out = [f"# {conv.title or f'Conversation {conv.id}'}", ""]
        out.append(f"*Created {_fmt_time(conv.created)} · updated {_fmt_time(conv.updated)}*")
        out.append("")
        if conv.params:
            out += ["Parameters: `" + _dumps(conv.params) + "`", ""]
        if conv.system:
            out += ["## System", "", conv.system, ""]
        for msg in conv.messages:
            target = " · ".join(x for x in (msg.engine, msg.model) if x)
            heading = f"## {msg.role.capitalize()} · {_fmt_time(msg.created)}"
            out += [heading + (f" · to {target}" if target else ""), "", msg.content, ""]
            for i, rep in enumerate(msg.replies, 1):
                label = " · ".join(x for x in (rep.engine, rep.model) if x) or "reply"
                count = f" ({i} of {len(msg.replies)})" if len(msg.replies) > 1 else ""
                out += [f"### {label}{count}", "", f"*{_metrics_line(rep)}*", "", rep.content, ""]
        return "\n".join(out).rstrip() + "\n"

    # -- internals

    @staticmethod
    def _require_conversation(conn: sqlite3.Connection, conversation_id: int) -> None:
        if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone():
            return
        raise ConversationNotFoundError(f"no conversation {conversation_id} in history")


class ReplyWriter:
    """Saves one reply while it streams. :meth:`append` buffers text and writes it out at most
    every ``flush_interval`` seconds of ``clock``; :meth:`finish` writes the rest with the
    finish reason and metrics. Also a context manager: leaving it by an exception finishes the
    reply as ``cancelled`` (for cancellation/Ctrl-C) or ``error``, and leaving it normally
    without :meth:`finish` as ``stop``."""

    def __init__(
        self,
        store: Store,
        reply_id: int,
        conversation_id: int,
        clock: Clock,
        flush_interval: float,
    ) -> None:
        self.id = reply_id
        self.conversation_id = conversation_id
        self._store = store
        self._clock = clock
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

        if self._store._transaction(run) == 0:
            self.deleted = True  # the stream goes on for the user; there is nowhere to save it
        self._saved.append(chunk)
        self._pending.clear()

    def finish(self, finish_reason: str, metrics: object = None) -> None:
        """Write the remaining text, the finish reason (stop|length|cancelled|error|
        interrupted) and the metrics (ReplyMetrics, a mapping, or StreamMetrics) at once."""
        if self.finished:
            raise HistoryError(f"reply {self.id} is already finished")
        self._end(_check_finish_reason(finish_reason), ReplyMetrics.from_any(metrics))

    def _end(self, finish_reason: str, metrics: ReplyMetrics | None) -> None:
        m = metrics or ReplyMetrics()
        chunk = "".join(self._pending)
        text = "".join(self._saved) + chunk
        now = self._store._now()

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
                    _dumps(m.extra) if m.extra else None,
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

        if not self.deleted and self._store._transaction(run) == 0:
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


# --- building value objects and export documents ---------------------------------------------


def _build_conversation(row: Sequence[Any], rows: Iterable[Sequence[Any]]) -> Conversation:
    tops: list[tuple[Any, ...]] = []
    replies: dict[int, list[Reply]] = {}
    for r in rows:
        (mid, cid, parent, role, content, engine, model, created, finish) = r[:9]
        if parent is None:
            tops.append((mid, cid, role, content, created, engine, model))
            continue
        ttft, tps, ptok, otok, extra = r[9:]
        metrics = ReplyMetrics(ttft, tps, ptok, otok, _loads_dict(extra))
        replies.setdefault(parent, []).append(
            Reply(mid, parent, engine, model, content, created, finish, metrics)
        )
    messages = tuple(
        StoredMessage(mid, cid, role, content, created, engine, model, tuple(replies.get(mid, ())))
        for mid, cid, role, content, created, engine, model in tops
    )
    cid, title, created, updated, system, params = row
    return Conversation(cid, title, created, updated, system, _loads_dict(params), messages)


def _parse_export(data: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """Check an export document's shape before anything is written."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise HistoryImportError(f"not a tedchat conversation export: {exc}") from exc
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        raise HistoryImportError(
            f"not a tedchat conversation export (expected format {EXPORT_FORMAT!r})"
        )
    version = data.get("version")
    if not isinstance(version, int) or version > EXPORT_VERSION or version < 1:
        raise HistoryImportError(
            f"conversation export version {version!r} is not supported by this tedchat"
            f" (it reads up to version {EXPORT_VERSION})"
        )
    conv, messages = data.get("conversation"), data.get("messages")
    if not isinstance(conv, Mapping) or not isinstance(messages, list):
        raise HistoryImportError("conversation export lacks 'conversation' or 'messages'")
    _check_fields("the conversation", conv, _CONVERSATION_FIELDS)
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping) or not isinstance(msg.get("content"), str):
            raise HistoryImportError(f"conversation export: message {i} has no text content")
        if msg.get("role") not in ("user", "system", "assistant"):
            raise HistoryImportError(f"conversation export: message {i} has an unknown role")
        _check_fields(f"message {i}", msg, _MESSAGE_FIELDS)
        for j, rep in enumerate(msg.get("replies") or ()):
            if not isinstance(rep, Mapping) or not isinstance(rep.get("content"), str):
                raise HistoryImportError(
                    f"conversation export: reply {j} of message {i} has no text content"
                )
            reason = rep.get("finish_reason")
            if reason is not None and reason not in FINISH_REASONS:
                raise HistoryImportError(
                    f"conversation export: reply {j} of message {i} has finish reason {reason!r}"
                )
            _check_fields(f"reply {j} of message {i}", rep, _REPLY_FIELDS)
            if isinstance(rep.get("metrics"), Mapping):
                metrics = rep["metrics"]
                _check_fields(f"the metrics of reply {j} of message {i}", metrics, _METRIC_FIELDS)
    return dict(data)


# What an export's optional fields may hold (None or absent is always fine); checked before
# anything is written, so a bad file is one error and no partial conversation.
_TEXT, _NUMBER, _COUNT, _TABLE, _LIST = "text", "a number", "a count", "a table", "a list"
_CONVERSATION_FIELDS = {
    "title": _TEXT,
    "system": _TEXT,
    "created": _NUMBER,
    "updated": _NUMBER,
    "params": _TABLE,
}
_MESSAGE_FIELDS = {"engine": _TEXT, "model": _TEXT, "created": _NUMBER, "replies": _LIST}
_REPLY_FIELDS = {"engine": _TEXT, "model": _TEXT, "created": _NUMBER, "metrics": _TABLE}
_METRIC_FIELDS = {
    "ttft_s": _NUMBER,
    "output_tokens_per_s": _NUMBER,
    "prompt_tokens": _COUNT,
    "output_tokens": _COUNT,
}


def _fits(value: Any, kind: str) -> bool:
    if kind == _TEXT:
        return isinstance(value, str)
    if kind == _TABLE:
        return isinstance(value, Mapping)
    if kind == _LIST:
        return isinstance(value, list)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == _COUNT:
        return 0 <= value < 2**63 and value == int(value)
    return math.isfinite(value) and abs(value) < 2**63


def _check_fields(where: str, obj: Mapping[str, Any], kinds: Mapping[str, str]) -> None:
    for key, kind in kinds.items():
        value = obj.get(key)
        if value is not None and not _fits(value, kind):
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise HistoryImportError(
                f"conversation export: {where} has {key} = {shown}, which is not {kind}"
            )


def _fmt_time(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _metrics_line(rep: Reply) -> str:
    m = rep.metrics
    parts = [rep.finish_reason or "still being written"]
    if m.ttft_s is not None:
        parts.append(f"TTFT {m.ttft_s * 1000:.0f} ms")
    if m.output_tokens_per_s is not None:
        parts.append(f"{m.output_tokens_per_s:.1f} tok/s")
    if m.output_tokens is not None:
        parts.append(f"{m.output_tokens} tokens")
    if m.prompt_tokens is not None:
        parts.append(f"{m.prompt_tokens} prompt tokens")
    return " · ".join(parts)
