"""One turn path: ``ask``, the chat screen and a compare pane all save through tedchat.session.

The acceptance test drives the three front ends on the scripted engine against one real
history file, and watches every write that enters the history store: each must come from
``tedchat/session.py``, and the prompt must be committed before its request is handed to the
engine. The kill test runs the real app in a real terminal and SIGKILLs it while an answer is
stalled: what had arrived must be in the database.
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tedchat import cli
from tedchat.history.store import Store
from tedchat.history.writer import ReplyWriter
from tedchat.metrics import StreamMeter
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.widgets.compare_pane import ComparePane
from tedchat.tui.widgets.messages import ReplyView

from .conftest import BASE_CONFIG, answered, send, wait_for

HISTORY_PACKAGE = Path(cli.__file__).resolve().parent / "history"
SESSION = Path(cli.__file__).resolve().parent / "session.py"

# Every public method of the store, sorted by whether it changes the database. A new method
# makes test_every_store_method_is_classified fail until it is put in one of these lists.
STORE_WRITES = (
    "new_conversation",
    "add_user_message",
    "begin_reply",
    "rename",
    "set_settings",
    "delete",
    "mark_interrupted",
    "import_json",
    "set_active",
    "set_active_branch",
    "add_vote",  # the arena's votes (tedchat.history.votes)
    "close",  # finishes replies still open as interrupted
)
STORE_OTHERS = (
    "open",  # its own write (marking dead writers' replies) is the store's, inside the package
    "list_conversations",
    "last_conversation_id",
    "get_conversation",
    "search",
    "explain_search",
    "export_json",
    "export_markdown",
    "votes",
)
REPLY_WRITES = ("append", "flush", "finish", "interrupt", "add_tool_call")
REPLY_OTHERS = ("text", "pending")

FAST_TEXT = "The **answer** is 42.\n\n- one\n- two\n\n```python\nprint('hi')\n```\n\nDone."


def public(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def test_every_store_method_is_classified() -> None:
    assert public(Store) == set(STORE_WRITES) | set(STORE_OTHERS)
    assert public(ReplyWriter) == set(REPLY_WRITES) | set(REPLY_OTHERS)


def caller_file(frame: Any) -> Path | None:
    """The file a call into the history package came from; None for the store's own calls."""
    caller = Path(frame.f_code.co_filename).resolve()
    return None if caller.is_relative_to(HISTORY_PACKAGE) else caller


@pytest.fixture
def write_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Path | None]]]:
    """Every store write entering from outside the history package, with the file it came
    from, in order; the moment each turn's request is handed over is logged as "request"."""
    log: list[tuple[str, Path | None]] = []
    lock = threading.Lock()

    def watch(cls: type, name: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = caller_file(sys._getframe(1))
            if caller is not None:
                with lock:
                    log.append((name, caller))
            return original(*args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    for name in STORE_WRITES:
        watch(Store, name)
    for name in REPLY_WRITES:
        watch(ReplyWriter, name)
    start = StreamMeter.start

    def request(meter: StreamMeter, now: float) -> None:
        # run_turn starts the meter the moment the request is handed to the engine.
        with lock:
            log.append(("request", None))
        start(meter, now)

    monkeypatch.setattr(StreamMeter, "start", request)
    yield log


def turn_steps(log: list[tuple[str, Path | None]]) -> list[str]:
    """The log without streamed text: the order of a turn's steps."""
    return [name for name, _ in log if name not in ("append", "flush")]


def test_ask_chat_and_compare_save_the_same_rows_through_the_session(
    tui_home: Path, make_app: Any, monkeypatch: pytest.MonkeyPatch, write_log: list[Any]
) -> None:
    # 1. ask, in this process (so the watched store is the one it writes).
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    out, stdout = io.StringIO(), sys.stdout
    monkeypatch.setattr(sys, "stdout", out)
    assert cli.main(["ask", "--engine", "fast", "question one"]) == 0
    monkeypatch.setattr(sys, "stdout", stdout)
    assert out.getvalue() == FAST_TEXT + "\n"
    ask_steps = turn_steps(write_log)

    # 2. the chat screen.
    async def chat() -> None:
        app = make_app(engine="fast")
        async with app.run_test(size=(100, 32)) as pilot:
            await send(pilot, "question two")
            await answered(pilot)
            assert app.screen.query_one(ReplyView).text == FAST_TEXT
            await app.history_idle()
        await app.close_resources()

    del write_log[: len(write_log)]
    asyncio.run(chat())
    chat_steps = turn_steps(write_log)

    # 3. a compare pane (two panes: one prompt, two replies).
    async def compare() -> None:
        app = make_app(compare=["fast", "frozen"])
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
            await send(pilot, "question three")
            await answered(pilot)
            texts = [p.query_one(ReplyView).text for p in app.screen.query(ComparePane)]
            assert texts[0] == FAST_TEXT and texts[1].startswith("A frozen answer")
            await app.history_idle()
        await app.close_resources()

    before_compare = len(write_log)
    asyncio.run(compare())
    compare_steps = turn_steps(write_log[before_compare:])

    # Every write into the store came from the session module.
    assert write_log
    callers = {caller for name, caller in write_log if name != "request"}
    assert callers == {SESSION}, callers
    names = {name for name, _ in write_log}
    assert {"new_conversation", "add_user_message", "begin_reply", "append", "finish"} <= names
    assert "close" in names  # the TUI's and ask's store are closed through the session too

    # The prompt is committed before the request; the reply row is opened before it too.
    one_turn = ["new_conversation", "add_user_message", "begin_reply", "request", "finish"]
    assert ask_steps == [*one_turn, "close"]
    assert chat_steps == [*one_turn, "close"]
    assert compare_steps == [
        "new_conversation",
        "add_user_message",
        *("begin_reply", "begin_reply"),
        *("request", "request"),
        *("finish", "finish"),
        "close",
    ]

    # The same rows, whichever front end wrote them.
    from tedchat.engines import load_context
    from tedchat.history.files import history_path

    with Store.open(history_path(load_context().settings)) as store:
        conversations = {
            c.messages[0].content: c
            for c in (store.get_conversation(s.id) for s in store.list_conversations())
        }
    assert sorted(conversations) == ["question one", "question three", "question two"]
    for prompt in ("question one", "question two"):
        [message] = conversations[prompt].messages
        assert (message.role, message.engine, message.model) == ("user", "fast", "script-fast")
        [reply] = message.replies
        assert (reply.engine, reply.content, reply.finish_reason) == ("fast", FAST_TEXT, "stop")
        assert reply.metrics.output_tokens == 12 and reply.metrics.ttft_s is not None
    [message] = conversations["question three"].messages
    assert message.engine is None  # one prompt to several engines
    by_engine = {r.engine: r for r in message.replies}
    assert sorted(by_engine) == ["fast", "frozen"]
    assert by_engine["fast"].content == FAST_TEXT
    assert by_engine["frozen"].content.startswith("A frozen answer")
    assert all(r.finish_reason == "stop" for r in message.replies)


# --- SIGKILL while an answer is stalled ------------------------------------------------------

STALL_TOKENS = 5
STALL_CONFIG = (
    BASE_CONFIG
    + f"""
[engines.stall]
type = "scripted"
model = "script-stall"
text = "{" ".join(f"tok{i:02d}" for i in range(1, 11))}"
ttft_s = 0.02
tokens_per_s = 50.0
pause_after = {STALL_TOKENS}
pause_s = 600.0
"""
)


def test_text_received_before_a_sigkill_is_in_the_history_even_while_the_stream_stalls(
    tui_home: Path,
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from tui_terminal import PROMPT_PLACEHOLDER, TmuxSession, clean_env, tedchat_exe, tmux_path

    if tmux_path() is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    home = tui_home
    (home / "config" / "config.toml").write_text(STALL_CONFIG, encoding="utf-8")
    received = " ".join(f"tok{i:02d}" for i in range(1, STALL_TOKENS + 1))
    with TmuxSession(100, 30) as tmux:
        tmux.start([tedchat_exe(), "chat", "--engine", "stall"], clean_env(home))
        assert tmux.wait_for(lambda s: PROMPT_PLACEHOLDER in s, 30), tmux.capture()
        tmux.send_keys("stall please", literal=True)
        tmux.send_keys("Enter")
        # On screen means the app has received it; the engine now stalls for 10 minutes.
        seen = tmux.wait_for(lambda s: received in s, 30)
        assert seen is not None, tmux.capture()
        time.sleep(0.5)
        screen = tmux.capture()
        assert received in screen and f"tok{STALL_TOKENS + 1:02d}" not in screen  # stalled
        pid = tmux.pane_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
    from tedchat.engines import load_context
    from tedchat.history.files import history_path

    with Store.open(
        history_path(load_context().settings)
    ) as store:  # the dead writer's reply is found and marked
        [summary] = store.list_conversations()
        [message] = store.get_conversation(summary.id).messages
    assert message.content == "stall please"
    [reply] = message.replies
    assert reply.content == received
    assert reply.finish_reason == "interrupted"
