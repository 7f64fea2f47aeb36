"""The chat screen when the history cannot take a write (a full disk, a lock another process
holds past ``[history] lock_timeout_s``): one line says so, the text on screen stays, the
prompt keeps taking keys while the history waits, and what was saved before is intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tedchat.tui.widgets.messages import ReplyView, UserMessage
from tedchat.tui.widgets.prompt import PromptInput
from tests.history.test_faults import LockHolder, limit_growth

from .conftest import answered, send, wait_for

SIZE = (100, 32)
FAST_ANSWER = "The **answer** is 42.\n\n- one\n- two\n\n```python\nprint('hi')\n```\n\nDone."


def rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT role, content, finish_reason FROM messages ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


WAITING = (
    "waiting for the history file (busy, or locked by another process: "
    "up to 60 s, [history] lock_timeout_s)…"
)


def caption(view: ReplyView) -> str:
    return str(view.caption.render())


def history_notices(app: Any) -> list[str]:
    return [n.message for n in app._notifications if "history not saved" in n.message]


async def first_exchange_saved(pilot: Any) -> Any:
    """Ask once with the history working; returns the open store."""
    app = pilot.app
    await send(pilot, "saved before")
    await answered(pilot)
    await app.history_idle()
    return await app.history.open()


async def test_a_full_history_keeps_the_text_on_screen_and_the_prompt_working(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        store = await first_exchange_saved(pilot)
        path = store.path
        writer = await app.history.writer()
        await writer.run(lambda: limit_growth(store))  # the disk is full from here on
        question = "a long question " * 2_000  # needs new pages: SQLITE_FULL
        await send(pilot, question)
        await answered(pilot)
        await wait_for(pilot, lambda: bool(history_notices(app)))
        [notice] = history_notices(app)
        assert notice == f"history not saved: history file {path} is full: this write was not saved"
        # The screen keeps both: the question as typed and the whole answer.
        assert [u.prompt for u in app.screen.query(UserMessage)] == ["saved before", question]
        assert [r.text for r in app.screen.query(ReplyView)] == [FAST_ANSWER, FAST_ANSWER]
        prompt = app.screen.query_one(PromptInput)
        await pilot.press(*"still here")
        assert prompt.text == "still here"
        await app.history_idle()
    assert rows(path) == [
        ("user", "saved before", None),
        ("assistant", FAST_ANSWER, "stop"),
    ]


async def test_the_prompt_takes_keys_while_the_history_waits_for_a_lock(make_app) -> None:
    # The lock is held from before the question until after the typing, and the question is
    # saved only once it is released: so the history was waiting all the while the screen
    # took keys. No race with the clock: the deadline (60 s) is far off. The turn itself
    # waits for its prompt to be saved (the reply hangs under it in the history's tree).
    app = make_app("\n[history]\nlock_timeout_s = 60\n")
    async with app.run_test(size=SIZE) as pilot:
        store = await first_exchange_saved(pilot)
        path = store.path
        holder = LockHolder(path)
        try:
            await send(pilot, "asked while locked")
            prompt = app.screen.query_one(PromptInput)
            await pilot.press(*"typing on")
            assert prompt.text == "typing on"
            assert app.screen.busy  # the turn is still waiting for the history
            # The reply says what it waits for (after half a second), not a blank space.
            view = app.screen.query(ReplyView)[-1]
            await wait_for(pilot, lambda: WAITING in caption(view), timeout=30)
            assert caption(view) == f"fast · script-fast · {WAITING}"
            assert rows(path) == [  # nothing of the locked exchange is written yet
                ("user", "saved before", None),
                ("assistant", FAST_ANSWER, "stop"),
            ]
        finally:
            holder.release()
        await answered(pilot)
        await app.history_idle()
        assert [r.text for r in app.screen.query(ReplyView)] == [FAST_ANSWER, FAST_ANSWER]
        assert WAITING not in caption(view)  # the figures, once answered
        assert not history_notices(app)
        assert prompt.text == "typing on"
    assert rows(path) == [  # written once the lock was released: nothing lost
        ("user", "saved before", None),
        ("assistant", FAST_ANSWER, "stop"),
        ("user", "asked while locked", None),
        ("assistant", FAST_ANSWER, "stop"),
    ]


async def test_a_lock_held_past_the_timeout_gives_one_line_and_keeps_the_screen(make_app) -> None:
    app = make_app("\n[history]\nlock_timeout_s = 1\n")
    async with app.run_test(size=SIZE) as pilot:
        store = await first_exchange_saved(pilot)
        path = store.path
        assert store.lock_timeout_s == 1.0
        with LockHolder(path):
            await send(pilot, "asked while locked")
            await wait_for(pilot, lambda: bool(history_notices(app)), timeout=30)
            await answered(pilot)
            prompt = app.screen.query_one(PromptInput)
            await pilot.press(*"typing on")
        [notice] = history_notices(app)
        assert notice == (
            f"history not saved: history file {path} stayed locked by another process for "
            "1 s ([history] lock_timeout_s)"
        )
        # The answer still came, and everything typed is still on screen.
        assert [u.prompt for u in app.screen.query(UserMessage)] == [
            "saved before",
            "asked while locked",
        ]
        assert [r.text for r in app.screen.query(ReplyView)] == [FAST_ANSWER, FAST_ANSWER]
        assert prompt.text == "typing on"
        await app.history_idle()
    assert rows(path) == [  # the question asked under the lock could not be saved
        ("user", "saved before", None),
        ("assistant", FAST_ANSWER, "stop"),
    ]


async def test_compare_panes_say_they_wait_for_a_locked_history(make_app) -> None:
    from tedchat.tui.screens.compare import CompareScreen
    from tedchat.tui.widgets.compare_pane import ComparePane

    app = make_app("\n[history]\nlock_timeout_s = 60\n", compare=["frozen", "frozen2"])
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        path = (await app.history.open()).path
        with LockHolder(path):
            await send(pilot, "race while locked")
            views = [pane.query(ReplyView)[-1] for pane in app.screen.query(ComparePane)]
            await wait_for(pilot, lambda: all(WAITING in caption(v) for v in views), timeout=30)
            assert [caption(v) for v in views] == [f"frozen · {WAITING}", f"frozen2 · {WAITING}"]
            assert app.screen.busy
        await answered(pilot)
        await app.history_idle()
        assert not history_notices(app)
        assert not any(WAITING in caption(v) for v in views)
        [summary] = app.history.store.list_conversations()
        [message] = app.history.store.get_conversation(summary.id).messages
        assert message.content == "race while locked"  # saved once the lock was released
        assert sorted(r.engine for r in message.replies) == ["frozen", "frozen2"]


async def test_a_history_locked_at_start_is_waited_for_with_a_caption(make_app) -> None:
    app = make_app("\n[history]\nlock_timeout_s = 60\n")
    async with app.run_test(size=SIZE) as pilot:
        path = (await first_exchange_saved(pilot)).path
    # A new app, the file locked before it starts: its opening (a write) waits for the lock.
    with LockHolder(path) as holder:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await send(pilot, "asked at start")
            view = app.screen.query(ReplyView)[-1]
            await wait_for(pilot, lambda: WAITING in caption(view), timeout=30)
            assert caption(view) == f"fast · script-fast · {WAITING}"
            holder.release()
            await answered(pilot)
            await app.history_idle()
            assert WAITING not in caption(view)
            assert not history_notices(app)
    assert rows(path)[-2:] == [("user", "asked at start", None), ("assistant", FAST_ANSWER, "stop")]
