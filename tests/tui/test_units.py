"""Fast tests of the TUI's pure parts: context trimming, stored figures, themes,
code blocks, the compare summary, the settings parser and the key binding list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.binding import Binding

from tedchat import paths
from tedchat.conversation import (
    build_messages,
    context_budget,
    conversation_from_store,
    engine_context_tokens,
    estimate_tokens,
    params_from_dict,
    params_to_dict,
)
from tedchat.engine import Capabilities, EmulatedTimings, GenerationParams
from tedchat.errors import ConfigError
from tedchat.history.store import Store
from tedchat.metrics import StreamMeter, StreamMetrics, format_metrics_line
from tedchat.tui import themes
from tedchat.tui.screens.help import binding_rows, unknown_keymap_ids
from tedchat.tui.screens.params import parse_params
from tedchat.tui.widgets.compare_summary import PaneResult, summary_table, time_to_last_token
from tedchat.tui.widgets.messages import code_blocks
from tedchat.tui.widgets.status_bar import figures_content

# --- context trimming ------------------------------------------------------------------------


def test_build_messages_keeps_everything_that_fits() -> None:
    built = build_messages("be brief", [("hi", "hello")], "and now?", budget_tokens=1000)
    assert [(m.role, m.content) for m in built.messages] == [
        ("system", "be brief"),
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "and now?"),
    ]
    assert built.dropped_exchanges == 0 and built.fits


def test_build_messages_drops_the_oldest_whole_exchanges_first() -> None:
    history = [("a" * 400, "b" * 400), ("c" * 40, "d" * 40), ("e" * 40, "f" * 40)]
    # 400 chars = 100 tokens (+4 each message): the first exchange alone is over budget.
    built = build_messages("", history, "new", budget_tokens=80)
    contents = [m.content for m in built.messages]
    assert built.dropped_exchanges == 1
    assert contents == ["c" * 40, "d" * 40, "e" * 40, "f" * 40, "new"]
    assert built.estimated_tokens <= 80 and built.fits


def test_build_messages_always_sends_system_and_prompt_and_says_when_they_do_not_fit() -> None:
    built = build_messages("s" * 400, [("x", "y")], "p" * 400, budget_tokens=10)
    assert [m.role for m in built.messages] == ["system", "user"]
    assert built.dropped_exchanges == 1
    assert not built.fits


def test_estimate_and_budget() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert context_budget(4096, 1024) == 3072
    assert context_budget(4096, 4000) == 2048  # half stays for the prompt


class _Declared:
    """An engine that declares ``capabilities`` (or, given None, sets none: an older plugin)."""

    name, type = "e", "t"

    def __init__(self, capabilities: Capabilities | None) -> None:
        if capabilities is not None:
            self.capabilities = capabilities

    def describe(self) -> dict[str, object]:
        return {"n_ctx": 999}  # describe() is for display: never read for the context


def test_engine_context_tokens_uses_what_the_engine_declares() -> None:
    assert engine_context_tokens(_Declared(Capabilities(context_size=2048)), 8192) == (2048, True)  # type: ignore[arg-type]
    assert engine_context_tokens(_Declared(Capabilities()), 8192) == (8192, False)  # type: ignore[arg-type]
    assert engine_context_tokens(_Declared(None), 8192) == (8192, False)  # type: ignore[arg-type]


# --- figures through the history store -------------------------------------------------------


def test_stored_reply_shows_the_same_figures_line_as_live(tmp_path: Path) -> None:
    meter = StreamMeter()
    meter.start(0.0)
    from tedchat.engine import Done, TextDelta, Usage

    for i, t in enumerate([0.1, 0.2, 0.3, 0.4]):
        meter.observe(TextDelta(f"t{i}", tokens=1), t)
    meter.observe(Usage(prompt_tokens=5, output_tokens=4), 0.41)
    meter.observe(
        EmulatedTimings(
            hardware="CS-3",
            systems=4,
            ttft_s=0.01,
            output_tokens_per_s=2000.0,
            speculative={
                "mode": "prompt-lookup",
                "draft_tokens": 4,
                "drafted": 20,
                "accepted": 15,
                "acceptance_rate": 0.75,
                "tokens_per_step": 3.5,
            },
        ),
        0.41,
    )
    meter.observe(Done("stop"), 0.42)
    live = meter.snapshot()
    with Store.open(tmp_path / "h.db") as store:
        cid = store.new_conversation(None, "sys", params_to_dict(GenerationParams(temperature=0)))
        mid = store.add_user_message(cid, "question")
        writer = store.begin_reply(cid, mid, "e", "m")
        writer.append("t0t1t2t3")
        writer.finish("stop", live)
        conv = conversation_from_store(store.get_conversation(cid))
    assert conv.system == "sys" and conv.params.temperature == 0.0
    [exchange] = conv.exchanges
    assert exchange.prompt == "question" and exchange.reply is not None
    assert exchange.reply.text == "t0t1t2t3"
    assert exchange.reply.metrics is not None
    assert format_metrics_line(exchange.reply.metrics) == format_metrics_line(live)
    assert "emulated 4x CS-3" in format_metrics_line(exchange.reply.metrics)
    # The status bar's emulated part carries the speculation, stored replies included.
    shown = figures_content(exchange.reply.metrics).plain
    assert "◆ emulated 4x CS-3" in shown
    assert "prompt-lookup k=4: 15/20 accepted (75%), 3.5 tok/step" in shown


def test_params_round_trip_and_ignore_junk() -> None:
    params = GenerationParams(max_tokens=7, temperature=0.2, top_p=0.5, seed=3, stop=("x",))
    assert params_from_dict(json.loads(json.dumps(params_to_dict(params)))) == params
    assert params_from_dict({"max_tokens": "many", "bogus": 1}) == GenerationParams()
    assert params_from_dict({"temperature": None, "top_p": 1}).top_p == 1.0


# --- themes ------------------------------------------------------------------------------------


def test_shipped_themes_load_and_are_complete() -> None:
    found = themes.discover_themes([paths.resource_path("themes")])
    assert not found.problems
    assert {"tokyo-electron", "cerebras-dark", "light"} <= set(found.themes)
    assert found.themes["light"].dark is False
    assert found.themes["tokyo-electron"].accent == "#E60012"
    for theme in found.themes.values():
        theme.to_color_system()  # every colour parses


def test_a_bad_theme_file_is_reported_by_name_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text('primary = "#112233"\n')
    (tmp_path / "typo.toml").write_text('primary = "#112233"\nprimry = "#000000"\n')
    (tmp_path / "broken.toml").write_text("primary = \n")
    (tmp_path / "color.toml").write_text('primary = "not-a-colour"\n')
    found = themes.discover_themes([tmp_path])
    assert set(found.themes) == {"good"}  # name defaults to the file's stem
    problems = "\n".join(found.problems)
    assert "typo.toml" in problems and "primry" in problems
    assert "broken.toml" in problems and "color.toml" in problems
    # One error hierarchy: a theme file's error is a config error (and still a ValueError).
    with pytest.raises(ConfigError, match="primry") as info:
        themes.theme_from_toml(tmp_path / "typo.toml")
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_user_themes_override_shipped_ones(tedchat_home: Path) -> None:
    user = paths.config_dir() / "themes"
    user.mkdir(parents=True)
    (user / "light.toml").write_text('name = "light"\nprimary = "#ff0000"\ndark = false\n')
    found = themes.discover_themes()
    assert found.themes["light"].primary == "#ff0000"


def test_theme_choice_precedence(tedchat_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert themes.choose_theme(None, "tokyo-electron") == "tokyo-electron"
    themes.remember("theme", "light")
    assert json.loads(themes.ui_state_path().read_text())["theme"] == "light"
    assert themes.choose_theme(None, "tokyo-electron") == "light"  # remembered > config
    assert themes.choose_theme("cerebras-dark", "tokyo-electron") == "cerebras-dark"
    monkeypatch.setenv("TEDCHAT_THEME", "cerebras-dark")  # settings then hold the env's value
    assert themes.choose_theme(None, "cerebras-dark") == "cerebras-dark"
    themes.ui_state_path().write_text("{not json")
    monkeypatch.delenv("TEDCHAT_THEME")
    assert themes.choose_theme(None, "tokyo-electron") == "tokyo-electron"


# --- small parts of the screens -------------------------------------------------------------


def test_code_blocks() -> None:
    text = "x\n```python\nprint(1)\nprint(2)\n```\ny\n~~~\nraw\n~~~\n```\nopen"
    assert code_blocks(text) == ["print(1)\nprint(2)", "raw"]


def _metrics(
    ttft: float | None, tps: float | None, n: int, source: str = "engine"
) -> StreamMetrics:
    return StreamMetrics(ttft, n, source, tps, 1.0, None, None, 0, "stop")


def test_summary_marks_the_winner_of_each_figure_and_crowns_no_token_count() -> None:
    table = summary_table(
        [
            PaneResult("a", "m", _metrics(0.100, 50.0, 10), 0.5),
            PaneResult("b", "m", _metrics(0.300, 80.0, 99, "chunks"), 0.4),
        ]
    )
    columns = {c.header: [str(cell) for cell in c._cells] for c in table.columns}
    assert columns["TTFT"] == ["★ 100 ms", "300 ms"]
    assert columns["tok/s"] == ["50.0", "★ ~80.0"]
    assert columns["to last token"] == ["0.50 s", "★ 0.40 s"]
    assert columns["tokens"] == ["10", "~99"]


def test_summary_with_one_figure_missing_crowns_nobody_for_it() -> None:
    table = summary_table(
        [
            PaneResult("a", "m", _metrics(None, None, 0), None),
            PaneResult("b", "m", _metrics(0.2, 10.0, 5), 0.3),
        ]
    )
    columns = {c.header: [str(cell) for cell in c._cells] for c in table.columns}
    assert columns["TTFT"] == ["-", "200 ms"]


def test_time_to_last_token_comes_from_the_meter() -> None:
    meter = StreamMeter()
    assert time_to_last_token(meter) is None
    from tedchat.engine import TextDelta

    meter.start(1.0)
    meter.observe(TextDelta("a"), 1.5)
    meter.observe(TextDelta("b"), 2.25)
    assert time_to_last_token(meter) == 1.25


def test_parse_params_names_the_bad_field() -> None:
    base = GenerationParams()
    good = parse_params(base, "64", "0", "0.9", "")
    assert (good.max_tokens, good.temperature, good.top_p, good.seed) == (64, 0.0, 0.9, None)
    model_own = parse_params(base, "8", "", " ", "7")
    assert (model_own.temperature, model_own.top_p, model_own.seed) == (None, None, 7)
    for args, field in [
        (("0", "0", "1", ""), "max tokens"),
        (("8", "hot", "1", ""), "temperature"),
        (("8", "3", "1", ""), "temperature"),
        (("8", "0", "1.5", ""), "top p"),
        (("8", "0", "1", "-1"), "seed"),
    ]:
        with pytest.raises(ValueError, match=field):
            parse_params(base, *args)


def test_every_binding_has_an_id_and_ids_are_unique_per_screen() -> None:
    from tedchat.tui.app import binding_owners

    for _where, owner in binding_owners():
        bindings = [b for b in owner.__dict__.get("BINDINGS", []) if isinstance(b, Binding)]
        assert bindings, owner
        for binding in bindings:
            assert binding.id, f"{owner.__name__} binding {binding.key} has no id"
        ids = [b.id for b in bindings]
        assert len(ids) == len(set(ids)), owner


def test_help_rows_apply_the_keymap_and_typos_are_found() -> None:
    from tedchat.tui.app import binding_owners

    rows = binding_rows(binding_owners(), {"regenerate": "ctrl+g"})
    by_id = {row[1]: row for row in rows}
    assert by_id["regenerate"][2] == "ctrl+g"
    assert by_id["send"][2] == "enter"
    assert unknown_keymap_ids(binding_owners(), {"regenerate": "x", "regenrate": "y"}) == [
        "regenrate"
    ]
