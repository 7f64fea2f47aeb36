"""Branches end to end in the chat screen (Pilot, the scripted engine through the real plugin
path, the real history store): edit an earlier prompt, step between versions, regenerate, and
check what the model was sent each time."""

from __future__ import annotations

from typing import Any

from tedchat.history.tree import Tree, active_path
from tedchat.tui.screens.chat import ChatScreen
from tedchat.tui.widgets.messages import ReplyView, UserMessage
from tedchat.tui.widgets.prompt import PromptInput

from .conftest import answered, send, wait_for

SIZE = (100, 40)
ANSWER = "The **answer** is 42.\n\n- one\n- two\n\n```python\nprint('hi')\n```\n\nDone."


def chat(app: Any) -> ChatScreen:
    screen = app.chat_screen()
    assert screen is not None
    return screen


def shown(app: Any) -> list[str]:
    return [u.prompt for u in chat(app).query(UserMessage)]


def labels(app: Any) -> list[str]:
    return [u.branch_label for u in chat(app).query(UserMessage)]


def sent(app: Any, request: int = -1) -> list[tuple[str, str]]:
    """(role, content) of what the engine was sent in request ``request``."""
    return [(m.role, m.content) for m in app.loader.engine("fast").requests[request]]


def path(*prompts: str) -> list[tuple[str, str]]:
    """The messages of a path of answered ``prompts`` (every answer is ANSWER), the last
    prompt unanswered: what a request for the last prompt sends."""
    out: list[tuple[str, str]] = []
    for p in prompts[:-1]:
        out += [("user", p), ("assistant", ANSWER)]
    return [*out, ("user", prompts[-1])]


async def select_prompt(pilot: Any, app: Any, index: int) -> None:
    """Select prompt ``index`` with Alt+Up from the bottom."""
    screen = chat(app)
    for _ in range(20):
        if screen._cursor == (index, "prompt"):
            break
        await pilot.press("alt+up")
    assert screen._cursor == (index, "prompt"), screen._cursor
    assert "-selected" in list(screen.query(UserMessage))[index].classes


async def test_edit_the_second_of_three_prompts_then_switch_back(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        for prompt in ("one", "two", "three"):
            await send(pilot, prompt)
            await answered(pilot)
        assert sent(app) == path("one", "two", "three")

        # Edit the second prompt: a new branch from the first reply.
        await select_prompt(pilot, app, 1)
        await pilot.press("ctrl+l")
        prompt = chat(app).query_one(PromptInput)
        assert prompt.text == "two"
        prompt.load_text("two, edited")
        await pilot.press("enter")
        await answered(pilot)
        assert shown(app) == ["one", "two, edited"]
        assert labels(app) == ["", "‹ 2/2 ›"]
        assert sent(app) == path("one", "two, edited")

        # Continue the new branch: the model sees it, not the old one.
        await send(pilot, "four")
        await answered(pilot)
        assert sent(app) == path("one", "two, edited", "four")

        # Switch back to the first version of prompt two: its continuation comes back.
        await select_prompt(pilot, app, 1)
        await pilot.press("alt+left")
        await wait_for(pilot, lambda: shown(app) == ["one", "two", "three"])
        assert labels(app) == ["", "‹ 1/2 ›", ""]
        await send(pilot, "five")
        await answered(pilot)
        assert sent(app) == path("one", "two", "three", "five")

        # And forward again: the edited branch, with its own continuation.
        await select_prompt(pilot, app, 1)
        await pilot.press("alt+right")
        await wait_for(pilot, lambda: shown(app) == ["one", "two, edited", "four"])
        await send(pilot, "six")
        await answered(pilot)
        assert sent(app) == path("one", "two, edited", "four", "six")

        # The store holds the whole tree; its active path is what is on screen.
        await app.history_idle()
        store = app.history.store
        [summary] = store.list_conversations()
        conv = store.get_conversation(summary.id)
        assert [s.message.content for s in active_path(conv)] == [
            "one",
            "two, edited",
            "four",
            "six",
        ]
        assert len(Tree.of(conv).leaves()) == 2


async def test_regenerate_makes_a_sibling_reply_to_step_between(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "one")
        await answered(pilot)
        await send(pilot, "two")
        await answered(pilot)
        await pilot.press("ctrl+r")
        await answered(pilot)
        views = list(chat(app).query(ReplyView))
        assert [v.branch for v in views] == [(1, 1), (2, 2)]
        assert "reply ‹ 2/2 ›" in str(views[-1].caption.render())
        # The regenerated request sent the same path as the first.
        assert sent(app, -1) == sent(app, -2) == path("one", "two")
        # Alt+Left with nothing selected steps the last reply.
        first_id = views[-1].branch
        await pilot.press("alt+left")
        await wait_for(pilot, lambda: list(chat(app).query(ReplyView))[-1].branch == (1, 2))
        assert first_id == (2, 2)
        await app.history_idle()
        [summary] = app.history.store.list_conversations()
        conv = app.history.store.get_conversation(summary.id)
        last = active_path(conv)[-1]
        assert last.reply is not None and last.reply_branch == (1, 2)
        assert last.reply.id == conv.messages[-1].replies[0].id
        # A prompt sent now follows the reply that is shown.
        await send(pilot, "three")
        await answered(pilot)
        await app.history_idle()
        conv = app.history.store.get_conversation(summary.id)
        assert conv.messages[-1].follows_id == last.reply.id
