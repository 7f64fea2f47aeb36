"""Pilot tests of attachments in the chat: ``@path`` completion, what a mention attaches (and
what stays text), the attach command, chips before sending, refusals, and the history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tedchat.tui.screens.chat import ChatScreen
from tedchat.tui.screens.pickers import TextPrompt
from tedchat.tui.widgets.attachments import AttachmentChips, CompletionList
from tedchat.tui.widgets.messages import UserMessage
from tedchat.tui.widgets.prompt import PromptInput
from tests.test_attachments import png_bytes

from .conftest import answered, wait_for

SIZE = (100, 32)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("print('a')\n")
    (root / "src" / "b.py").write_text("print('b')\n")
    (root / "notes.txt").write_text("milk\n")
    (root / "pic.png").write_bytes(png_bytes())
    return root


def config(root: Path) -> str:
    return f"""
    [tools]
    workspace = {str(root)!r}

    [engines.eyes]
    type = "scripted"
    model = "sees"
    text = "ok"
    vision = true
    ttft_s = 0.0
    """


def chat(app: Any) -> ChatScreen:
    screen = app.chat_screen()
    assert screen is not None
    return screen


def prompt(app: Any) -> PromptInput:
    return chat(app).query_one(PromptInput)


async def type_text(pilot: Any, text: str) -> None:
    box = prompt(pilot.app)
    box.focus()
    box.insert(text)
    await pilot.pause(0.05)


def completions(app: Any) -> list[str]:
    listed = chat(app).query_one(CompletionList)
    return listed.candidates if listed.has_class("shown") else []


def chips(app: Any) -> list[str]:
    return chat(app).query_one(AttachmentChips).names


def last_request(app: Any, engine: str) -> Any:
    return app.loader.engine(engine).requests[-1]


async def test_at_path_completes_with_tab_and_attaches_what_was_picked(
    make_app, workspace: Path
) -> None:
    app = make_app(config(workspace), engine="fast")
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "look at @sr")
        assert completions(app) == ["src/"]
        await pilot.press("tab")
        assert prompt(app).text == "look at @src/"
        assert completions(app) == ["src/a.py", "src/b.py"]
        await type_text(pilot, "b")
        await pilot.press("tab")
        assert prompt(app).text == "look at @src/b.py "
        assert completions(app) == []
        assert chips(app) == ["src/b.py"]
        await pilot.press("enter")
        await answered(pilot)
        (user,) = last_request(app, "fast")
        assert user.content == "look at @src/b.py \n\n```src/b.py\nprint('b')\n```"
        assert chips(app) == []
        shown = chat(app).query_one(UserMessage)
        assert [a.name for a in shown.attachments] == ["src/b.py"]
        [summary] = app.history.store.list_conversations()
        (message,) = app.history.store.get_conversation(summary.id).messages
        assert message.content == "look at @src/b.py " and message.attachments[0].name == "src/b.py"


async def test_a_picked_folder_attaches_its_files(make_app, workspace: Path) -> None:
    app = make_app(config(workspace), engine="fast")
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "@sr")
        await pilot.press("tab")
        assert chips(app) == ["src/a.py", "src/b.py"]
        await pilot.press("enter")
        await answered(pilot)
        (user,) = last_request(app, "fast")
        assert "```src/a.py\n" in user.content and "```src/b.py\n" in user.content


async def test_words_that_name_no_file_are_sent_as_typed(make_app, workspace: Path) -> None:
    app = make_app(config(workspace), engine="fast")
    text = "use @dataclass here, mail me@example.com or @team, and see @notes.txt."
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, text)
        # @notes.txt names an existing file under the workspace: it attaches, typed or not.
        assert chips(app) == ["notes.txt"]
        await pilot.press("enter")
        await answered(pilot)
        (user,) = last_request(app, "fast")
        assert user.content == f"{text}\n\n```notes.txt\nmilk\n```"
        assert user.images == ()


async def test_the_attach_command_adds_chips_and_an_image_needs_vision(
    make_app, workspace: Path
) -> None:
    app = make_app(config(workspace), engine="fast")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+f")
        await wait_for(pilot, lambda: isinstance(app.screen, TextPrompt))
        await pilot.press(*"pic.png")
        await pilot.press("enter")
        await wait_for(pilot, lambda: chips(app) == ["pic.png"])
        await type_text(pilot, "what is this?")
        await pilot.press("enter")
        await pilot.pause(0.1)
        # "fast" does not declare vision: refused in one notification, nothing sent.
        assert app.loader.engine("fast").requests == []
        assert prompt(app).text == "what is this?" and chips(app) == ["pic.png"]
        notes = [str(n.message) for n in app._notifications]
        assert any("does not take images (pic.png)" in n for n in notes)
        chat(app).set_engine("eyes")
        prompt(app).clear()
        await type_text(pilot, "what is this?")
        await pilot.press("enter")
        await answered(pilot)
        (user,) = last_request(app, "eyes")
        assert user.content == "what is this?"
        assert [(i.mime, i.data) for i in user.images] == [("image/png", png_bytes())]


async def test_a_resumed_conversation_shows_and_resends_its_attachments(
    make_app, workspace: Path
) -> None:
    app = make_app(config(workspace), engine="eyes")
    async with app.run_test(size=SIZE) as pilot:
        chat(app).attach("pic.png")
        await type_text(pilot, "first @src/a.py")
        await pilot.press("enter")
        await answered(pilot)
        cid = chat(app).conversation.id
        await chat(app).action_new_conversation()
        await chat(app).open_conversation(cid)
        await pilot.pause(0.05)
        shown = chat(app).query_one(UserMessage)
        assert [a.name for a in shown.attachments] == ["pic.png", "src/a.py"]
        await type_text(pilot, "second")
        await pilot.press("enter")
        await answered(pilot)
        first, _reply, second = last_request(app, "eyes")
        assert first.content == "first @src/a.py\n\n```src/a.py\nprint('a')\n```"
        assert len(first.images) == 1 and second.content == "second"


async def test_a_binary_or_too_large_mention_is_refused_and_the_text_kept(
    make_app, workspace: Path
) -> None:
    (workspace / "blob.bin").write_bytes(b"\x00\x01\x02")
    (workspace / "big.txt").write_text("x" * 5000)
    app = make_app(config(workspace) + "\n[attachments]\nmax_file_bytes = 4096\n", engine="fast")
    async with app.run_test(size=SIZE) as pilot:
        for text, error in (
            ("read @blob.bin", "blob.bin: a binary file"),
            ("read @big.txt", "big.txt: larger than [attachments] max_file_bytes"),
        ):
            prompt(app).clear()
            await type_text(pilot, text)
            await pilot.press("enter")
            await pilot.pause(0.1)
            assert prompt(app).text == text
            notes = [str(n.message) for n in app._notifications]
            assert any(n.startswith(error) for n in notes), notes
        assert app.loader.engine("fast").requests == []
        assert chat(app).conversation.exchanges == []


async def test_editing_the_last_prompt_keeps_its_attachments(make_app, workspace: Path) -> None:
    app = make_app(config(workspace), engine="eyes")
    async with app.run_test(size=SIZE) as pilot:
        chat(app).attach("pic.png")
        await type_text(pilot, "see @notes.txt")
        await pilot.press("enter")
        await answered(pilot)
        await pilot.press("ctrl+l")
        await pilot.pause(0.05)
        assert prompt(app).text == "see @notes.txt"
        assert chips(app) == ["pic.png", "notes.txt"]
        await pilot.press("enter")
        await answered(pilot)
        (user,) = last_request(app, "eyes")
        assert user.content == "see @notes.txt\n\n```notes.txt\nmilk\n```"
        assert len(user.images) == 1
