"""The validation table: the timing model's predictions beside published figures.

Two kinds of row (``docs/hardware.md`` lists both):

- in sample: the public rows the fitted constants of :mod:`tedchat.wafer.hardware` were fitted
  on (their ``fitted_on`` names these ids);
- out of sample: published figures nothing was fitted on ("Published figures NOT to fit on").
  Where their configuration is not published (number of systems, draft model, acceptance),
  the prediction makes a stated assumption instead, always by the same rules: the fewest
  systems that hold the model (and its draft), and for speculative rows a Llama-3.1-8B draft
  at acceptance 0.7 with 4 drafted tokens (the issue's fixed values, not tuned).

Every prediction uses the same request as ``tedchat wafer plan``'s defaults (a 1,000-token
prompt, decode speed in the middle of a 256-token answer, 8,192 tokens of KV cache reserved,
16-bit weights, one sequence). ``tedchat wafer validate`` prints the table; ``docs/validation.md``
is :func:`render_markdown` of it (a test keeps them equal).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Literal

from tedchat.wafer.hardware import HARDWARE, get_hardware
from tedchat.wafer.placement import Placement, plan, plan_draft
from tedchat.wafer.shapes import get_shape
from tedchat.wafer.timing import TimingModel, project_speculative

Metric = Literal["decode_tokens_per_s", "ttft_s"]

#: The request every prediction assumes (``tedchat wafer plan``'s defaults).
CONTEXT = 8192
PROMPT_TOKENS = 1000
OUTPUT_TOKENS = 256
PRECISION = 16

_METRIC_UNITS: dict[str, str] = {"decode_tokens_per_s": "tok/s", "ttft_s": "s TTFT"}


@dataclass(frozen=True)
class Speculation:
    """The speculative decoding a prediction assumes (none of it published)."""

    draft_model: str | None  # a shape preset; None = prompt-lookup drafts
    acceptance: float
    draft_tokens: int

    def describe(self) -> str:
        draft = f"a {self.draft_model} draft" if self.draft_model else "prompt-lookup drafts"
        return (
            f"speculative decoding with {draft}, acceptance {self.acceptance:g}, "
            f"{self.draft_tokens} drafted tokens per step"
        )


#: The issue's fixed speculative assumption for rows whose draft and acceptance are unpublished.
ASSUMED_SPECULATION = Speculation("llama-3.1-8b", 0.7, 4)


@dataclass(frozen=True)
class PublishedRow:
    """One published figure and the configuration its prediction uses.

    ``systems`` None: the count is not published and the prediction takes the fewest that hold
    the model (and its draft). ``note`` adds what else the prediction assumes or leaves out.
    """

    id: str
    model: str
    shape: str
    hardware: str
    metric: Metric
    published: float
    date: str
    source: str
    in_sample: bool
    systems: int | None = None
    speculation: Speculation | None = None
    note: str = ""


ROWS: tuple[PublishedRow, ...] = (
    PublishedRow(
        "cs3-llama-3.1-8b-aug2024",
        "Llama 3.1 8B",
        "llama-3.1-8b",
        "cs3",
        "decode_tokens_per_s",
        1800.0,
        "Aug 2024",
        "Cerebras launch blog; Artificial Analysis",
        in_sample=True,
        systems=1,
    ),
    PublishedRow(
        "cs3-llama-3.1-70b-aug2024",
        "Llama 3.1 70B",
        "llama-3.1-70b",
        "cs3",
        "decode_tokens_per_s",
        450.0,
        "Aug 2024",
        "Cerebras at Hot Chips 2024",
        in_sample=True,
        systems=4,
    ),
    PublishedRow(
        "cs3-llama-3.1-70b-oct2024",
        "Llama 3.1 70B",
        "llama-3.1-70b",
        "cs3",
        "decode_tokens_per_s",
        2100.0,
        "Oct 2024",
        'Cerebras "3x faster" release; "How is Cerebras so fast?"',
        in_sample=False,
        speculation=ASSUMED_SPECULATION,
    ),
    PublishedRow(
        "cs3-llama-3.1-405b-nov2024",
        "Llama 3.1 405B",
        "llama-3.1-405b",
        "cs3",
        "decode_tokens_per_s",
        969.0,
        "Nov 2024",
        "Cerebras, reported by Tom's Hardware 2024-11-20",
        in_sample=False,
        note="public estimates of the count are ~19-22; no speculation assumed (none published)",
    ),
    PublishedRow(
        "cs3-llama-3.1-405b-nov2024-ttft",
        "Llama 3.1 405B",
        "llama-3.1-405b",
        "cs3",
        "ttft_s",
        0.24,
        "Nov 2024",
        "Cerebras, reported by Tom's Hardware 2024-11-20",
        in_sample=False,
        note="1,000-token prompt (not published); the published TTFT includes the API's "
        "network and queueing, which the model leaves out",
    ),
    PublishedRow(
        "cs3-llama-3.3-70b-2025",
        "Llama 3.3 70B",
        "llama-3.1-70b",
        "cs3",
        "decode_tokens_per_s",
        2314.0,
        "2025",
        "Artificial Analysis figures quoted by Cerebras",
        in_sample=False,
        speculation=ASSUMED_SPECULATION,
        note="Llama 3.3 70B has Llama 3.1 70B's shape",
    ),
    PublishedRow(
        "cs3-llama-3.3-70b-2025-ttft",
        "Llama 3.3 70B",
        "llama-3.1-70b",
        "cs3",
        "ttft_s",
        0.17,
        "2025",
        "Artificial Analysis figures quoted by Cerebras",
        in_sample=False,
        note="1,000-token prompt (not published); the published TTFT includes the API's "
        "network and queueing, which the model leaves out",
    ),
    PublishedRow(
        "bedrock-llama-3.3-70b-2025",
        "Llama 3.3 70B",
        "llama-3.1-70b",
        "h100",
        "decode_tokens_per_s",
        32.0,
        "2025",
        "Artificial Analysis figures quoted by Cerebras (Amazon Bedrock)",
        in_sample=False,
        note="H100s assumed (Bedrock's GPUs, stack and batch are not published); batch 1, no "
        "speculation",
    ),
)


def _place(row: PublishedRow) -> tuple[Placement, Placement | None, str]:
    """The target's placement (and the draft's, for a draft-model row) the prediction uses,
    and why more systems than the target needs alone, if so."""
    hw = get_hardware(row.hardware)
    shape = get_shape(row.shape)
    opts: dict[str, Any] = {"context": CONTEXT, "precision": PRECISION}
    target = plan(shape, hw, row.systems, **opts)
    if not target.fits:
        raise ValueError(f"{row.id}: {target.reason}")
    spec = row.speculation
    if spec is None or spec.draft_model is None:
        return target, None, ""
    draft = plan_draft(target, get_shape(spec.draft_model))
    why = ""
    if not draft.fits and row.systems is None and draft.min_systems is not None:
        why = draft.reason.split(";")[0]
        target = plan(shape, hw, draft.min_systems, **opts)
        draft = plan_draft(target, get_shape(spec.draft_model))
    if draft.placement is None:
        raise ValueError(f"{row.id}: {draft.reason}")
    return target, draft.placement, why


def predict(row: PublishedRow) -> tuple[float, int, str]:
    """(the timing model's figure for ``row``'s metric, systems used, why that many)."""
    target, draft, why = _place(row)
    model = TimingModel(target)
    prediction = model.predict(PROMPT_TOKENS, OUTPUT_TOKENS)
    if row.metric == "ttft_s":
        return prediction.ttft.total, target.n_systems, why
    if row.speculation is None:
        return prediction.decode_tokens_per_s, target.n_systems, why
    projection = project_speculative(
        model,
        row.speculation.acceptance,
        row.speculation.draft_tokens,
        prediction.decode_context,
        TimingModel(draft) if draft is not None else None,
    )
    return projection.tokens_per_s, target.n_systems, why


def _assumption(row: PublishedRow, systems: int, why: str) -> str:
    parts = []
    if row.systems is None:
        hw = get_hardware(row.hardware)
        held = "it and its draft" if row.speculation and row.speculation.draft_model else "it"
        parts.append(f"{systems} {hw.name} (the fewest that hold {held}; count not published)")
    if why:
        parts.append(why)
    if row.speculation is not None:
        parts.append(row.speculation.describe() + " (not published)")
    if row.note:
        parts.append(row.note)
    return "; ".join(parts)


def validation_rows() -> list[dict[str, Any]]:
    """Every row as a JSON-ready dict: model, hardware, systems, in_sample, predicted,
    published, error_pct, source, assumption (plus id, metric, unit and date)."""
    out = []
    for row in ROWS:
        predicted, systems, why = predict(row)
        out.append(
            {
                "id": row.id,
                "model": row.model,
                "hardware": row.hardware,
                "systems": systems,
                "in_sample": row.in_sample,
                "metric": row.metric,
                "unit": _METRIC_UNITS[row.metric],
                "predicted": predicted,
                "published": row.published,
                "error_pct": 100.0 * (predicted - row.published) / row.published,
                "date": row.date,
                "source": row.source,
                "assumption": _assumption(row, systems, why),
            }
        )
    return out


def median_abs_error(rows: list[dict[str, Any]], metric: str | None = None) -> float:
    """Median absolute error (%) of the out-of-sample rows (of one metric, if given)."""
    errors = [
        abs(r["error_pct"])
        for r in rows
        if not r["in_sample"] and (metric is None or r["metric"] == metric)
    ]
    return statistics.median(errors)


def fitted_constants() -> list[dict[str, Any]]:
    """Every ``fitted`` constant of every profile, with its value and the rows it was fitted on
    (everything else in :mod:`tedchat.wafer.hardware` is ``spec`` or ``assumed``)."""
    return [
        {
            "hardware": name,
            "constant": key,
            "value": getattr(profile, key),
            "fitted_on": list(prov.fitted_on),
        }
        for name, profile in HARDWARE.items()
        for key, prov in profile.sources.items()
        if prov.kind == "fitted"
    ]


def report() -> dict[str, Any]:
    """``wafer validate --json``: the rows, the request they assume, the fitted constants and
    the summary errors."""
    rows = validation_rows()
    return {
        "emulated": True,
        "request": {
            "prompt_tokens": PROMPT_TOKENS,
            "output_tokens": OUTPUT_TOKENS,
            "context": CONTEXT,
            "precision_bits": PRECISION,
            "sequences": 1,
        },
        "fitted_constants": fitted_constants(),
        "rows": rows,
        "out_of_sample_median_abs_error_pct": median_abs_error(rows),
        "out_of_sample_decode_median_abs_error_pct": median_abs_error(rows, "decode_tokens_per_s"),
    }


def _figure(value: float, metric: str) -> str:
    return f"TTFT {value:.3f} s" if metric == "ttft_s" else f"{value:,.0f} tok/s"


def render_text(data: dict[str, Any]) -> str:
    """The table for a terminal."""
    head = (
        f"{'model':<15} {'hardware':<9} {'in':<4} {'predicted':>14} {'published':>14} "
        f"{'error':>7}  assumption"
    )
    lines = [
        "wafer validate: emulated predictions beside published figures "
        f"(prompt {PROMPT_TOKENS}, context {CONTEXT}, {PRECISION}-bit, batch 1)",
        "",
        head,
        "-" * len(head),
    ]
    for r in data["rows"]:
        lines.append(
            f"{r['model']:<15} {r['systems']:>2}x {r['hardware']:<5} "
            f"{'yes' if r['in_sample'] else 'no':<4} {_figure(r['predicted'], r['metric']):>14} "
            f"{_figure(r['published'], r['metric']):>14} {r['error_pct']:>+6.0f}%  "
            f"{r['assumption'] or '-'}"
        )
    fitted = "; ".join(
        f"{c['hardware']}.{c['constant']} = {c['value']:g} (on {', '.join(c['fitted_on'])})"
        for c in data["fitted_constants"]
    )
    lines += [
        "",
        f"in = in sample. Fitted constants: {fitted}; every other constant is a published "
        "figure or assumed (tedchat/wafer/hardware.py). Sources: docs/validation.md.",
        "out-of-sample median absolute error: "
        f"{data['out_of_sample_median_abs_error_pct']:.0f}% (decode rows only: "
        f"{data['out_of_sample_decode_median_abs_error_pct']:.0f}%)",
    ]
    return "\n".join(lines)


def render_markdown(data: dict[str, Any]) -> str:
    """``docs/validation.md`` (generated: ``tedchat wafer validate --markdown``)."""
    lines = [
        "# Validation: the wafer timing model against published figures",
        "",
        "Generated by `tedchat wafer validate --markdown` from `tedchat/wafer/validation.py`; a "
        "test checks that this file is its output. Do not edit by hand.",
        "",
        "In-sample rows are the ones the `fitted` constants of `tedchat/wafer/hardware.py` were "
        'fitted on; out-of-sample rows were fitted on by nothing (docs/hardware.md, "Published '
        'figures NOT to fit on"). Fitted constants: '
        + "; ".join(
            f"`{c['hardware']}.{c['constant']}` = {c['value']:g} (on {', '.join(c['fitted_on'])})"
            for c in data["fitted_constants"]
        )
        + "; every other constant is a published figure or assumed. Nothing was changed to "
        "bring an out-of-sample prediction closer. Every prediction assumes the "
        "`tedchat wafer plan` defaults: a "
        f"{PROMPT_TOKENS:,}-token prompt, decode speed in the middle of a {OUTPUT_TOKENS}-token "
        f"answer, {CONTEXT:,} tokens of KV cache, {PRECISION}-bit weights, one sequence. Where "
        "the configuration is not published the row states what it assumes.",
        "",
        "| model | hardware | systems | in_sample | predicted | published | error_pct | source "
        "| assumption |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['model']} ({r['date']}) | {r['hardware']} | {r['systems']} | "
            f"{str(r['in_sample']).lower()} | {_figure(r['predicted'], r['metric'])} | "
            f"{_figure(r['published'], r['metric'])} | {r['error_pct']:+.0f}% | {r['source']} | "
            f"{r['assumption'] or '-'} |"
        )
    lines += [
        "",
        "Out-of-sample median absolute error: "
        f"{data['out_of_sample_median_abs_error_pct']:.0f}% over all rows, "
        f"{data['out_of_sample_decode_median_abs_error_pct']:.0f}% over the decode-speed rows.",
        "",
    ]
    return "\n".join(lines)


__all__ = [
    "ASSUMED_SPECULATION",
    "ROWS",
    "PublishedRow",
    "Speculation",
    "median_abs_error",
    "predict",
    "render_markdown",
    "render_text",
    "report",
    "validation_rows",
]
