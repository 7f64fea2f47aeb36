"""The pure parts of bench: statistics, charts, schema validation, prompts, reports."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tedchat.bench.charts import (
    EIGHTHS,
    FULL,
    Bar,
    Chart,
    block_bar,
    svg_bars,
    text_width,
    unicode_bars,
)
from tedchat.bench.html_report import render_html
from tedchat.bench.progress import Progress
from tedchat.bench.prompts import (
    BUILTIN_PROMPTS,
    REFERENCE_QUESTION,
    Prompt,
    load_prompts,
)
from tedchat.bench.record import BenchRecord, write_csv
from tedchat.bench.report import render_text
from tedchat.bench.runner import Step
from tedchat.bench.schema import RECORD_SCHEMA, validate
from tedchat.bench.stats import percentile, spread, summarize
from tedchat.errors import UsageError

# --- statistics ----------------------------------------------------------------------------


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile(list(map(float, range(1, 11))), 90) == pytest.approx(9.1)


def test_spread_has_p90_only_from_ten_values_and_skips_missing() -> None:
    nine = spread([5.0, None, 1.0, 3.0, 2.0, 4.0, 9.0, 8.0, 7.0, 6.0])
    assert nine is not None
    assert (nine.n, nine.median, nine.min, nine.max, nine.p90) == (9, 5.0, 1.0, 9.0, None)
    ten = spread([float(v) for v in range(1, 11)])
    assert ten is not None and ten.p90 == pytest.approx(9.1)
    assert spread([None, None]) is None


def run(engine: str, prompt: str, ttft: float, rate: float, **extra: Any) -> dict[str, Any]:
    return {
        "engine": engine,
        "prompt_id": prompt,
        "phase": "measured",
        "ttft_s": ttft,
        "output_tokens_per_s": rate,
        "output_tokens": 10,
        "output_tokens_source": "engine",
        "finish_reason": "length",
        "error": None,
        **extra,
    }


def test_summary_ratios_are_against_the_first_engine_and_errors_are_counted() -> None:
    runs = [
        run("a", "p", 0.10, 100.0),
        run("a", "p", 0.30, 120.0),
        run("b", "p", 0.05, 300.0),
        run("b", "p", 0.05, 0.0, error="boom", finish_reason="error"),
        run("b", "p", 9.99, 1.0, phase="warmup"),  # warm-up: not in the figures
    ]
    summary = summarize(runs, [], ["a", "b"], ["p"])
    a, b = summary["engines"]
    assert summary["baseline"] == "a"
    assert a["ttft_s"]["median"] == pytest.approx(0.2) and a["ratio_ttft_s"] == 1.0
    assert b["ttft_s"] == {"n": 1, "median": 0.05, "min": 0.05, "max": 0.05, "p90": None}
    assert b["ratio_output_tokens_per_s"] == pytest.approx(300 / 110)
    assert b["ratio_ttft_s"] == pytest.approx(0.25)
    assert (b["runs"], b["ok"], b["errors"]) == (2, 1, 1)
    assert b["error_messages"] == [{"message": "boom", "count": 1}]
    assert summary["prompts"][1]["ratio_ttft_s"] == pytest.approx(0.25)


# --- charts --------------------------------------------------------------------------------


def test_block_bars_have_eighth_cell_resolution() -> None:
    assert block_bar(10, 10, 4) == FULL * 4
    assert block_bar(5, 10, 4) == FULL * 2
    assert block_bar(10.0 / 32 * 3, 10, 4) == EIGHTHS[3]  # 3/8 of one cell
    assert block_bar(1e-9, 10, 4) == EIGHTHS[1]  # never invisible
    assert block_bar(0, 10, 4) == ""


def test_unicode_chart_scales_to_the_largest_bar_and_aligns_wide_labels() -> None:
    chart = Chart(
        "Output tokens/s",
        "tok/s",
        (Bar("local", 50.0, 40.0, 60.0, note="x1.00"), Bar("ウェハー", 100.0, emulated=True)),
        True,
    )
    title, first, second = unicode_bars(chart, width=20)
    assert "higher is better" in title
    assert first.count(FULL) == 10 and second.count(FULL) == 20
    assert "50.0 tok/s (40.0–60.0) x1.00" in first
    # ウェハー is 4 characters but 8 cells wide: the bars start in the same terminal column
    assert text_width(first.split("│")[0]) == text_width(second.split("│")[0]) == 11


def test_svg_chart_escapes_labels() -> None:
    svg = svg_bars(Chart("T<1>", "ms", (Bar("<b>&", 3.0, 1.0, 5.0),), False))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and "T&lt;1&gt;" in svg


# --- a whole record ------------------------------------------------------------------------


def sample_record(incomplete: bool = False) -> dict[str, Any]:
    prompts = [Prompt("reference", REFERENCE_QUESTION), Prompt("ja", "<日本語>")]
    engines = []
    for name in ("local", "wafer"):
        engines.append(
            {
                "name": name,
                "type": "llamacpp" if name == "local" else "wafer",
                "model": "smollm2",
                "local": True,
                "plugin": "p",
                "origin": "default",
                "settings": {"model": "smollm2"},
                "details": None,
                "load_s": 0.5,
                "load_error": None,
                "cache_cleared": name == "local",
                "cache_note": None if name == "local" else "the engine has no reset_cache()",
            }
        )
    record = BenchRecord(
        config={
            "engines": ["local", "wafer"],
            "prompts": "builtin",
            "runs": 2,
            "warmup": 0,
            "max_tokens": 8,
            "temperature": 0.0,
            "top_p": None,
            "seed": None,
            "concurrency": 1,
        },
        prompts=prompts,
        engines=engines,
    )
    batch = 0
    for rnd in (1, 2):
        for prompt in prompts:
            for name in ("local", "wafer"):
                r = run(name, prompt.id, 0.1 * rnd, 50.0 * rnd)
                r.update(
                    model="smollm2",
                    round=rnd,
                    batch=batch,
                    slot=0,
                    started_at="2026-01-01T00:00:00.000+00:00",
                    cache_cleared=name == "local",
                    text="x",
                    prompt_tokens=5,
                    elapsed_s=0.5,
                    timings={},
                    token_ids=None,
                )
                if name == "wafer":
                    r["emulated"] = {
                        "hardware": "CS-3",
                        "systems": 1,
                        "timing_target": None,
                        "ttft_s": 0.001,
                        "output_tokens_per_s": 1800.0,
                        "breakdown": {"sram": 0.1},
                        "replay": False,
                    }
                record.runs.append(r)
                batch += 1
    record.finish("stopped in a test" if incomplete else None)
    return record.to_dict()


def test_sample_record_is_valid_and_the_validator_finds_what_is_wrong() -> None:
    good = sample_record()
    assert validate(good) == []
    json.dumps(good, allow_nan=False)  # plain JSON

    bad = copy.deepcopy(good)
    del bad["machine"]
    bad["runs"][0]["ttft_s"] = "fast"
    bad["runs"][1]["output_tokens"] = True  # a bool is not an integer in JSON
    bad["runs"][2]["phase"] = "cooldown"
    bad["summary"]["engines"][0]["ttft_s"]["n"] = 0
    bad["surprise"] = 1
    problems = validate(bad)
    assert "$: 'machine' is a required property" in problems
    assert "$: Additional properties are not allowed ('surprise' was unexpected)" in problems
    assert "$.runs[0].ttft_s: 'fast' is not of type 'number', 'null'" in problems
    assert "$.runs[1].output_tokens: True is not of type 'integer'" in problems
    assert any(p.startswith("$.runs[2].phase: 'cooldown' is not one of") for p in problems)
    assert "$.summary.engines[0].ttft_s.n: 0 is less than the minimum of 1" in problems
    assert len(problems) == 6


def test_schema_is_plain_json_and_lists_every_top_level_key_of_a_record() -> None:
    json.dumps(RECORD_SCHEMA)
    assert set(RECORD_SCHEMA["required"]) == set(sample_record())


def test_terminal_report_has_tables_charts_emulated_figures_and_cache_notes() -> None:
    text = render_text(sample_record(), width=100)
    assert "Per engine" in text and "Per prompt" in text
    assert "Output tokens/s (median)" in text and "Time to first token (median)" in text
    assert "wafer · 1x CS-3 (emulated)" in text  # emulated bar beside the measured one
    assert "emulated tok/s" in text and "1800" in text
    assert "prompt cache cleared before every run: local" in text
    assert "prompt cache NOT cleared for wafer" in text
    assert FULL in text
    assert "INCOMPLETE: stopped in a test" in render_text(sample_record(incomplete=True))


def test_html_report_is_self_contained() -> None:
    page = render_html(sample_record(incomplete=True))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") >= 2 + 2 * 2  # engine charts, then a pair per prompt
    for external in ("<script", "<link", "src=", "href=", "url(", "@import"):
        assert external not in page
    assert "&lt;日本語&gt;" in page and "<日本語>" not in page
    assert 'class="incomplete"' in page


def test_csv_has_one_row_per_run(tmp_path: Path) -> None:
    data = sample_record()
    write_csv(data, tmp_path / "runs.csv")
    lines = (tmp_path / "runs.csv").read_text().splitlines()
    assert lines[0].startswith("engine,model,prompt_id,phase")
    assert len(lines) == 1 + len(data["runs"])
    # emulated figures in their own columns (no speculation here: no acceptance rate)
    assert lines[2].split(",")[-2:] == ["1800.0", ""]


# --- prompts -------------------------------------------------------------------------------


def test_builtin_prompts_cover_reference_short_long_and_japanese() -> None:
    ids = [p.id for p in BUILTIN_PROMPTS]
    assert len(set(ids)) == len(ids)
    assert BUILTIN_PROMPTS[0].text == REFERENCE_QUESTION
    japanese = [p for p in BUILTIN_PROMPTS if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", p.text)]
    assert len(japanese) >= 2
    lengths = sorted(len(p.text) for p in BUILTIN_PROMPTS)
    assert lengths[0] < 60 and lengths[-1] > 1000
    assert [p.id for p in load_prompts("builtin:short-ja,reference")] == ["short-ja", "reference"]


def test_prompt_files_and_bad_specs(tmp_path: Path) -> None:
    text = tmp_path / "prompts.txt"
    text.write_text("# a comment\nfirst\n\nsecond  \n", encoding="utf-8")
    assert load_prompts(str(text)) == [Prompt("p1", "first"), Prompt("p2", "second")]
    data = tmp_path / "prompts.json"
    data.write_text(json.dumps(["plain", {"id": "sys", "prompt": "hi", "system": "Be brief."}]))
    assert load_prompts(str(data)) == [Prompt("p1", "plain"), Prompt("sys", "hi", "Be brief.")]
    for spec, message in (
        ("builtin:nope", "unknown built-in prompt nope"),
        (str(tmp_path / "missing.txt"), "prompt file not found"),
    ):
        with pytest.raises(UsageError, match=message):
            load_prompts(spec)
    data.write_text(json.dumps([{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}]))
    with pytest.raises(UsageError, match="duplicate prompt ids"):
        load_prompts(str(data))
    data.write_text(json.dumps([{"prompt": ""}]))
    with pytest.raises(UsageError, match="prompt 1 must be"):
        load_prompts(str(data))


# --- progress ------------------------------------------------------------------------------


def test_progress_is_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(runs=3, stream=out, tty=False)
    step = Step("measured", 2, Prompt("reference", "q"), "local")
    progress.step_started(4, 10, step)
    r = run("local", "reference", 0.0412, 151.23)
    progress.step_done(4, 10, step, [r])
    progress.step_done(5, 10, step, [{**r, "error": "boom"}])
    assert out.getvalue().splitlines() == [
        "[4/10] local · reference · run 2/3: TTFT 41 ms · 151.2 tok/s · 10 tokens",
        "[5/10] local · reference · run 2/3: failed: boom",
    ]
    assert "\r" not in out.getvalue()


def test_progress_redraws_one_line_on_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(runs=1, stream=out, tty=True)
    step = Step("warmup", 1, Prompt("p", "q"), "local")
    progress.step_started(1, 2, step)
    progress.step_done(1, 2, step, [run("local", "p", 0.01, 10.0)])
    progress.close()
    assert "\n" not in out.getvalue() and out.getvalue().count("\r\x1b[2K") == 3
    assert "1/2 · local · p · warm-up" in out.getvalue()


def test_readme_documents_every_field_of_the_record() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Benchmarking engines")[1].split("\n## ")[0]
    schema = RECORD_SCHEMA
    defs = schema["$defs"]
    keys = set(schema["properties"])
    for part in ("config", "machine", "versions", "summary"):
        keys |= set(schema["properties"][part]["required"])
    keys |= set(defs["run"]["properties"]) | set(defs["batch"]["properties"])
    keys |= set(defs["engine"]["properties"]) | set(defs["summary_row"]["properties"])
    missing = sorted(k for k in keys if f"`{k}`" not in section and f"`{k}[]`" not in section)
    assert not missing, f"README's bench section does not mention: {missing}"


def test_a_runs_prompt_cache_and_draft_figures_are_in_the_schema() -> None:
    record = sample_record()
    record["runs"][0]["timings"] = {
        "prompt_eval_tokens_per_s": 400.0,
        "cached_prompt_tokens": 20.0,
        "draft_tokens": 10.0,
        "draft_accepted_tokens": 7.0,
        "draft_acceptance": 0.7,
    }
    assert validate(record) == []
    run_timings = RECORD_SCHEMA["$defs"]["run"]["properties"]["timings"]["properties"]
    assert {"cached_prompt_tokens", "draft_tokens", "draft_acceptance"} <= set(run_timings)
    record["runs"][0]["timings"]["draft_acceptance"] = 1.5
    record["runs"][1]["timings"] = {"cached_prompt_tokens": -1.0}
    problems = validate(record)
    assert "$.runs[0].timings.draft_acceptance: 1.5 is greater than the maximum of 1" in problems
    assert "$.runs[1].timings.cached_prompt_tokens: -1.0 is less than the minimum of 0" in problems
