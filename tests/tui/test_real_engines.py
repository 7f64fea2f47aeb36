"""The chat and compare screens on the real llama.cpp engine (the bundled SmolLM2 model):
greedy, a few tokens, through the same paths as a person's session."""

from __future__ import annotations

import re

from tedchat.engine import GenerationParams
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.widgets.compare_pane import ComparePane
from tedchat.tui.widgets.messages import ReplyView
from tedchat.tui.widgets.status_bar import StatusLine

from .conftest import answered, send, wait_for

GREEDY = GenerationParams(max_tokens=12, temperature=0.0)
SECOND_LOCAL = """
[engines.local2]
type = "llamacpp"
model = "smollm2"
"""


async def test_chat_on_the_real_local_engine(make_app) -> None:
    app = make_app(engine="local", params=GREEDY)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "What is the capital of France?")
        await answered(pilot, timeout=120)
        screen = app.chat_screen()
        [view] = screen.query(ReplyView)
        assert view.text.strip()
        figures = screen.query_one(StatusLine).figures_text
        # The engine counts its tokens itself: no "~" (approximate) anywhere; llama.cpp's
        # counters give the prompt's speed.
        assert re.fullmatch(
            r"TTFT \d+ ms · [\d.]+ tok/s · \d+ tokens · prompt \d+ tok/s( · length)?", figures
        )
        await app.history_idle()
        [summary] = app.history.store.list_conversations()
        [reply] = app.history.store.get_conversation(summary.id).messages[0].replies
        assert (reply.engine, reply.model) == ("local", "smollm2")
        assert reply.metrics.output_tokens and reply.metrics.output_tokens <= 12
        assert reply.metrics.extra.get("timings", {}).get("eval_tokens")  # llama.cpp's own


async def test_compare_two_real_local_engines_sharing_the_cores(make_app) -> None:
    app = make_app(SECOND_LOCAL, compare=["local", "local2"], params=GREEDY)
    async with app.run_test(size=(120, 34)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert app.context.engines.runtime.local_engines_at_once == 2
        share = app.context.engines.runtime.thread_share()
        for name in ("local", "local2"):
            assert app.loader.engine(name).threads() <= max(1, share)
        await send(pilot, "Name a colour.")
        await answered(pilot, timeout=180)
        texts = [pane.query_one(ReplyView).text for pane in app.screen.query(ComparePane)]
        assert all(t.strip() for t in texts)
        assert texts[0] == texts[1]  # same model, greedy: the same answer


async def test_the_floorplan_follows_the_real_wafer_engine_layer_by_layer(make_app) -> None:
    from tedchat.tui.screens.floorplan import FloorplanScreen
    from tedchat.tui.widgets.floorplan import Floorplan

    app = make_app(engine="wafer", params=GenerationParams(max_tokens=24, temperature=0.0))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, FloorplanScreen))
        floorplan = app.screen.query_one(Floorplan)
        await wait_for(pilot, lambda: floorplan.plan is not None, timeout=60)
        screen = app.chat_screen()
        screen.send("Name three colours.")
        highlighted: list[dict] = []
        await wait_for(pilot, lambda: screen.busy)
        while screen.busy:
            if floorplan.active is not None:
                highlighted.append(dict(floorplan.active))
            await pilot.pause(0.02)
        # The one CS-3 holds all 30 layers of SmolLM2; the highlight moved through them as
        # the NumPy forward pass did, and went out when the answer ended.
        assert highlighted, "no stage was highlighted while the wafer engine computed"
        assert {h["system"] for h in highlighted} == {0}
        layers = {h["layer"] for h in highlighted}
        assert layers <= set(range(30)) and len(layers) >= 3
        await wait_for(pilot, lambda: floorplan.active is None)


async def test_the_status_bar_says_stand_in_when_another_model_writes_the_text(make_app) -> None:
    # wafer-70b: the bundled SmolLM2 writes the text, timed as Llama-3.1-70B on 4 CS-3.
    app = make_app(engine="wafer-70b", params=GenerationParams(max_tokens=6, temperature=0.0))
    async with app.run_test(size=(140, 30)) as pilot:
        await send(pilot, "Name a colour.")
        await answered(pilot, timeout=120)
        figures = app.chat_screen().query_one(StatusLine).figures_text
        assert "◆ emulated 4x cs3 as llama-3.1-70b (stand-in text):" in figures
    # wafer: the timed model is the one writing the text, so no stand-in.
    app = make_app(engine="wafer", params=GenerationParams(max_tokens=6, temperature=0.0))
    async with app.run_test(size=(140, 30)) as pilot:
        await send(pilot, "Name a colour.")
        await answered(pilot, timeout=120)
        figures = app.chat_screen().query_one(StatusLine).figures_text
        assert "◆ emulated 1x cs3:" in figures and "stand-in" not in figures
