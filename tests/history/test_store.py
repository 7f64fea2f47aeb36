"""The history store on real SQLite files: two processes writing at once, and the
conversation API (list, rename, settings, delete)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tedchat.errors import ConversationNotFoundError
from tedchat.history.store import Store
from tests.history.conftest import read_line, reply_row, run_script

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


# --- the rest of the API --------------------------------------------------------------------


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
