"""The context gauge and the cost in the status bar: the real llama.cpp engine's own count
(the bundled model) against the prompt tokens it reports; the estimate (``~``) for an engine
without a tokenizer; a cost only for engines with prices."""

from __future__ import annotations

import re

from tedchat.engine import GenerationParams
from tedchat.gauges import format_usd
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.widgets.compare_pane import ComparePane
from tedchat.tui.widgets.status_bar import StatusLine

from .conftest import answered, send, wait_for

GREEDY = GenerationParams(max_tokens=12, temperature=0.0)
GAUGE = re.compile(r"ctx (~?)([\d,]+)/([\d,]+)(\??)")


def gauge(status: StatusLine) -> tuple[bool, int, int]:
    """(exact, used, size) from the status bar's text."""
    match = GAUGE.search(status.gauges_text)
    assert match, status.gauges_text
    return match[1] == "", int(match[2].replace(",", "")), int(match[3].replace(",", ""))


async def test_the_gauge_counts_like_the_real_llamacpp_engine(make_app) -> None:
    app = make_app(engine="local", params=GREEDY)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.chat_screen()
        for prompt in ("What is the capital of France?", "東京はどこの国の首都ですか？"):
            await send(pilot, prompt)
            await answered(pilot, timeout=120)
            exact, used, size = gauge(screen.status)
            reported = screen.conversation.exchanges[-1].reply.metrics.prompt_tokens
            assert exact and size == 4096
            assert reported and abs(used - reported) <= 0.02 * reported, (used, reported)
        assert "$" not in screen.status.gauges_text  # no prices: no cost


PRICED = """
[engines.priced]
type = "scripted"
model = "script-priced"
text = "Paid answer."
virtual = true
count = "usage"
price_input_per_mtok = 3.0
price_output_per_mtok = 15.0
"""


async def test_without_a_tokenizer_the_gauge_is_an_estimate_and_no_cost_shows(make_app) -> None:
    app = make_app(engine="fast")
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.chat_screen()
        await send(pilot, "x" * 400)
        await answered(pilot)
        exact, used, size = gauge(screen.status)
        assert not exact and used == 100 + 4  # 400 characters / 4, and the message overhead
        assert size == 8192 and "8,192?" in screen.status.gauges_text  # [ui] context_tokens
        assert "$" not in screen.status.gauges_text


async def test_a_priced_engine_shows_the_reply_cost(make_app) -> None:
    app = make_app(PRICED, engine="priced")
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.chat_screen()
        await send(pilot, "hello")
        await answered(pilot)
        m = screen.conversation.exchanges[-1].reply.metrics
        expected = (m.prompt_tokens or 0) * 3.0 / 1e6 + m.output_tokens * 15.0 / 1e6
        assert expected > 0
        assert screen.status.gauges_text.endswith(f"· {format_usd(expected)}")


async def test_the_compare_summary_has_a_cost_column_only_with_prices(make_app) -> None:
    from tedchat.tui.widgets.compare_summary import CompareSummary, summary_table

    def columns(app) -> list[str]:
        table = summary_table(app.screen.query_one(CompareSummary).results)
        return [str(c.header) for c in table.columns]

    app = make_app(PRICED, compare=["priced", "frozen"])
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await send(pilot, "go")
        await answered(pilot)
        await wait_for(pilot, lambda: app.screen.query_one(CompareSummary).has_class("-shown"))
        assert "cost" in columns(app)
        results = app.screen.query_one(CompareSummary).results
        assert results[0].cost is not None and results[1].cost is None
        panes = list(app.screen.query(ComparePane))
        assert "$" in panes[0].status.gauges_text and "$" not in panes[1].status.gauges_text
        assert "ctx ~" in panes[1].status.gauges_text

    app = make_app(compare=["fast", "frozen"])
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await send(pilot, "go")
        await answered(pilot)
        await wait_for(pilot, lambda: app.screen.query_one(CompareSummary).has_class("-shown"))
        assert "cost" not in columns(app)


def test_usd_amounts_are_readable() -> None:
    assert [format_usd(x) for x in (1234.5, 0.0123456, 0.000051, 0.0)] == [
        "$1,234.50",
        "$0.0123",
        "$0.000051",
        "$0.000000",
    ]
