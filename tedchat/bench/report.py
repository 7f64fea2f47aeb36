"""The terminal report of a bench record: what ran, tables, bar charts, errors.

It reads only the record dict, so a saved JSON file reports exactly as it did when made.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from tedchat.bench.charts import engine_charts, format_ratio, text_width, unicode_bars


def fmt_ms(spread: Mapping[str, Any] | None) -> str:
    """A TTFT spread in ms: ``41 [38–47]`` (``p90 45`` from 10 runs on); ``-`` if none."""
    return _fmt_spread(spread, 1000.0, "{:.0f}" if _big(spread, 1000.0) else "{:.1f}")


def fmt_rate(spread: Mapping[str, Any] | None) -> str:
    """A tokens/s spread: ``151.2 [140.3–155.0]``; ``-`` if none."""
    return _fmt_spread(spread, 1.0, "{:.0f}" if _big(spread, 1.0, 1000) else "{:.1f}")


def _big(spread: Mapping[str, Any] | None, scale: float, limit: float = 100) -> bool:
    return spread is not None and spread["median"] * scale >= limit


def _fmt_spread(spread: Mapping[str, Any] | None, scale: float, pattern: str) -> str:
    if spread is None:
        return "-"
    text = pattern.format(spread["median"] * scale)
    if spread["n"] > 1:
        text += (
            f" [{pattern.format(spread['min'] * scale)}–{pattern.format(spread['max'] * scale)}]"
        )
    if spread.get("p90") is not None:
        text += f" p90 {pattern.format(spread['p90'] * scale)}"
    return text


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A plain text table; the first column left-aligned, the others right-aligned."""
    widths = [text_width(h) for h in headers]
    for row in rows:
        widths = [max(w, text_width(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            pad = " " * (w - text_width(cell))
            out.append(cell + pad if i < 2 else pad + cell)
        return "  ".join(out).rstrip()

    rule = "  ".join("─" * w for w in widths)
    return [line(headers), rule, *(line(r) for r in rows)]


def _tokens(row: Mapping[str, Any]) -> str:
    s = row["output_tokens"]
    if s is None:
        return "-"
    return f"{'~' if row.get('approximate_tokens') else ''}{s['median']:.0f}"


def _columns(rows: Sequence[Mapping[str, Any]]) -> tuple[bool, bool]:
    emulated = any(r.get("emulated") for r in rows)
    aggregate = any(r.get("aggregate_output_tokens_per_s") for r in rows)
    return emulated, aggregate


def table_cells(
    rows: Sequence[Mapping[str, Any]], first: str, first_key: str
) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of a summary table (shared by the terminal and HTML reports).

    ``first_key`` is ``engine`` (one row per engine, then its model) or ``prompt_id`` (one row
    per prompt and engine).
    """
    emulated, aggregate = _columns(rows)
    ratios = len({r["engine"] for r in rows}) > 1  # against itself, a ratio says nothing
    headers = [first, "engine" if first_key != "engine" else "model", "ok/runs"]
    headers += ["TTFT ms", "tok/s", "tokens"]
    if ratios:
        headers += ["tok/s vs 1st", "TTFT vs 1st"]
    if aggregate:
        headers.append("aggregate tok/s")
    if emulated:
        headers += ["emulated TTFT ms", "emulated tok/s"]
    table_rows = []
    for r in rows:
        second = r["engine"] if first_key != "engine" else r.get("model", "")
        cells = [str(r[first_key]), str(second), f"{r['ok']}/{r['runs']}"]
        cells += [fmt_ms(r["ttft_s"]), fmt_rate(r["output_tokens_per_s"]), _tokens(r)]
        if ratios:
            cells += [
                format_ratio(r["ratio_output_tokens_per_s"]),
                format_ratio(r["ratio_ttft_s"]),
            ]
        if aggregate:
            cells.append(fmt_rate(r.get("aggregate_output_tokens_per_s")))
        if emulated:
            e = r.get("emulated") or {}
            cells += [fmt_ms(e.get("ttft_s")), fmt_rate(e.get("output_tokens_per_s"))]
        table_rows.append(cells)
    return headers, table_rows


def engine_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The summary's per-engine rows, each with its engine's model."""
    models = {e["name"]: e.get("model") or "" for e in record["engines"]}
    return [{**r, "model": models.get(r["engine"], "")} for r in record["summary"]["engines"]]


def _gib(n: int | None) -> str:
    return "? GiB" if n is None else f"{n / 2**30:.1f} GiB"


def header_lines(record: Mapping[str, Any]) -> list[str]:
    """What ran and where: the lines above the tables."""
    c, m = record["config"], record["machine"]
    temp = "model default" if c["temperature"] is None else f"{c['temperature']:g}"
    lines = []
    if record["incomplete"]:
        lines.append(f"INCOMPLETE: {record.get('incomplete_reason') or 'stopped early'}")
    lines.append(
        f"tedchat bench · {', '.join(c['engines'])} · {len(record['prompts'])} prompt(s) "
        f"x {c['runs']} run(s) (+{c['warmup']} warm-up) · max {c['max_tokens']} tokens · "
        f"temperature {temp} · seed {c['seed'] if c['seed'] is not None else '-'} · "
        f"concurrency {c['concurrency']}"
    )
    load = m.get("load_average")
    lines.append(
        f"machine: {m.get('cpu_model') or '?'} · {m.get('usable_cores') or '?'} of "
        f"{m.get('cores') or '?'} cores · {_gib(m.get('memory_bytes'))} · {m.get('os')}"
        + (f" · load {load[0]:.2f}" if load else "")
    )
    return lines


def note_lines(record: Mapping[str, Any]) -> list[str]:
    """Prompt cache, load failures and run errors: what qualifies the figures."""
    lines = []
    engines = record["engines"]
    cleared = [e["name"] for e in engines if e.get("cache_cleared")]
    not_cleared = [e for e in engines if e.get("cache_cleared") is False]
    if cleared:
        lines.append(f"prompt cache cleared before every run: {', '.join(cleared)}")
    for e in not_cleared:
        lines.append(
            f"prompt cache NOT cleared for {e['name']} ({e.get('cache_note') or 'unknown'}): "
            "repeated prompts may have been served partly from cache"
        )
    for e in engines:
        if e.get("load_error"):
            lines.append(f"error: {e['name']} did not load: {e['load_error']}")
    for row in record["summary"]["engines"]:
        if row["errors"] or row["warmup_errors"]:
            detail = "; ".join(
                f"{m['message']}" + (f" (x{m['count']})" if m["count"] > 1 else "")
                for m in row["error_messages"]
            )
            lines.append(
                f"error: {row['engine']}: {row['errors']} of {row['runs']} runs failed"
                + (f" (+{row['warmup_errors']} warm-up)" if row["warmup_errors"] else "")
                + f": {detail}"
            )
    return lines


def render_text(record: Mapping[str, Any], width: int | None = None) -> str:
    """The whole terminal report."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    summary = record["summary"]
    out = header_lines(record)
    out.append("")
    out.append("Per engine (every prompt; medians [min–max]):")
    out += format_table(*table_cells(engine_rows(record), "engine", "engine"))
    if summary["prompts"]:
        out.append("")
        out.append("Per prompt:")
        out += format_table(*table_cells(summary["prompts"], "prompt", "prompt_id"))
    charts = engine_charts(summary)
    bar_w = max(10, min(50, width - 60))
    for chart in charts:
        out.append("")
        out += unicode_bars(chart, bar_w)
    notes = note_lines(record)
    if notes:
        out.append("")
        out += notes
    return "\n".join(out) + "\n"
