"""Pilot tests of the arena (blind compare with votes) and of continuing with a pane in chat,
with scripted engines loaded through the real plugin path and the real SQLite history."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tedchat.history.tree import active_path
from tedchat.tui.screens.arena import ArenaScreen
from tedchat.tui.screens.chat import ChatScreen
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.widgets.blind_pane import BlindPane
from tedchat.tui.widgets.messages import ReplyView
from tests.conftest import run_cli

from .conftest import NIHONGO_ANSWER, answered, send, wait_for

SIZE = (150, 40)

# Two engines whose answers name neither engine nor model; one's figures are "emulated".
PAIR = """
[engines.sprinter]
type = "scripted"
model = "sprint-7b"
text = "Paris is the capital of France."
virtual = true
ttft_s = 0.125
tokens_per_s = 50.0

[engines.wafer-ish]
type = "scripted"
model = "wafer-model"
text = "The capital is **Paris**."
virtual = true
ttft_s = 0.05
tokens_per_s = 100.0
emulated = true
"""

# Two engines that run the same text model (the same model name, resolving to no file here:
# compared as written).
SHARED = """
[engines.twin-a]
type = "scripted"
model = "same-model"
text = "Twin answer one."
virtual = true
ttft_s = 0.1
tokens_per_s = 40.0

[engines.twin-b]
type = "scripted"
model = "same-model"
text = "Twin answer two."
virtual = true
ttft_s = 0.2
tokens_per_s = 20.0
"""

FIGURE = re.compile(r"\d+(\.\d+)? ?(ms|s\b)|tok/s|TTFT|emulated|replay|stand-in", re.IGNORECASE)


def screen_text(app: Any) -> str:
    """Everything the terminal would show, as text."""
    return "\n".join(
        "".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()
    )


def voted(app: Any) -> Any:
    """A condition: the vote of the arena shown by ``app`` is stored."""
    return lambda: app.screen.last_vote_id is not None


def blind_panes(app: Any) -> list[BlindPane]:
    return list(app.screen.query(BlindPane))


def pane_of(app: Any, engine: str) -> BlindPane:
    return next(p for p in blind_panes(app) if p.engine_name == engine)


def identifying(engines: dict[str, str]) -> list[str]:
    """Engine names and models."""
    return [*engines, *engines.values()]


ENGINES = {"sprinter": "sprint-7b", "wafer-ish": "wafer-model"}


async def start_arena(pilot: Any, app: Any) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, ArenaScreen))


async def test_blind_panes_name_nothing_until_the_vote_then_show_engine_model_and_figures(
    make_app,
) -> None:
    app = make_app(PAIR, compare=list(ENGINES), blind=True, seed=3)
    async with app.run_test(size=SIZE) as pilot:
        await start_arena(pilot, app)
        before_prompt = screen_text(app)
        await send(pilot, "Which is better?")
        await wait_for(pilot, lambda: "streaming" in screen_text(app) or not app.screen.busy)
        during = screen_text(app)
        await answered(pilot)
        after_answers = screen_text(app)
        for text in (before_prompt, during, after_answers):
            for word in identifying(ENGINES):
                assert word not in text, (word, text)
            assert not FIGURE.search(text), (FIGURE.search(text), text)
        # Labelled A and B, answers shown, the vote asked for.
        assert {p.label for p in blind_panes(app)} == {"A", "B"}
        assert "A · answered" in after_answers and "B · answered" in after_answers
        assert "Paris is the capital of France." in after_answers
        assert "t tie · x all bad" in after_answers
        winner = pane_of(app, "sprinter").label
        await pilot.press(winner.lower())
        await wait_for(pilot, lambda: app.screen.last_vote_id is not None)
        await pilot.pause(0.1)
        revealed = screen_text(app)
        for word in identifying(ENGINES):
            assert word in revealed, word
        assert "TTFT 125 ms · 50.0 tok/s" in pane_of(app, "sprinter").status.figures_text
        assert "TTFT 125 ms" in revealed and "tok/s" in revealed
        assert "emulated" in revealed  # the emulated engine's figures say so, after the vote
        assert "★ winner" in revealed
        # The vote is in the database: the winner's pairwise result over the other pane.
        await app.history_idle()
        (vote,) = app.history.store.votes()
        assert (vote.outcome, vote.winner, vote.prompt) == ("win", winner, "Which is better?")
        assert [(p.engine, p.label) for p in vote.panes] == sorted(
            ((p.engine_name, p.label) for p in blind_panes(app)), key=lambda x: x[1]
        )
        (pair,) = vote.pairs
        assert (vote.pane(pair.first).engine, vote.pane(pair.second).engine, pair.result) == (
            "sprinter",
            "wafer-ish",
            "first",
        )
        # The replies are the tree's messages, with their figures.
        conv = app.history.store.get_conversation(vote.conversation_id)
        (message,) = conv.messages
        assert vote.message_id == message.id
        stored = {r.engine: r for r in message.replies}
        for pane in vote.panes:
            assert pane.reply_id == stored[pane.engine].id
            assert pane.reply == stored[pane.engine].content != ""
        assert vote.pane(winner).metrics.ttft_s == 0.125
        assert vote.ranked and not vote.shared_text_model


async def test_the_seed_fixes_the_order_and_a_new_round_reshuffles_and_hides_again(
    make_app,
) -> None:
    orders = []
    for _ in range(2):
        four = ["sprinter", "wafer-ish", "nihongo", "fast"]
        app = make_app(PAIR, compare=four, blind=True, seed=13)
        async with app.run_test(size=SIZE) as pilot:
            await start_arena(pilot, app)
            orders.append([p.engine_name for p in blind_panes(app)])
            await send(pilot, "one")
            await answered(pilot)
            await pilot.press("t")
            await wait_for(pilot, voted(app))
            assert "sprint-7b" in screen_text(app)
            await send(pilot, "two")
            await answered(pilot)
            text = screen_text(app)
            for word in [*identifying(ENGINES), "nihongo", "tedllm", "fast"]:
                assert word not in text, word
            assert not FIGURE.search(text), FIGURE.search(text)
            assert "one" not in text.split("\n")[3:]  # the first round's panes were cleared
            orders.append([p.engine_name for p in blind_panes(app)])
    assert orders[0] == orders[2] and orders[1] == orders[3]  # same seed, same rounds
    assert sorted(orders[0]) == sorted(orders[1]) == sorted(four)
    assert orders[0] != four  # seed 13 deals another order than the command line's


async def test_panes_sharing_a_text_model_are_flagged_and_their_vote_is_not_ranked(
    make_app,
) -> None:
    keymap = '\n[keymap]\narena-tie = "y"\n'
    app = make_app(SHARED + keymap, compare=["twin-a", "twin-b", "frozen"], blind=True, seed=1)
    async with app.run_test(size=SIZE) as pilot:
        await start_arena(pilot, app)
        twins = sorted(p.label for p in blind_panes(app) if p.engine_name.startswith("twin"))
        text = screen_text(app)
        assert f"{twins[0]} and {twins[1]} run the same text model" in text
        assert "same-model" not in text and "twin" not in text
        assert text.count("same text model as") == 2
        await send(pilot, "q")
        await answered(pilot)
        await pilot.press("t")  # rebound: t no longer votes
        await pilot.pause(0.1)
        assert app.screen.phase == "voting"
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen.last_vote_id is not None)
        (vote,) = app.history.store.votes()
        assert vote.outcome == "tie" and vote.shared_text_model and not vote.ranked
        assert len(vote.pairs) == 3 and {p.result for p in vote.pairs} == {"tie"}
    from tedchat.leaderboard import leaderboard

    board = leaderboard(app.history.store.votes() if app.history.store else [])
    assert board.fitted_votes == 0 and board.shared_model_votes == 1


async def test_continue_with_the_winner_puts_its_reply_on_the_active_path(make_app) -> None:
    app = make_app(compare=["frozen", "frozen2"], blind=True, seed=5)
    async with app.run_test(size=SIZE) as pilot:
        await start_arena(pilot, app)
        await send(pilot, "first question")
        await answered(pilot)
        await pilot.press(pane_of(app, "frozen2").label.lower())
        await wait_for(pilot, lambda: app.screen.last_vote_id is not None)
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat = app.screen
        assert chat.engine_name == "frozen2"
        await app.history_idle()
        store = app.history.store
        (summary,) = store.list_conversations()
        conv = store.get_conversation(summary.id)
        (message,) = conv.messages
        winner = next(r for r in message.replies if r.engine == "frozen2")
        assert [s.reply.id for s in active_path(conv) if s.reply] == [winner.id]
        assert len(message.replies) == 2  # the loser stays as a sibling
        await wait_for(pilot, lambda: bool(chat.query(ReplyView)))
        assert chat.query(ReplyView).last().text.startswith("A second, slower")
        await send(pilot, "and then?")
        await answered(pilot)
        frozen2, frozen = app.loader.engine("frozen2"), app.loader.engine("frozen")
        assert len(frozen.requests) == 1  # only the arena round
        sent = [(m.role, m.content) for m in frozen2.requests[-1]]
        assert sent[-3:] == [
            ("user", "first question"),
            ("assistant", winner.content),
            ("user", "and then?"),
        ]
        await app.history_idle()
        conv = store.get_conversation(summary.id)
        path = active_path(conv)
        assert [s.message.content for s in path] == ["first question", "and then?"]
        assert path[0].reply is not None and path[0].reply.id == winner.id
        assert path[1].reply is not None and path[1].reply.engine == "frozen2"


async def test_plain_compare_continues_with_a_picked_pane(make_app) -> None:
    app = make_app(compare=["frozen", "frozen2"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await send(pilot, "pick one")
        await answered(pilot)
        await pilot.press("f3")
        await wait_for(pilot, lambda: "Continue in chat with" in screen_text(app))
        await pilot.press("down", "enter")  # the second pane: frozen2
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        assert app.screen.engine_name == "frozen2"
        await app.history_idle()
        store = app.history.store
        conv = store.get_conversation(store.list_conversations()[0].id)
        (step,) = active_path(conv)
        assert step.reply is not None and step.reply.engine == "frozen2"


async def test_a_japanese_prompt_through_a_vote_the_export_and_the_leaderboard(
    make_app, tui_home: Path
) -> None:
    prompt = "ウェハースケールの推論を説明してください。"
    app = make_app(compare=["nihongo", "frozen"], blind=True, seed=2, preset="簡潔")
    async with app.run_test(size=SIZE) as pilot:
        await start_arena(pilot, app)
        await send(pilot, prompt)
        await answered(pilot, timeout=30)
        text = screen_text(app)
        assert "tedllm-ja" not in text and "nihongo" not in text
        assert "ウェハースケール" in text
        await pilot.press(pane_of(app, "nihongo").label.lower())
        await wait_for(pilot, lambda: app.screen.last_vote_id is not None)
        await app.history_idle()
    exported = run_cli(tui_home, "arena", "export")
    assert exported.returncode == 0, exported.stderr
    (line,) = exported.stdout.splitlines()
    vote = json.loads(line)
    assert vote["prompt"] == prompt and vote["winner_engine"] == "nihongo"
    assert vote["preset"] == "簡潔"  # the --preset the arena was opened with
    replies = {p["engine"]: p["reply"] for p in vote["panes"]}
    assert replies["nihongo"] == NIHONGO_ANSWER
    assert vote["pairs"] == [{"first": "nihongo", "second": "frozen", "result": "first"}]
    board = run_cli(tui_home, "arena", "leaderboard", "--json")
    assert board.returncode == 0, board.stderr
    engines = json.loads(board.stdout)["engines"]
    assert [(e["engine"], e["model"]) for e in engines] == [
        ("nihongo", "tedllm-ja"),
        ("frozen", "script-frozen"),
    ]
    assert engines[0]["wins"] == 1 and engines[1]["losses"] == 1
    assert engines[0]["median_ttft_s"] == 0.08
    text = run_cli(tui_home, "arena", "leaderboard")
    assert text.returncode == 0 and "nihongo" in text.stdout and "tedllm-ja" in text.stdout


async def test_a_scripted_series_of_votes_ranks_the_better_engine_first_and_narrows(
    make_app,
) -> None:
    """Eight blind rounds, the person picking "sprinter" in 3 of every 4: after four rounds
    and after eight the leaderboard ranks it first, and its interval is narrower after eight."""
    from tedchat.leaderboard import leaderboard

    app = make_app(PAIR, compare=list(ENGINES), blind=True, seed=4)
    boards = []
    async with app.run_test(size=SIZE) as pilot:
        await start_arena(pilot, app)
        for round_no in range(8):
            await send(pilot, f"question {round_no}")
            await answered(pilot)
            pick = "wafer-ish" if round_no % 4 == 3 else "sprinter"
            before = app.screen.last_vote_id
            await pilot.press(pane_of(app, pick).label.lower())
            await wait_for(pilot, lambda b=before: app.screen.last_vote_id != b)
            if round_no in (3, 7):
                await app.history_idle()
                boards.append(leaderboard(app.history.store.votes()))
    widths = []
    for board in boards:
        assert [s.engine for s in board.standings] == ["sprinter", "wafer-ish"]
        top = board.standings[0]
        assert top.ci_low is not None and top.ci_high is not None
        widths.append(top.ci_high - top.ci_low)
    assert boards[1].standings[0].votes == 8 and boards[1].standings[0].wins == 6
    assert widths[1] < 0.8 * widths[0], widths


async def test_the_arena_from_the_command_palette_picker(make_app) -> None:
    from textual.widgets import SelectionList

    from tedchat.tui.screens.pickers import ComparePicker

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.action_arena()  # Ctrl+P > "Arena (blind vote)"
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ComparePicker) and bool(app.screen.query(SelectionList)),
        )
        app.screen.query_one(SelectionList).select("frozen")
        await pilot.pause(0.1)
        await pilot.click("#ok")
        await start_arena(pilot, app)
        assert sorted(p.engine_name for p in blind_panes(app)) == ["fast", "frozen"]
        assert "frozen" not in screen_text(app) and "fast" not in screen_text(app)


async def test_without_history_the_vote_still_reveals_and_says_it_was_not_saved(
    make_app,
) -> None:
    app = make_app(PAIR + "\n[history]\nenabled = false\n", compare=list(ENGINES), blind=True)
    async with app.run_test(size=SIZE) as pilot:
        await start_arena(pilot, app)
        await send(pilot, "q")
        await answered(pilot)
        await pilot.press("x")
        await wait_for(pilot, lambda: "not saved" in screen_text(app))
        text = screen_text(app)
        assert "all bad: not saved (history is disabled" in text
        for word in identifying(ENGINES):
            assert word in text
        assert app.screen.last_vote_id is None
