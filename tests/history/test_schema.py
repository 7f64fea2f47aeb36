"""Schema versions: an old file is migrated on open, a newer one refused and left untouched."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tedchat.errors import HistorySchemaError
from tedchat.history.records import ReplyMetrics, StoredAttachment
from tedchat.history.schema import SCHEMA_VERSION, migrate
from tedchat.history.store import Store
from tedchat.history.tree import Tree, active_path
from tests.history.conftest import sha256


def build_v1(path: Path) -> None:
    """A history file as the v1 schema left it, built by running only the v1 migration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=1) == 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.execute(
        "INSERT INTO conversations(id, title, created, updated, system, params)"
        " VALUES (1, 'old', 100.0, 200.0, 'be brief', '{\"temperature\": 0.3}')"
    )
    conn.executemany(
        "INSERT INTO messages(id, conversation_id, parent_id, role, content, engine, model,"
        " created, finish_reason) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)",
        [
            (1, None, "user", "東京の天気は?", None, None, 110.0, None),
            (2, 1, "assistant", "東京は晴れです。", "wafer", "tiny", 111.0, "stop"),
            (3, 1, "assistant", "half an answ", "http", "gpt", 112.0, None),
        ],
    )
    conn.close()


def test_v1_database_is_migrated_on_open(db: Path) -> None:
    build_v1(db)
    with Store.open(db) as store:
        conv = store.get_conversation(1)
        assert (conv.title, conv.system, conv.params) == ("old", "be brief", {"temperature": 0.3})
        (msg,) = conv.messages
        assert [r.content for r in msg.replies] == ["東京は晴れです。", "half an answ"]
        # v1 kept no writer identity: an unfinished v1 reply can only have been interrupted.
        assert [r.finish_reason for r in msg.replies] == ["stop", "interrupted"]
        # The v2 search index was filled from the v1 rows.
        assert {h.message_id for h in store.search("東京")} == {1, 2}
        assert [h.message_id for h in store.search("answ")] == [3]
        # The v2 metrics columns work on the migrated file.
        writer = store.begin_reply(1, 1, "wafer", "tiny")
        writer.append("again")
        writer.finish("length", ReplyMetrics(ttft_s=0.5, output_tokens=7))
        reply = store.get_conversation(1).messages[0].replies[-1]
        assert (reply.finish_reason, reply.metrics.ttft_s, reply.metrics.output_tokens) == (
            "length",
            0.5,
            7,
        )
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_newer_schema_is_refused_and_left_untouched(db: Path) -> None:
    Store.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = sha256(db)
    with pytest.raises(HistorySchemaError, match="newer"):
        Store.open(db)
    assert sha256(db) == before


FIXTURE_V2 = Path(__file__).parent / "fixtures" / "history-v2.db"
ATTACHED = StoredAttachment("src/a.py", "text", "text/plain", b"print('a')\n")


def test_a_file_written_by_the_v2_code_migrates_with_nothing_lost(tmp_path: Path) -> None:
    """tests/history/fixtures/history-v2.db was written by tedchat at commit 7ebabaf (schema
    v2, before tool calls): two conversations, a regenerated sibling, compare panes, emulated
    metrics, Japanese text and an interrupted reply. Every later schema opens it."""
    db = tmp_path / "history.db"
    shutil.copy(FIXTURE_V2, db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        before = conn.execute(
            "SELECT id, conversation_id, parent_id, role, content, engine, model, created,"
            " finish_reason, ttft_s, output_tokens_per_s, prompt_tokens, output_tokens,"
            " extra_json FROM messages ORDER BY id"
        ).fetchall()
        conversations = conn.execute("SELECT * FROM conversations ORDER BY id").fetchall()
    assert len(before) == 9 and len(conversations) == 2
    with Store.open(db) as store:
        assert store.search("天気")[0].message_id == before[3][0]
        first = store.get_conversation(1)
        assert [len(m.replies) for m in first.messages] == [2, 1]
        assert all(r.tool_calls == () for m in first.messages for r in m.replies)
        compare = store.get_conversation(2)
        emulated = compare.messages[0].replies[0].metrics.extra["emulated"]
        assert emulated["output_tokens_per_s"] == 2100.0
        assert [r.finish_reason for r in compare.messages[0].replies] == [
            "stop",
            "stop",
            "interrupted",
        ]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        after = conn.execute(
            "SELECT id, conversation_id, parent_id, role, content, engine, model, created,"
            " finish_reason, ttft_s, output_tokens_per_s, prompt_tokens, output_tokens,"
            " extra_json FROM messages ORDER BY id"
        ).fetchall()
        assert after == before
        # The columns the fixture had are unchanged; v4 added active_id (None: the newest).
        rows = conn.execute("SELECT * FROM conversations ORDER BY id").fetchall()
        assert [r[: len(conversations[0])] for r in rows] == conversations
        assert [r[-1] for r in rows] == [None, None]
        calls = conn.execute("SELECT count(*) FROM messages WHERE tool_calls IS NOT NULL")
        assert calls.fetchone()[0] == 0
        # v4: the attachment tables exist, empty; every message reads back with none.
        for table in ("attachments", "message_attachments"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    with Store.open(db) as store:
        assert all(not m.attachments for c in (1, 2) for m in store.get_conversation(c).messages)
        # A migrated file takes attachments like a new one.
        mid = store.add_user_message(1, "and this file?", attachments=[ATTACHED])
        (message,) = [m for m in store.get_conversation(1).messages if m.id == mid]
        assert message.attachments == (ATTACHED,)


FIXTURE_V3 = Path(__file__).parent / "fixtures" / "history-v3.db"


def test_a_file_written_by_the_v3_code_migrates_with_nothing_lost(tmp_path: Path) -> None:
    """tests/history/fixtures/history-v3.db was written by tedchat's main at commit 5b53926
    (schema v3, before attachments): a reply with a tool call and its regenerated sibling,
    Japanese text, a reply cut by ``length`` and an interrupted one."""
    db = tmp_path / "history.db"
    shutil.copy(FIXTURE_V3, db)
    columns = (
        "id, conversation_id, parent_id, role, content, engine, model, created, finish_reason,"
        " ttft_s, output_tokens_per_s, prompt_tokens, output_tokens, extra_json, tool_calls"
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        before = conn.execute(f"SELECT {columns} FROM messages ORDER BY id").fetchall()
        conversations = conn.execute("SELECT * FROM conversations ORDER BY id").fetchall()
    assert len(before) == 7 and len(conversations) == 2
    with Store.open(db) as store:
        first = store.get_conversation(1)
        (call,) = first.messages[0].replies[0].tool_calls
        assert call["name"] == "get_time" and call["result"] == "2026-12-05T17:00:00+09:00"
        assert store.search("天気")[0].message_id == first.messages[1].id
        assert all(not m.attachments for m in first.messages)
        # v5: one line of prompts, each after the newest reply of the one before.
        assert first.messages[0].follows_id is None
        assert first.messages[1].follows_id == first.messages[0].replies[-1].id
        path = active_path(first)
        assert [s.reply.id if s.reply else None for s in path] == [
            m.replies[-1].id if m.replies else None for m in first.messages
        ]
        mid = store.add_user_message(1, "and this file?", attachments=[ATTACHED])
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        after = conn.execute(
            f"SELECT {columns} FROM messages WHERE id != ? ORDER BY id", (mid,)
        ).fetchall()
        assert after == before
        rows = conn.execute("SELECT * FROM conversations ORDER BY id").fetchall()
        assert [r[: len(conversations[0])] for r in rows[1:]] == conversations[1:]


def test_the_v2_file_becomes_one_branch_per_regenerated_reply_shown_as_before(
    tmp_path: Path,
) -> None:
    """v5 (the message tree): an old conversation is a line of prompts, each after the newest
    reply of the one before (the reply it showed); older sibling replies are branches of their
    own; the active path is what the old code showed and sent."""
    db = tmp_path / "history.db"
    shutil.copy(FIXTURE_V2, db)
    with Store.open(db) as store:
        first = store.get_conversation(1)
        one, two = first.messages
        assert one.follows_id is None and two.follows_id == one.replies[-1].id
        path = active_path(first)
        assert [(s.message.id, s.reply.id if s.reply else None) for s in path] == [
            (one.id, one.replies[-1].id),
            (two.id, two.replies[-1].id),
        ]
        assert [s.reply_branch for s in path] == [(2, 2), (1, 1)]
        # Branches: the first reply (a leaf), then the end of the line.
        assert Tree.of(first).leaves() == [one.replies[0].id, two.replies[-1].id]
        compare = store.get_conversation(2)
        assert len(Tree.of(compare).leaves()) == len(compare.messages[0].replies) == 3
        # A new prompt continues the active path.
        new = store.add_user_message(1, "続き")
        assert store.get_conversation(1).messages[-1].follows_id == two.replies[-1].id
        assert active_path(store.get_conversation(1))[-1].message.id == new


FIXTURE_V5 = Path(__file__).parent / "fixtures" / "history-v5.db"


def test_a_file_written_by_the_v5_code_migrates_with_nothing_lost(tmp_path: Path) -> None:
    """tests/history/fixtures/history-v5.db was written by tedchat's main at commit 78624ee
    (schema v5, the message tree, before arena votes) by ``make_history_v5.py`` beside it: an
    edited prompt (a branch) whose other branch was stepped back to, a regenerated sibling, an
    attachment, Japanese text, an interrupted reply and compare panes with emulated figures.
    v6 adds the vote tables, empty; everything else reads back as before, and the migrated file
    takes votes."""
    from tedchat.history.votes import Vote, VotePane

    db = tmp_path / "history.db"
    shutil.copy(FIXTURE_V5, db)
    tables = ("conversations", "messages", "attachments", "message_attachments")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
        fts_before = conn.execute("SELECT rowid, body FROM message_fts ORDER BY rowid").fetchall()
    assert len(before["messages"]) == 10 and len(before["conversations"]) == 2
    with Store.open(db) as store:
        first = store.get_conversation(1)
        path = active_path(first)
        # The active path the v5 code left: the first prompt's newer reply, then "明日は?".
        assert [s.message.content for s in path] == ["東京の天気は?", "明日は?"]
        assert path[0].reply is not None and path[0].reply.content == "曇りの予報です。"
        assert path[1].prompt_branch == (1, 2)
        assert first.messages[0].attachments[0].name == "notes/天気.txt"
        assert len(Tree.of(first).leaves()) == 3
        race = store.get_conversation(2)
        extra = race.messages[0].replies[0].metrics.extra
        assert extra["emulated"]["output_tokens_per_s"] == 2100.0
        assert store.search("天気")[0].message_id == 1
        assert store.votes() == []
        pane = VotePane("A", "wafer-70b", "smollm2-as-70b", reply_id=race.messages[0].replies[0].id)
        other = VotePane("B", "gpu-70b", "smollm2", reply_id=race.messages[0].replies[1].id)
        vid = store.add_vote(
            Vote("Explain wafer-scale inference in one line.", "win", "A", (pane, other))
        )
        (vote,) = store.votes()
        assert vote.id == vid and vote.conversation_id is None  # not given: none
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        after = {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
        assert after == before
        fts_after = conn.execute("SELECT rowid, body FROM message_fts ORDER BY rowid").fetchall()
        assert fts_after == fts_before
