"""Replies whose writing process died are marked interrupted; live ones are left alone."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tedchat.history.store import Store
from tests.history.conftest import read_line, reply_row, run_script

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
