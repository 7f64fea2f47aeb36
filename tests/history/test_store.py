"""The history store on real SQLite files: crash safety, two writers, migration, search,
damaged files, export/import."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tedchat.engine import Done, TextDelta, Usage
from tedchat.errors import HistoryError
from tedchat.history.store import (
    SCHEMA_VERSION,
    ConversationNotFoundError,
    HistoryCorruptError,
    HistoryImportError,
    HistorySchemaError,
    ReplyMetrics,
    Store,
    fresh_path_for,
    fts_query,
    index_text,
    migrate,
)
from tedchat.metrics import StreamMeter

REPO = Path(__file__).resolve().parent.parent


def run_script(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``code`` in a separate Python process (the way a second tedchat would run)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """The next stdout line of ``proc``; fails the test (with its stderr) if it exits first."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        pytest.fail(f"child exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    return line.strip()


def reply_row(path: Path, reply_id: int) -> tuple[str | None, str]:
    """(finish_reason, content) of a reply, read over a plain connection."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT finish_reason, content FROM messages WHERE id = ?", (reply_id,)
        ).fetchone()
    finally:
        conn.close()
    return row[0], row[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.db"


# --- 1. a writer killed mid-reply ------------------------------------------------------------

SLOW_WRITER = """
    import sys, time
    from tedchat.history.store import Store

    store = Store.open(sys.argv[1])
    cid = store.new_conversation(title="kill test")
    uid = store.add_user_message(cid, "Tell me about 東京, slowly.")
    writer = store.begin_reply(cid, uid, "wafer", "tiny", flush_interval=0.05)
    i = 0
    while True:
        writer.append(f"chunk{i} ")
        i += 1
        if i == 20:
            writer.flush()
            print(cid, uid, writer.id, flush=True)  # 20 chunks are on disk now
        time.sleep(0.01)
"""


def test_killed_writer_leaves_user_message_and_partial_reply_marked_interrupted(db: Path) -> None:
    proc = run_script(SLOW_WRITER, str(db))
    try:
        cid, uid, rid = map(int, read_line(proc).split())
        # While the writer lives, opening the store must leave its reply alone.
        with Store.open(db) as store:
            (msg,) = store.get_conversation(cid).messages
            assert msg.replies[0].finish_reason is None
        time.sleep(0.2)  # let it write more, some of it still in its buffer
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with Store.open(db) as store:
        conv = store.get_conversation(cid)
        (msg,) = conv.messages
        assert msg.id == uid and msg.content == "Tell me about 東京, slowly."
        (reply,) = msg.replies
        assert reply.id == rid
        assert reply.finish_reason == "interrupted"
        expected = "".join(f"chunk{i} " for i in range(20))
        assert reply.content.startswith(expected)
        # Everything saved is a whole prefix of what was streamed, chunk by chunk.
        n = len(reply.content.split())
        assert reply.content == "".join(f"chunk{i} " for i in range(n))
        # An interrupted reply is searchable like any finished one.
        assert [h.message_id for h in store.search("chunk3")] == [rid]
    with Store.open(db) as store:  # marking happens once; nothing else changes it later
        assert store.get_conversation(cid).messages[0].replies[0].content == reply.content


# --- 2. two processes writing at once -------------------------------------------------------

BUSY_WRITER = """
    import os, sys, time
    from tedchat.history.store import Store

    path, name, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = Store.open(path)
    cid = store.new_conversation(title=name)
    uid = store.add_user_message(cid, f"{name} holds this reply open")
    held = store.begin_reply(cid, uid, name, "model")
    held.append("partial ")
    held.flush()
    print(held.id, flush=True)
    while not os.path.exists(go):
        time.sleep(0.01)

    def own_reply_unfinished():
        row = store._conn.execute(
            "SELECT finish_reason FROM messages WHERE id = ?", (held.id,)
        ).fetchone()
        return row[0] is None

    for i in range(n):
        uid = store.add_user_message(cid, f"{name} question {i}")
        writer = store.begin_reply(cid, uid, name, "model", flush_interval=0)  # flush each append
        for k in range(3):
            writer.append(f"{name}-{i}-{k} ")
        writer.finish("stop", {"output_tokens": 3, "ttft_s": 0.01})
        if i % 10 == 0:
            # A second store in this process runs the interrupted sweep while the other
            # process holds its reply open.
            Store.open(path).close()
        if not own_reply_unfinished():
            print("my live reply was marked finished", file=sys.stderr)
            sys.exit(3)
    held.append("done")
    held.finish("stop")
    print("ok", flush=True)
"""


def test_two_processes_writing_at_once_lose_nothing(db: Path, tmp_path: Path) -> None:
    n = 60
    go = tmp_path / "go"
    a = run_script(BUSY_WRITER, str(db), "alpha", str(n), str(go))
    held_a = int(read_line(a))
    b = run_script(BUSY_WRITER, str(db), "beta", str(n), str(go))
    try:
        held_b = int(read_line(b))
        # B has opened the store (and run its sweep) while A's reply was open: A's is untouched.
        assert reply_row(db, held_a) == (None, "partial ")
        go.touch()
        out_a, err_a = a.communicate(timeout=300)
        out_b, err_b = b.communicate(timeout=300)
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()
    for out, err, proc in ((out_a, err_a, a), (out_b, err_b, b)):
        assert "locked" not in err and "busy" not in err.lower(), err
        assert proc.returncode == 0, err
        assert out.strip() == "ok"

    with Store.open(db) as store:
        summaries = {s.title: s for s in store.list_conversations()}
        assert set(summaries) == {"alpha", "beta"}
        for name, held in (("alpha", held_a), ("beta", held_b)):
            conv = store.get_conversation(summaries[name].id)
            assert len(conv.messages) == n + 1
            assert summaries[name].message_count == 2 * (n + 1)
            first = conv.messages[0]
            assert first.replies[0].id == held
            assert first.replies[0].content == "partial done"
            assert first.replies[0].finish_reason == "stop"
            for i, msg in enumerate(conv.messages[1:]):
                assert msg.content == f"{name} question {i}"
                (reply,) = msg.replies
                assert reply.content == "".join(f"{name}-{i}-{k} " for k in range(3))
                assert reply.finish_reason == "stop"
                assert reply.metrics.output_tokens == 3


# --- 3. migration ---------------------------------------------------------------------------


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
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
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


# --- 4. search ------------------------------------------------------------------------------


@pytest.fixture
def searchable(db: Path) -> Iterator[Store]:
    store = Store.open(db)
    cid = store.new_conversation(title="search")
    store.add_user_message(cid, "昨日は東京タワーに行きました。夜景がきれいでした。")
    uid = store.add_user_message(cid, "最新のエレクトロンデバイスの技術について教えてください。")
    with store.begin_reply(cid, uid, "wafer", "tiny") as w:
        w.append("The quick brown fox measured the latency of the wafer.")
    store.add_user_message(cid, "東。京は別々の文です。")  # 東 and 京 split by punctuation
    store.add_user_message(cid, "ｴﾚｸﾄﾛﾆｸｽ is half-width katakana")
    yield store
    store.close()


def test_search_finds_two_character_japanese_words(searchable: Store) -> None:
    hits = searchable.search("東京")
    assert len(hits) == 1
    hit = hits[0]
    assert hit.role == "user" and hit.conversation_title == "search"
    assert hit.snippet.startswith("昨日は東京タワー")
    assert hit.snippet[hit.match_start : hit.match_end] == "東京"
    assert searchable.search("夜景")  # another 2-character word, mid-sentence
    assert searchable.search("京都") == []  # bigrams are not a bag of characters


def test_search_finds_katakana_and_english(searchable: Store) -> None:
    (hit,) = searchable.search("エレクトロン")
    assert "エレクトロンデバイス" in hit.snippet
    (hit,) = searchable.search("latency")
    assert hit.role == "assistant"
    assert hit.snippet[hit.match_start : hit.match_end] == "latency"
    assert [h.message_id for h in searchable.search("LATENCY")] == [hit.message_id]
    assert searchable.search("laten") == []  # whole words ...
    assert len(searchable.search("laten*")) == 1  # ... unless asked for a prefix
    assert len(searchable.search("エレクトロ")) == 2  # half-width text is found too (NFKC)
    assert len(searchable.search("東")) == 2  # one kanji: both the word and the lone one
    assert searchable.search("東京 latency") == []  # all terms must match
    assert searchable.search('"*) OR (') == []  # syntax cannot leak into FTS5


def test_search_uses_the_fts_index(searchable: Store) -> None:
    for query in ("東京", "エレクトロン", "latency"):
        plan = " | ".join(searchable.explain_search(query))
        assert "VIRTUAL TABLE INDEX" in plan, plan
        assert "SCAN m " not in plan and "SCAN messages" not in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # newest-first comes from the index order


def test_streaming_reply_is_indexed_when_finished(db: Path) -> None:
    with Store.open(db) as store:
        cid = store.new_conversation()
        uid = store.add_user_message(cid, "question")
        writer = store.begin_reply(cid, uid, "e", "m", flush_interval=0)
        writer.append("zebra crossing")
        assert store.search("zebra") == []
        writer.finish("stop")
        assert [h.message_id for h in store.search("zebra")] == [writer.id]
        store.delete(cid)
        assert store.search("zebra") == []


def test_index_text_and_query_shapes() -> None:
    assert index_text("東京タワー GPU") == "東京 京タ タワ ワー ー gpu"
    assert fts_query("東京") == '"東京"'
    assert fts_query("エレクトロン") == '"エレ レク クト トロ ロン"'
    assert fts_query("東") == '"東"*'
    assert fts_query("Latency 東京") == '"latency" AND "東京"'
    assert fts_query(" ?! ") is None


# --- 5. damaged files ----------------------------------------------------------------------


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


def without_ids(doc: dict) -> str:
    """An export document with its ids and export time blanked, for comparing two exports."""
    blanked = {
        **doc,
        "exported": 0,
        "conversation": {**doc["conversation"], "id": 0},
        "messages": [
            {**m, "id": 0, "replies": [{**r, "id": 0} for r in m["replies"]]}
            for m in doc["messages"]
        ],
    }
    return json.dumps(blanked, sort_keys=True)


# --- 6. export and import -------------------------------------------------------------------


def test_export_markdown_json_and_import_round_trip(db: Path) -> None:
    with Store.open(db) as store:
        cid = store.new_conversation(
            title="Scientists", system="Answer briefly.", params={"temperature": 0.2, "seed": 7}
        )
        uid = store.add_user_message(cid, "Give me 10 great computer scientists.")
        meter = StreamMeter()
        meter.start(0.0)
        meter.observe(TextDelta("Turing, "), 0.05)
        meter.observe(TextDelta("Hopper"), 0.10)
        meter.observe(Usage(prompt_tokens=12, output_tokens=3), 0.11)
        meter.observe(Done("stop"), 0.11)
        with store.begin_reply(cid, uid, "wafer", "smollm2") as w:
            w.append("Turing, ")
            w.append("Hopper")
            w.finish("stop", meter.snapshot())
        with store.begin_reply(cid, uid, "http", "gpu-model") as w:
            w.append("Knuth")
            w.finish("cancelled", {"ttft_s": 0.9, "timings": {"prompt_eval_s": 0.4}})
        uid2 = store.add_user_message(cid, "東京で一番は?")
        with store.begin_reply(cid, uid2, "wafer", "smollm2") as w:
            w.append("答え")

        md = store.export_markdown(cid)
        assert md.startswith("# Scientists\n")
        for text in ("Answer briefly.", "Give me 10 great", "Turing, Hopper", "Knuth", "東京で"):
            assert text in md
        assert "wafer · smollm2 (1 of 2)" in md and "cancelled" in md and "TTFT 50 ms" in md

        exported = store.export_json(cid)
        doc = json.loads(exported)
        assert doc["format"] == "tedchat-conversation" and doc["version"] == 1
        first_reply = doc["messages"][0]["replies"][0]["metrics"]
        assert first_reply["prompt_tokens"] == 12 and first_reply["output_tokens"] == 3

        new_id = store.import_json(exported)
        assert new_id != cid
        old, new = store.get_conversation(cid), store.get_conversation(new_id)
        assert (new.title, new.system, new.params, new.created, new.updated) == (
            old.title,
            old.system,
            old.params,
            old.created,
            old.updated,
        )
        assert len(new.messages) == len(old.messages) == 2
        for a, b in zip(old.messages, new.messages, strict=True):
            assert b.id != a.id
            assert (b.role, b.content, b.created) == (a.role, a.content, a.created)
            assert len(a.replies) == len(b.replies)
            for ra, rb in zip(a.replies, b.replies, strict=True):
                assert rb.id != ra.id and rb.parent_id == b.id
                assert (rb.engine, rb.model, rb.content, rb.created, rb.finish_reason) == (
                    ra.engine,
                    ra.model,
                    ra.content,
                    ra.created,
                    ra.finish_reason,
                )
                assert rb.metrics == ra.metrics
        # A re-import exports to the same document apart from ids and export time.
        again = json.loads(store.export_json(new_id))
        assert without_ids(again) == without_ids(doc)
        assert {h.conversation_id for h in store.search("東京")} == {cid, new_id}


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        json.dumps({"format": "something-else", "version": 1}),
        json.dumps({"format": "tedchat-conversation", "version": 99}),
        json.dumps(
            {
                "format": "tedchat-conversation",
                "version": 1,
                "conversation": {},
                "messages": [{"role": "user", "content": "x", "replies": [{"content": 1}]}],
            }
        ),
    ],
)
def test_bad_imports_raise_and_write_nothing(db: Path, data: str) -> None:
    with Store.open(db) as store:
        with pytest.raises(HistoryImportError):
            store.import_json(data)
        assert store.list_conversations() == []


# --- the rest of the API --------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_reply_writer_flushes_at_most_every_250_ms(db: Path) -> None:
    clock = FakeClock()
    with Store.open(db, clock=clock) as store:
        cid = store.new_conversation()
        uid = store.add_user_message(cid, "hi")
        writer = store.begin_reply(cid, uid, "e", "m")
        clock.t = 0.1
        writer.append("a")
        clock.t = 0.2
        writer.append("b")
        assert reply_row(db, writer.id) == (None, "")  # not yet: under 250 ms
        assert writer.pending == "ab"
        clock.t = 0.25
        writer.append("c")
        assert reply_row(db, writer.id) == (None, "abc")
        clock.t = 0.4
        writer.append("d")
        assert reply_row(db, writer.id) == (None, "abc")
        writer.finish("stop")
        assert reply_row(db, writer.id) == ("stop", "abcd")
        with pytest.raises(HistoryError):
            writer.append("late")
        with pytest.raises(ValueError):
            store.begin_reply(cid, uid, "e", "m").finish("done")


def test_writer_context_and_close_never_leave_a_reply_open(db: Path) -> None:
    with Store.open(db) as store:
        cid = store.new_conversation()
        uid = store.add_user_message(cid, "hi")
        with pytest.raises(RuntimeError), store.begin_reply(cid, uid, "e", "m") as w1:
            w1.append("partial")
            raise RuntimeError("engine broke")
        w2 = store.begin_reply(cid, uid, "e", "m")
        w2.append("cut short")
    with Store.open(db) as store:
        replies = store.get_conversation(cid).messages[0].replies
        assert [(r.content, r.finish_reason) for r in replies] == [
            ("partial", "error"),
            ("cut short", "interrupted"),
        ]


def test_list_rename_delete_last(db: Path) -> None:
    times = iter(float(t) for t in range(1000, 2000))
    with Store.open(db, wall_clock=lambda: next(times)) as store:
        assert store.last_conversation_id() is None
        a = store.new_conversation()
        b = store.new_conversation(title="second")
        store.add_user_message(a, "  \nFirst line of a\nmore")
        assert store.last_conversation_id() == a
        listed = store.list_conversations()
        assert [(c.id, c.title, c.message_count) for c in listed] == [
            (a, "First line of a", 1),
            (b, "second", 0),
        ]
        assert [c.id for c in store.list_conversations(limit=1, offset=1)] == [b]
        store.rename(a, "renamed")
        assert store.get_conversation(a).title == "renamed"
        store.set_settings(a, "be brief", {"max_tokens": 64})
        assert (store.get_conversation(a).system, store.get_conversation(a).params) == (
            "be brief",
            {"max_tokens": 64},
        )
        store.delete(a)
        assert [c.id for c in store.list_conversations()] == [b]
        for call in (
            store.get_conversation,
            store.delete,
            lambda i: store.rename(i, "x"),
            lambda i: store.set_settings(i, None),
        ):
            with pytest.raises(ConversationNotFoundError):
                call(a)
        with pytest.raises(ConversationNotFoundError):
            store.add_user_message(a, "lost?")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_reused_pid_is_not_taken_for_the_writer(db: Path) -> None:
    """A reply whose pid is alive but belongs to a process started at another time is dead."""
    with Store.open(db) as store:
        cid = store.new_conversation()
        uid = store.add_user_message(cid, "hi")
        live = store.begin_reply(cid, uid, "e", "m")
        reused = store.begin_reply(cid, uid, "e", "m")
        store._conn.execute(
            "UPDATE messages SET writer_start = 'another-boot:1' WHERE id = ?", (reused.id,)
        )
        assert store.mark_interrupted() == 1
        assert reply_row(db, reused.id)[0] == "interrupted"
        assert reply_row(db, live.id)[0] is None
        live.finish("stop")


def test_a_reply_streaming_into_a_deleted_conversation_lands_nowhere(db: Path) -> None:
    with Store.open(db) as store:
        cid = store.new_conversation()
        uid = store.add_user_message(cid, "question")
        writer = store.begin_reply(cid, uid, "e", "m", flush_interval=0)
        writer.append("first ")
        store.delete(cid)  # e.g. from the history screen, while the answer streams
        # New rows must not take the deleted ids, or the writer would append to them.
        cid2 = store.new_conversation()
        uid2 = store.add_user_message(cid2, "another question")
        other = store.begin_reply(cid2, uid2, "e", "m")
        writer.append("second")
        writer.finish("stop")
        assert writer.deleted
        other.finish("stop")
        (msg,) = store.get_conversation(cid2).messages
        assert (msg.content, msg.replies[0].content) == ("another question", "")
        assert store.search("second") == []
