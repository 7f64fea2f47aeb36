"""The history when the disk fills up or another process keeps the file locked: one clear line,
what was saved stays intact, the text being written is kept, and ``ask`` still answers.

A full disk is SQLite's SQLITE_FULL, made here with ``PRAGMA max_page_count`` on the store's
own connection (the file may not grow by another page); a lock is another process holding a
``BEGIN IMMEDIATE`` transaction open.
"""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tedchat.config import load_settings
from tedchat.errors import HistoryBusyError, HistoryError
from tedchat.history.files import open_history
from tedchat.history.records import ReplyMetrics
from tedchat.history.store import Store

LOCK_TIMEOUT_S = 2.0


def limit_growth(store: Store) -> None:
    """Test hook: the store's file may not grow past the pages it has now (SQLITE_FULL next)."""
    conn = store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def rows(path: Path) -> list[tuple[Any, ...]]:
    """Every message as (role, content, finish_reason), read with plain sqlite3."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT role, content, finish_reason FROM messages ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def saved_exchange(store: Store, question: str, answer: str) -> None:
    conv = store.new_conversation()
    user = store.add_user_message(conv, question)
    with store.begin_reply(conv, user, "e", "m") as reply:
        reply.append(answer)
        reply.finish("stop", ReplyMetrics(output_tokens=3))


class LockHolder:
    """Another process holding the history's write lock until :meth:`release`."""

    CODE = """
        import sqlite3, sys
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        sys.stdin.read()  # until the test closes our stdin
        conn.execute("ROLLBACK")
    """

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(self.CODE), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "locked", self.proc.stderr.read() if self.proc.stderr else ""

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LockHolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "history.db"


# --- a full disk -----------------------------------------------------------------------------


def test_a_full_history_says_so_keeps_the_text_and_what_was_saved(db: Path) -> None:
    with Store.open(db) as store:
        saved_exchange(store, "before", "an answer saved before the disk filled")
        conv = store.new_conversation()
        user = store.add_user_message(conv, "the question")
        reply = store.begin_reply(conv, user, "e", "m", flush_interval=0.0)
        reply.append("first part, saved. ")
        limit_growth(store)
        big = "x" * 200_000  # needs new pages: the write fails
        with pytest.raises(HistoryError) as caught:
            reply.append(big)
        assert caught.value.message == f"history file {db} is full: this write was not saved"
        assert "free disk space" in (caught.value.hint or "")
        assert reply.text == "first part, saved. " + big  # still in memory, nothing dropped
    # close() tried to finish the reply as interrupted, could not, and still closed.
    assert rows(db) == [
        ("user", "before", None),
        ("assistant", "an answer saved before the disk filled", "stop"),
        ("user", "the question", None),
        ("assistant", "first part, saved. ", None),
    ]


def ask_config(home: Path) -> None:
    from tests.tui.conftest import BASE_CONFIG

    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(BASE_CONFIG, encoding="utf-8")


def test_ask_with_a_full_history_still_prints_the_answer(
    tedchat_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tedchat.cli import main

    ask_config(tedchat_home)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # nothing piped in
    assert main(["ask", "--engine", "fast", "saved before"]) == 0
    capsys.readouterr()
    add_user_message = Store.add_user_message

    def full_from_now(self: Store, *args: Any, **kwargs: Any) -> int:
        limit_growth(self)
        return add_user_message(self, *args, **kwargs)

    monkeypatch.setattr(Store, "add_user_message", full_from_now)
    question = "a long question " * 2_000  # overflows into new pages: SQLITE_FULL
    assert main(["ask", "--engine", "fast", question]) == 0
    out, err = capsys.readouterr()
    assert "The **answer** is 42." in out and out.rstrip().endswith("Done.")
    problems = [line for line in err.splitlines() if line.startswith(("warning:", "error:"))]
    assert len(problems) == 1, err
    assert problems[0].startswith("warning: history not saved: history file ")
    assert problems[0].endswith("is full: this write was not saved")
    (path,) = list(tedchat_home.rglob("history.db"))
    saved = rows(path)
    assert saved[:2] == [
        ("user", "saved before", None),
        (
            "assistant",
            "The **answer** is 42.\n\n- one\n- two\n\n```python\nprint('hi')\n```\n\nDone.",
            "stop",
        ),
    ]
    assert len(saved) == 2  # the question that did not fit left no half row


# --- a lock held by another process ----------------------------------------------------------


def test_lock_timeout_comes_from_the_config(tedchat_home: Path) -> None:
    config = tedchat_home / "config.toml"
    config.write_text(f"[history]\nlock_timeout_s = {LOCK_TIMEOUT_S}\n", encoding="utf-8")
    settings = load_settings(config)
    assert settings.history.lock_timeout_s == LOCK_TIMEOUT_S
    with open_history(settings) as store:
        assert store.lock_timeout_s == LOCK_TIMEOUT_S
    assert load_settings().history.lock_timeout_s == 60.0  # the default


def test_a_lock_held_past_lock_timeout_gives_one_line_and_keeps_everything(db: Path) -> None:
    with Store.open(db, lock_timeout_s=LOCK_TIMEOUT_S) as store:
        saved_exchange(store, "before", "saved before the lock")
        conv = store.new_conversation()
        user = store.add_user_message(conv, "the question")
        reply = store.begin_reply(conv, user, "e", "m", flush_interval=0.0)
        reply.append("saved part. ")
        with LockHolder(db):
            t0 = time.monotonic()
            with pytest.raises(HistoryBusyError) as caught:
                reply.append("written while locked.")
            waited = time.monotonic() - t0
        assert caught.value.message == (
            f"history file {db} stayed locked by another process for 2 s ([history] lock_timeout_s)"
        )
        # It waited for the setting, not for the 60 s default (generous bounds: shared CI).
        assert LOCK_TIMEOUT_S * 0.9 <= waited < 30, waited
        assert reply.text == "saved part. written while locked."
        assert rows(db)[-1] == ("assistant", "saved part. ", None)
        # Once the lock is gone the writer carries on with the text it kept.
        reply.finish("stop")
    assert rows(db) == [
        ("user", "before", None),
        ("assistant", "saved before the lock", "stop"),
        ("user", "the question", None),
        ("assistant", "saved part. written while locked.", "stop"),
    ]


def test_close_while_locked_still_closes(db: Path) -> None:
    store = Store.open(db, lock_timeout_s=0.5)
    conv = store.new_conversation()
    user = store.add_user_message(conv, "q")
    reply = store.begin_reply(conv, user, "e", "m")
    reply.append("unsaved")
    with LockHolder(db):
        store.close()  # cannot mark the reply; must not raise or leave the file open
    # The row keeps its writer's pid: once this process is gone, an open marks it interrupted.
    assert rows(db) == [("user", "q", None), ("assistant", "", None)]
    with pytest.raises(sqlite3.ProgrammingError):  # the connection really is closed
        store._conn.execute("SELECT 1")
