"""The history side of a turn (tedchat.session) on a real SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from tedchat.engine import GenerationParams
from tedchat.history.store import Store
from tedchat.metrics import StreamMeter
from tedchat.session import HistoryWriter, TurnHistory


class Named:
    name, model = "e", "m"


def content(path: Path, message_id: int) -> tuple[str, str | None]:
    """What another connection (another process, after a crash) reads."""
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT content, finish_reason FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
    return row[0], row[1]


async def test_streamed_text_is_written_on_a_timer_when_the_stream_pauses(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    writer = HistoryWriter(Store.open(path))
    try:
        turn = TurnHistory(writer, system="sys", params=GenerationParams(max_tokens=7))
        await turn.save_prompt("question", engine=Named())  # type: ignore[arg-type]
        assert turn.conversation_id is not None and turn.message_id is not None
        buffer = await turn.begin_reply(Named())  # type: ignore[arg-type]
        assert buffer is not None
        buffer.append("first ")
        buffer.append("words")
        assert content(path, buffer.id) == ("", None)  # buffered, not yet handed over
        # No more text arrives: the timer writes it anyway, without anyone calling flush.
        deadline = time.monotonic() + 10
        while content(path, buffer.id)[0] != "first words" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert content(path, buffer.id) == ("first words", None)
        assert buffer.reply.pending == ""  # the store's writer keeps no second buffer
        buffer.append(" and the rest")
        meter = StreamMeter()
        meter.start(0.0)
        meter.finish("stop", 1.0)
        buffer.finish("stop", meter.snapshot())
        await writer.idle()
        assert content(path, buffer.id) == ("first words and the rest", "stop")
        conv = writer.store.get_conversation(turn.conversation_id)
        assert conv.system == "sys" and conv.params["max_tokens"] == 7
        assert [m.content for m in conv.messages] == ["question"]
        assert conv.messages[0].engine == "e"
    finally:
        writer.close()


async def test_writes_run_off_the_event_loop_in_order(tmp_path: Path) -> None:
    writer = HistoryWriter(Store.open(tmp_path / "h.db"))
    threads: list[str] = []
    try:
        original = writer.store.add_user_message

        def spy(*args: object, **kwargs: object) -> int:
            threads.append(threading.current_thread().name)
            return original(*args, **kwargs)  # type: ignore[arg-type]

        writer.store.add_user_message = spy  # type: ignore[method-assign]
        first = TurnHistory(writer)
        await first.save_prompt("one")
        second = TurnHistory(writer, first.conversation_id)
        await second.save_prompt("two")
        assert threads and all(name.startswith("tedchat-history") for name in threads)
        assert threading.current_thread().name not in threads
        assert second.conversation_id == first.conversation_id
        assert first.message_id is not None and second.message_id is not None
        assert first.message_id < second.message_id
        # A regenerated answer: the prompt is stored already, nothing new is written.
        again = TurnHistory(writer, first.conversation_id, message_id=first.message_id)
        await again.save_prompt("one")
        assert again.message_id == first.message_id and len(threads) == 2
    finally:
        writer.close()


async def test_without_history_every_step_is_a_no_op() -> None:
    turn = TurnHistory(None)
    await turn.save_prompt("hello")
    assert turn.conversation_id is None and turn.message_id is None
    assert await turn.begin_reply(Named()) is None  # type: ignore[arg-type]


async def test_a_failed_write_is_reported_once_and_the_reply_goes_on(tmp_path: Path) -> None:
    from tedchat.errors import HistoryError
    from tedchat.session import ReplyBuffer

    errors: list[Exception] = []
    writer = HistoryWriter(Store.open(tmp_path / "h.db"), on_error=errors.append)
    attempts: list[str] = []

    class FullDisk:
        id = 1

        def append(self, text: str) -> None:
            attempts.append(text)
            raise HistoryError("disk full")

        def flush(self) -> None: ...

        def finish(self, finish_reason: str, metrics: object = None) -> None:
            attempts.append(finish_reason)

    try:
        buffer = ReplyBuffer(writer, FullDisk(), interval=0.01)  # type: ignore[arg-type]
        buffer.append("lost")
        deadline = time.monotonic() + 10
        while not errors and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        buffer.append(" and more")
        buffer.flush()
        buffer.finish("stop", StreamMeter().snapshot())
        await writer.idle()
        await asyncio.sleep(0.05)  # the report is handed to this loop
        assert [str(e) for e in errors] == ["disk full"]
        assert attempts == ["lost"]  # nothing more is tried for this reply
    finally:
        writer.close()
