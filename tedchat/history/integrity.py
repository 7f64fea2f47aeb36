"""Is an existing history file sound? Checked before anything writes to it.

Before anything writes to an existing file it is checked with ``PRAGMA quick_check`` on a
read-only connection (which also rejects a file without the ``SQLite format 3`` header; the
header is not read with plain file I/O, see :func:`check_existing_file`). A damaged or
unreadable file raises :class:`~tedchat.errors.HistoryCorruptError` and is left exactly as it
was: nothing is renamed, deleted or repaired. ``Store.open(path, new_history=True)``
(``--new-history``) opens a new file next to it whose name comes from :func:`fresh_path_for`.

Also here: how SQLite's errors are told apart (busy, corrupt) and how long a lock is waited
for, which the check and the store's transactions share.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import datetime
from pathlib import Path

from tedchat.errors import HistoryCorruptError

BUSY_TIMEOUT_MS = 5_000
"""How long SQLite itself waits for a lock before reporting SQLITE_BUSY (at most the store's
lock timeout)."""

BUSY_DEADLINE_S = 60.0
"""How long a transaction is retried on SQLITE_BUSY before giving up with HistoryBusyError, by
default (``[history] lock_timeout_s`` sets it: ``Store.open(..., lock_timeout_s=...)``)."""

NEW_HISTORY_HINT = "start a fresh history with --new-history"
"""What to do about a history file this tedchat cannot use (ends its error messages)."""


def waiting_for_lock(lock_timeout_s: float) -> str:
    """What a front end says while the history takes long to open or write: most likely
    another process holds its lock (a big file's check on opening takes time too)."""
    return (
        "waiting for the history file (busy, or locked by another process: "
        f"up to {lock_timeout_s:g} s, [history] lock_timeout_s)…"
    )


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds a lock; try again later."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (and extended codes)
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


def busy_timeout_ms(lock_timeout_s: float) -> int:
    """SQLite's own wait for a lock: it must not outlast the store's deadline for the whole
    transaction."""
    return max(0, min(BUSY_TIMEOUT_MS, int(lock_timeout_s * 1000)))


def is_full(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL: the disk is full, or the file reached its page limit."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == 13
    return "disk is full" in str(exc).lower()


def is_corrupt(exc: sqlite3.Error) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB: the file is damaged or not a database."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    msg = str(exc).lower()
    return "malformed" in msg or "not a database" in msg


def corrupt_error(path: Path, why: str) -> HistoryCorruptError:
    """The one-line error for a history file that cannot be used, with what to do."""
    why = " ".join(why.split())  # the message must stay one line
    return HistoryCorruptError(
        f"history file {path} cannot be used ({why}); it was left untouched: {NEW_HISTORY_HINT}",
        hint=f"--new-history starts a new file next to it, e.g. {fresh_path_for(path).name}",
    )


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


def check_existing_file(path: Path, lock_timeout_s: float = BUSY_DEADLINE_S) -> None:
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
        raise corrupt_error(path, exc.strerror or str(exc)) from exc
    if size == 0:
        return  # SQLite treats an empty file as a new database: nothing to lose
    if not os.access(path, os.R_OK):
        raise corrupt_error(path, "permission denied")
    # A read-only connection to a WAL file creates -wal/-shm beside it and cannot remove them.
    sides = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    absent = [p for p in sides if not p.exists()]
    try:
        _quick_check(path, lock_timeout_s)
    except HistoryCorruptError:
        # Tidy up only what this check itself created, and only while it holds no data.
        if sides[0] in absent and sides[0].exists() and sides[0].stat().st_size == 0:
            for p in absent:
                p.unlink(missing_ok=True)
        raise


def _quick_check(path: Path, lock_timeout_s: float) -> None:
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=busy_timeout_ms(lock_timeout_s) / 1000,
            )
            try:
                rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if is_busy(exc) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise corrupt_error(path, str(exc)) from exc
        except sqlite3.DatabaseError as exc:
            why = "not an SQLite database" if "not a database" in str(exc) else str(exc)
            raise corrupt_error(path, why) from exc
        break
    if rows != ["ok"]:
        raise corrupt_error(path, f"integrity check failed: {rows[0]}")
