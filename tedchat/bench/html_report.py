"""The HTML report of a bench record: one self-contained file (inline CSS and SVG, no scripts,
no external assets), so it can be mailed, attached to an issue or opened offline.

It shows what the terminal report shows — the tables and the bar charts — plus a chart pair per
prompt, the engines' (redacted) settings, the machine and the versions.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tedchat.bench.charts import (
    EMULATED_COLOUR,
    MEASURED_COLOUR,
    engine_charts,
    prompt_charts,
    svg_bars,
)
from tedchat.bench.report import engine_rows, header_lines, note_lines, table_cells

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Hiragino Sans", "Noto Sans JP",
  sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #111827; }
h1 { font-size: 1.4rem; margin-bottom: .3rem; }
h2 { font-size: 1.1rem; margin-top: 2rem; border-bottom: 1px solid #e5e7eb; }
.meta { color: #4b5563; margin: .15rem 0; }
.incomplete { background: #fef2f2; border: 1px solid #dc2626; color: #991b1b; padding: .5rem .8rem;
  border-radius: 4px; font-weight: 600; }
.notes li.error { color: #b91c1c; }
table { border-collapse: collapse; margin: .5rem 0; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e5e7eb; text-align: right;
  white-space: nowrap; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
th { background: #f9fafb; }
svg { display: block; margin: 1rem 0; max-width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: #111827; }
svg .title { font-weight: 600; font-size: 13px; }
svg .sub { font-weight: 400; fill: #6b7280; }
svg .range { stroke: #111827; stroke-width: 1.2; fill: none; }
.legend span { display: inline-block; width: .9em; height: .9em; vertical-align: -.1em;
  margin: 0 .3em 0 1em; border-radius: 2px; }
pre { background: #f9fafb; padding: .6rem; overflow-x: auto; font-size: 12px; }
details { margin: .4rem 0; }
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(record: Mapping[str, Any]) -> str:
    """The whole report as one HTML document."""
    esc = html.escape
    summary = record["summary"]
    lines = header_lines(record)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>tedchat bench · {esc(', '.join(record['config']['engines']))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>tedchat bench</h1>",
    ]
    for line in lines:
        cls = "incomplete" if line.startswith("INCOMPLETE") else "meta"
        parts.append(f'<p class="{cls}">{esc(line)}</p>')
    parts.append(
        f'<p class="meta">started {esc(record["started_at"])}'
        f" · finished {esc(record.get('finished_at') or '-')}</p>"
    )
    notes = note_lines(record)
    if notes:
        items = "".join(
            f'<li class="{"error" if n.startswith("error") else ""}">{esc(n)}</li>' for n in notes
        )
        parts.append(f'<ul class="notes">{items}</ul>')

    parts.append(
        '<h2>Per engine</h2><p class="meta">Medians [min–max] over every measured run of '
        "every prompt; ratios are against the first engine.</p>"
    )
    parts.append(_table(*table_cells(engine_rows(record), "engine", "engine")))
    parts.append(
        f'<p class="legend"><span style="background:{MEASURED_COLOUR}"></span>measured here'
        f'<span style="background:{EMULATED_COLOUR}"></span>emulated hardware (virtual clock)'
        " · the thin line is the min–max range</p>"
    )
    for chart in engine_charts(summary):
        parts.append(svg_bars(chart))

    if summary["prompts"]:
        parts.append("<h2>Per prompt</h2>")
        parts.append(_table(*table_cells(summary["prompts"], "prompt", "prompt_id")))
        for prompt in record["prompts"]:
            charts = prompt_charts(summary, prompt["id"])
            if charts:
                parts.append(f"<h3>{esc(prompt['id'])}</h3>")
                parts.extend(svg_bars(c) for c in charts)

    parts.append("<h2>Prompts</h2>")
    for prompt in record["prompts"]:
        parts.append(
            f"<details><summary>{esc(prompt['id'])}</summary><pre>{esc(prompt['text'])}</pre>"
            "</details>"
        )
    parts.append("<h2>Engines, machine, versions</h2>")
    for engine in record["engines"]:
        shown = {k: v for k, v in engine.items() if k != "name"}
        parts.append(
            f"<details><summary>{esc(engine['name'])}</summary>"
            f"<pre>{esc(json.dumps(shown, ensure_ascii=False, indent=2))}</pre></details>"
        )
    for key in ("machine", "versions", "config"):
        parts.append(
            f"<details><summary>{key}</summary>"
            f"<pre>{esc(json.dumps(record[key], ensure_ascii=False, indent=2))}</pre></details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
