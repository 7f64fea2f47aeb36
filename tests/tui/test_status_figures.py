"""The status bar shows what the server measured: llama-server's timings from the fault server
(prompt tokens/s, cached prompt tokens, draft acceptance) through a real http engine turn."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tedchat.engine import GenerationParams, Message, Runtime
from tedchat.session import Turn, run_turn
from tedchat.tui.widgets.status_bar import StatusLine
from tedchat_http import SETTINGS
from tedchat_http.engine import HttpEngine
from tests.http.fault_server import FaultServer


class Bar(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusLine()


async def test_status_bar_shows_llama_server_prompt_cache_and_draft_figures() -> None:
    with FaultServer() as server:
        settings = {**SETTINGS, "base_url": server.url("llamaserverdraft")}
        engine = HttpEngine("srv", settings, Runtime(threads=1))
        await engine.load()
        try:
            result = await run_turn(
                Turn(engine, [Message("user", "hi")], GenerationParams(max_tokens=16))
            )
        finally:
            await engine.close()
    app = Bar()
    async with app.run_test(size=(160, 3)) as pilot:
        bar = app.query_one(StatusLine)
        bar.set_engine("srv", "fault-model")
        bar.show_figures(result.metrics)
        await pilot.pause()
        text = bar.figures_text
    assert "prompt 400 tok/s" in text
    assert "20 cached" in text
    assert "draft 7/10 accepted (70%)" in text
