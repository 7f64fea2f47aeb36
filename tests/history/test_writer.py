"""The reply writer: flushes paced by its clock, and no reply is ever left open."""

from __future__ import annotations

from pathlib import Path

import pytest

from tedchat.errors import HistoryError
from tedchat.history.store import Store
from tests.history.conftest import reply_row


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
