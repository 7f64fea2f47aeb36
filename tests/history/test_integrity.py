"""A damaged history file raises one clear error and is left exactly as it was."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from tedchat.errors import HistoryCorruptError, HistoryError
from tedchat.history.integrity import fresh_path_for
from tedchat.history.store import Store
from tests.history.conftest import sha256


def assert_clear_corrupt_error(exc: HistoryCorruptError, path: Path) -> None:
    message = str(exc)
    assert "\n" not in message
    assert str(path) in message
    assert "--new-history" in message


def test_random_bytes_raise_and_leave_the_file_untouched(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(os.urandom(64 * 1024))
    before = sha256(db)
    with pytest.raises(HistoryCorruptError) as info:
        Store.open(db)
    assert_clear_corrupt_error(info.value, db)
    assert isinstance(info.value, HistoryError)
    assert sha256(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["history.db"]


def test_truncated_database_raises_and_is_left_untouched(db: Path) -> None:
    with Store.open(db) as store:
        cid = store.new_conversation()
        for i in range(300):
            store.add_user_message(cid, f"message {i} " * 40)
    data = db.read_bytes()
    assert data.startswith(b"SQLite format 3\x00") and len(data) > 64 * 1024
    db.write_bytes(data[: len(data) // 2])
    before = sha256(db)
    with pytest.raises(HistoryCorruptError) as info:
        Store.open(db)
    assert_clear_corrupt_error(info.value, db)
    assert sha256(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["history.db"]

    # --new-history: a new file beside it; the damaged one stays as it was.
    with Store.open(db, new_history=True) as fresh:
        assert fresh.path != db and fresh.path.parent == db.parent
        assert fresh.list_conversations() == []
    assert sha256(db) == before


def test_fresh_path_for_picks_an_unused_name(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    when = datetime(2026, 11, 26, 10, 5)
    first = fresh_path_for(path, when)
    assert first.name == "history-2026-11-26T1005.db"
    first.touch()
    second = fresh_path_for(path, when)
    assert second.name == "history-2026-11-26T1005-2.db"
    assert not second.exists() and not path.exists()
