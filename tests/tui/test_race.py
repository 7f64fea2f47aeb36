"""The race start of the compare screen (tedchat.race) on real engines: the wafer emulation
(NumPy, the bundled SmolLM2) and llama.cpp on the same model, driven by Pilot."""

from __future__ import annotations

from typing import Any

from tedchat.engine import GenerationParams
from tedchat.race import needs_preparing
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.widgets.compare_pane import ComparePane
from tedchat.tui.widgets.compare_summary import CompareSummary
from tedchat.tui.widgets.messages import ReplyView

from .conftest import answered, send, wait_for

GREEDY = GenerationParams(max_tokens=20, temperature=0.0)
#: Long enough that the wafer pane's preparation lasts a while on a fast host too.
LONGER = GenerationParams(max_tokens=80, temperature=0.0)


def panes(app: Any) -> dict[str, ComparePane]:
    return {p.engine_name: p for p in app.screen.query(ComparePane)}


def caption(pane: ComparePane) -> str:
    views = list(pane.query(ReplyView))
    return str(views[-1].caption.render()) if views else ""


async def test_a_live_llamacpp_pane_and_a_paced_wafer_pane_start_together(make_app) -> None:
    app = make_app(compare=["wafer-70b", "local"], params=LONGER)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await wait_for(pilot, lambda: all(app.loader.is_ready(n) for n in panes(app)), 180)
        wafer, local = app.loader.engine("wafer-70b"), app.loader.engine("local")
        assert needs_preparing(wafer, "auto")  # 435 emulated tok/s: more than this machine
        assert not needs_preparing(local, "auto")  # a live engine never prepares
        await send(pilot, "Name three colours.")
        seen: list[tuple[str, str, str]] = []  # (wafer caption, local caption, local text)
        for _ in range(20_000):  # sampled from the Enter on, every frame or so
            by_name = panes(app)
            local_view = by_name["local"].query(ReplyView).last()
            seen.append((caption(by_name["wafer-70b"]), caption(by_name["local"]), local_view.text))
            if "streaming" in seen[-1][1]:
                break
            await pilot.pause(0.01)
        # While the wafer pane prepared, the live pane waited: no request, no text.
        preparing = [s for s in seen if "preparing" in s[0]]
        assert preparing, seen[-5:]
        assert all("waiting for the race start" in s[1] and not s[2] for s in preparing)
        await answered(pilot, timeout=180)
        by_name = panes(app)
        texts = {n: p.query(ReplyView).last().text for n, p in by_name.items()}
        assert all(t.strip() for t in texts.values()), texts
        summary = app.screen.query_one(CompareSummary)
        assert summary.display
        await app.history_idle()
        [conv] = app.history.store.list_conversations()
        replies = {
            r.engine: r for r in app.history.store.get_conversation(conv.id).messages[0].replies
        }
        # The prepared pane's preparation is its own figure; its TTFT counts from the race
        # start (the emulated 2.3 ms plus drawing, far below the seconds it took to prepare).
        prepare_s = replies["wafer-70b"].metrics.extra["prepare_s"]
        assert prepare_s > 0.2
        assert replies["wafer-70b"].metrics.ttft_s < prepare_s / 2
        assert "prepare_s" not in replies["local"].metrics.extra
        assert replies["wafer-70b"].finish_reason == "length"  # 80 tokens of a longer answer
        assert replies["local"].finish_reason in ("stop", "length")  # both finished


async def test_replay_honours_max_tokens_and_live_mode_prepares_nothing(make_app) -> None:
    app = make_app(compare=["wafer-70b", "gpu-70b"], replay=True, params=GREEDY)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await send(pilot, "Give me a list of 10 great computer scientists.")
        await answered(pilot, timeout=240)
        await app.history_idle()
        [conv] = app.history.store.list_conversations()
        replies = app.history.store.get_conversation(conv.id).messages[0].replies
        assert [r.metrics.output_tokens for r in replies] == [20, 20]
        assert all(r.finish_reason == "length" for r in replies)
        wafer = app.loader.engine("wafer-70b")
        assert needs_preparing(wafer, "replay") and not needs_preparing(wafer, "live")


async def test_esc_cancels_the_preparation(make_app) -> None:
    params = GenerationParams(max_tokens=600, temperature=0.0)
    app = make_app(compare=["wafer-70b", "gpu-70b"], params=params)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await send(pilot, "Write a long story about a dragon.")
        await wait_for(pilot, lambda: "preparing" in caption(panes(app)["wafer-70b"]), 180)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.screen.busy, 10)
        assert all("cancelled" in caption(p) for p in panes(app).values())
        # The runner stops computing the abandoned answer (it is not left running).
        runner = app.loader.engine("wafer-70b")._runner
        await wait_for(pilot, lambda: not runner.active, 10)
