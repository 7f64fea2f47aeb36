"""tedchat.tui.terminal_watch in the app: what a lost terminal does to the answer streaming and
to the history, and how a hung-up tty is noticed without any signal.

(The real thing, tmux sessions killed under tedchat and under make, is test_hangup.py.)
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

from tedchat.tui.terminal_watch import HANGUP_STATUS, TerminalWatch, terminal_alive
from tedchat.tui.widgets.messages import ReplyView

from .conftest import send, wait_for

SIZE = (100, 32)


def replies_in(path: Path) -> list[tuple[str, str | None]]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT content, finish_reason FROM messages WHERE role = 'assistant'"
        ).fetchall()
    finally:
        conn.close()


async def streaming_midway(pilot: Any) -> ReplyView:
    await send(pilot, "many words please")
    await wait_for(
        pilot,
        lambda: any(r.text.count("word") >= 10 for r in pilot.app.screen.query(ReplyView)),
    )
    return pilot.app.screen.query_one(ReplyView)


def assert_partial_and_interrupted(path: Path) -> None:
    [(text, finish)] = replies_in(path)
    assert finish == "interrupted"
    assert 10 <= text.count("word") < 400 and set(text.split()) == {"word"}


async def test_sighup_with_a_live_terminal_saves_the_reply_then_exits(make_app) -> None:
    app = make_app(engine="slow")
    async with app.run_test(size=SIZE) as pilot:
        await streaming_midway(pilot)
        path = (await app.history()).path
        app.terminal.lost("hangup signal (SIGHUP)")  # what the SIGHUP handler calls
        await wait_for(pilot, lambda: app.return_value is not None)
    assert app.return_value == HANGUP_STATUS
    # Saved before the app went on to exit (tedchat, not a later open, wrote interrupted).
    assert_partial_and_interrupted(path)


async def test_a_dead_terminal_saves_the_reply_closes_history_and_ends_the_process(
    make_app,
) -> None:
    ended: list[int] = []
    app = make_app(engine="slow")
    app.terminal = TerminalWatch(app, exit_process=ended.append)
    read_end, write_end = os.pipe()  # not a tty: what a hung-up terminal looks like
    try:
        async with app.run_test(size=SIZE) as pilot:
            await streaming_midway(pilot)
            path = (await app.history()).path
            app.terminal.fds = [read_end]
            app.terminal.lost("the terminal closed")
            await wait_for(pilot, lambda: ended == [HANGUP_STATUS])
            assert app._store is None  # closed: nothing is left to write
            assert_partial_and_interrupted(path)
            assert app.return_value is None  # no Textual shutdown: no terminal to restore
            app.exit()
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_esc_still_means_cancelled(make_app) -> None:
    app = make_app(engine="slow")
    async with app.run_test(size=SIZE) as pilot:
        await streaming_midway(pilot)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.screen.busy)
        await app.history_idle()
        path = (await app.history()).path
        [(_text, finish)] = replies_in(path)
        assert finish == "cancelled"


class FakeApp:
    """Just what the watch calls, recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.workers = [self]

    def cancel(self) -> None:
        self.calls.append("cancel")

    async def wait(self) -> None:
        self.calls.append("waited")

    async def history_idle(self) -> None:
        self.calls.append("history idle")

    async def close_resources(self) -> None:
        self.calls.append("closed")

    def exit(self, result: Any = None) -> None:
        self.calls.append(f"exit {result}")


async def test_a_hung_up_tty_is_noticed_without_a_signal() -> None:
    master, slave = os.openpty()
    stderr = os.dup(slave)  # stands for the UI's fd 2
    ended: list[int] = []
    app = FakeApp()
    watch = TerminalWatch(app, exit_process=ended.append, grace_s=0.5, poll_s=0.02)
    try:
        watch.start([slave, stderr], sighup=False)
        # llama-cpp-python points fd 2 at /dev/null while it loads a model: not a lost terminal.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stderr)
        os.close(devnull)
        await asyncio.sleep(0.3)
        assert watch.reason is None and ended == []
        os.close(master)  # the terminal goes away: the kernel hangs up the tty
        master = -1
        for _ in range(200):
            if ended:
                break
            await asyncio.sleep(0.02)
        assert not terminal_alive(watch.fds)
        assert watch.reason == "the terminal closed"
        assert app.calls == ["cancel", "waited", "history idle", "closed"]
        assert ended and ended[0] == HANGUP_STATUS
    finally:
        watch._stop.set()
        for fd in [master, slave, stderr, *watch.fds]:
            if fd >= 0:
                os.close(fd)


async def test_stop_ends_the_watch_and_closes_its_descriptors() -> None:
    master, slave = os.openpty()
    watch = TerminalWatch(FakeApp(), exit_process=lambda _: None, poll_s=0.02)
    try:
        watch.start([slave], sighup=False)
        [own] = watch.fds
        assert own != slave and os.isatty(own)
        watch.stop()
        assert watch._thread is not None and not watch._thread.is_alive()
        assert not terminal_alive([own])  # closed
    finally:
        os.close(master)
        os.close(slave)


async def test_a_lost_terminal_interrupts_every_compare_pane_still_streaming(make_app) -> None:
    from tedchat.tui.screens.compare import CompareScreen

    app = make_app(compare=["fast", "slow"])
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await send(pilot, "race")
        await wait_for(
            pilot,
            lambda: (
                [r.text.count("word") >= 10 for r in app.screen.query(ReplyView)] == [False, True]
            ),
        )
        path = (await app.history()).path
        await app.history_idle()
        app.terminal.lost("hangup signal (SIGHUP)")
        await wait_for(pilot, lambda: app.return_value is not None)
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        saved = dict(
            conn.execute(
                "SELECT engine, finish_reason FROM messages WHERE role = 'assistant'"
            ).fetchall()
        )
    finally:
        conn.close()
    assert saved == {"fast": "stop", "slow": "interrupted"}  # the finished one stays finished
