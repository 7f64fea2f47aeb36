"""``tedchat wafer plan``: where a model's layers go and what the emulated hardware would take.

:func:`plan_report` builds a JSON-ready dict (placement per system, bytes, utilisation, fit,
predicted TTFT and decode speed with their breakdowns) for the chosen hardware and, side by
side, for a comparison column (H100s for a wafer, CS-3s for a GPU). :func:`render_text` turns
it into a table plus a text floorplan. :func:`run_plan` is the entry point the CLI calls.

With ``--speculative`` each column also gets a projection of decode speed with speculative
decoding (:func:`tedchat.wafer.timing.project_speculative`): the draft model placed beside the
target on the same systems (:func:`tedchat.wafer.placement.plan_draft`; prompt-lookup drafts
without one), draft and verify time per step, expected tokens per step and tokens/s, at the
given acceptance and across :data:`~tedchat.wafer.timing.ACCEPTANCE_SWEEP`.

All times in the report are emulated (the timing model's predictions), never measured here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tedchat.errors import UsageError
from tedchat.wafer.hardware import GpuProfile, HardwareProfile, WaferProfile, get_hardware
from tedchat.wafer.placement import Placement, Region, SystemUse, plan, plan_draft
from tedchat.wafer.shapes import PRESETS, ModelShape, bytes_per_weight, get_shape, shape_from_gguf
from tedchat.wafer.timing import (
    ACCEPTANCE_SWEEP,
    COMPONENTS,
    TimingModel,
    expected_tokens_per_step,
    project_speculative,
)

#: Floorplan box size in characters (a terminal cell is about twice as tall as it is wide, so
#: a 21 x 16 box has roughly the 762 x 1172 grid's proportions).
_BOX_COLS = 21
#: Floorplans drawn at most; beyond that the table still lists every system.
_MAX_BOXES = 8
_FILLS = ".:"


def resolve_model(model: str | ModelShape) -> ModelShape:
    """A preset name, a path to a llama GGUF, or a ready shape -> :class:`ModelShape`.

    Raises:
        UsageError: for a name that is neither a preset nor an existing file.
        GGUFShapeError: for a file that is not a readable llama GGUF.
    """
    if isinstance(model, ModelShape):
        return model
    if model.strip().lower() in PRESETS:
        return get_shape(model)
    path = Path(model).expanduser()
    if path.is_file() or model.endswith(".gguf"):
        return shape_from_gguf(path)
    raise UsageError(
        f"unknown model {model!r}",
        hint=f"use a preset ({', '.join(PRESETS)}) or a path to a llama .gguf file",
    )


def _comparison_hardware(chosen: HardwareProfile) -> HardwareProfile:
    """H100s beside a wafer; CS-3s beside a GPU."""
    return get_hardware("cs3" if isinstance(chosen, GpuProfile) else "h100")


def _region_dict(region: Region) -> dict[str, Any]:
    return {
        "label": region.label,
        "kind": region.kind,
        "layer": region.layer,
        "row0": region.row0,
        "col0": region.col0,
        "rows": region.rows,
        "cols": region.cols,
        "weight_bytes": region.weight_bytes,
        "kv_bytes": region.kv_bytes,
    }


def _system_dict(system: SystemUse) -> dict[str, Any]:
    return {
        "index": system.index,
        "holds": system.layer_range,
        "first_layer": system.first_layer,
        "last_layer": system.last_layer,
        "embed": system.has_embed,
        "head": system.has_head,
        "weight_bytes": system.weight_bytes,
        "kv_bytes": system.kv_bytes,
        "used_bytes": system.used_bytes,
        "capacity_bytes": system.capacity_bytes,
        "memory_bytes": system.memory_bytes,
        "utilisation": system.utilisation,
        "cores_used": system.cores_used,
        "grid_cores": system.grid_cores,
        "fits": system.fits,
        "regions": [_region_dict(r) for r in system.regions],
    }


def _speculative(
    placement: Placement,
    model: TimingModel,
    context_len: int,
    acceptance: float,
    draft_tokens: int,
    draft: ModelShape | None,
) -> dict[str, Any]:
    """A column's speculative projection (or why its draft does not fit)."""
    out: dict[str, Any] = {
        "emulated": True,
        "mode": "draft" if draft is not None else "prompt-lookup",
        "draft_model": draft.name if draft is not None else None,
        "acceptance": acceptance,
        "draft_tokens": draft_tokens,
        "fits": True,
        "reason": "",
    }
    draft_model = None
    if draft is not None:
        beside = plan_draft(placement, draft)
        out.update(
            draft_bytes=beside.draft_bytes,
            free_bytes=beside.free_bytes,
            draft_hosts=list(beside.hosts),
            min_systems=beside.min_systems,
        )
        if beside.placement is not None:
            draft_model = TimingModel(beside.placement)
        else:
            # Still projected, flagged: the fit turns on assumed constants (the usable SRAM
            # fraction), and the speed if it did fit is what the question asks. The draft is
            # timed on the fewest systems that hold it alone.
            alone = plan(
                draft,
                placement.hardware,
                None,
                context=placement.context,
                sequences=placement.sequences,
                precision=placement.precision,
            )
            out.update(fits=False, reason=beside.reason)
            if not alone.fits:
                return out
            draft_model = TimingModel(alone)
    proj = project_speculative(model, acceptance, draft_tokens, context_len, draft_model)
    out.update(
        context_len=context_len,
        draft_s_per_step=proj.draft.total,
        draft_breakdown=proj.draft.as_dict(),
        verify_s_per_step=proj.verify.total,
        verify_breakdown=proj.verify.as_dict(),
        step_s=proj.step_s,
        tokens_per_step=proj.tokens_per_step,
        tokens_per_s=proj.tokens_per_s,
        plain_tokens_per_s=proj.plain_tokens_per_s,
        speedup=proj.tokens_per_s / proj.plain_tokens_per_s,
        sweep=[
            {
                "acceptance": a,
                "tokens_per_step": proj.at(a).tokens_per_step,
                "tokens_per_s": proj.at(a).tokens_per_s,
            }
            for a in ACCEPTANCE_SWEEP
        ],
    )
    return out


def _with_room_for(
    placement: Placement, systems: int | None, speculative: dict[str, Any] | None
) -> Placement:
    """With no system count asked for, the fewest systems that hold the model and its draft."""
    if systems is not None or not placement.fits or not speculative or not speculative["draft"]:
        return placement
    beside = plan_draft(placement, speculative["draft"])
    if beside.fits or beside.min_systems is None:
        return placement
    return plan(
        placement.shape,
        placement.hardware,
        beside.min_systems,
        context=placement.context,
        sequences=placement.sequences,
        precision=placement.precision,
    )


def _column(
    placement: Placement,
    prompt_tokens: int,
    output_tokens: int,
    speculative: dict[str, Any] | None = None,
) -> dict[str, Any]:
    hw = placement.hardware
    column: dict[str, Any] = {
        "hardware": hw.name,
        "label": hw.label,
        "kind": hw.kind,
        "mode": placement.mode,
        "systems": placement.n_systems,
        "fits": placement.fits,
        "min_systems": placement.min_systems,
        "reason": placement.reason,
        "weight_bytes": placement.weight_bytes,
        "kv_bytes": placement.kv_bytes,
        "per_system": [_system_dict(s) for s in placement.systems],
        "grid": [hw.grid_rows, hw.grid_cols] if isinstance(hw, WaferProfile) else None,
        "prediction": None,
        "speculative": None,
    }
    if placement.fits:
        model = TimingModel(placement)
        pred = model.predict(prompt_tokens, output_tokens)
        if speculative is not None:
            column["speculative"] = _speculative(
                placement, model, pred.decode_context, **speculative
            )
        column["prediction"] = {
            "emulated": True,
            "prompt_tokens": prompt_tokens,
            "decode_context": pred.decode_context,
            "ttft_s": pred.ttft.total,
            "ttft_breakdown": pred.ttft.as_dict(),
            "decode_s_per_token": pred.decode.total,
            "decode_tokens_per_s": pred.decode_tokens_per_s,
            "decode_breakdown": pred.decode.as_dict(),
        }
    return column


def plan_report(
    model: str | ModelShape,
    hardware: str = "cs3",
    systems: int | None = None,
    context: int = 8192,
    sequences: int = 1,
    prompt_tokens: int = 1000,
    precision: int | str = 16,
    output_tokens: int = 256,
    compare: str | None = None,
    acceptance: float | None = None,
    draft_tokens: int = 4,
    draft_model: str | ModelShape | None = None,
) -> dict[str, Any]:
    """The ``wafer plan`` report as a JSON-ready dict.

    Args:
        model: a preset name, a path to a llama GGUF, or a :class:`ModelShape`.
        hardware: profile name of the main column (``cs3``, ``cs2``, ``h100``, ...).
        systems: systems (wafers or GPUs) for the main column; None = the fewest that fit.
        context: KV-cache tokens reserved per sequence.
        sequences: concurrent sequences to reserve KV cache for.
        prompt_tokens: prompt length for the TTFT prediction.
        precision: weight precision, 16 or 8 bits.
        output_tokens: answer length (decode speed is predicted mid-answer).
        compare: profile of the comparison column (default: h100 for a wafer, cs3 for a GPU),
            always with the fewest systems that fit.
        acceptance: with a value, project speculative decoding at this per-token acceptance
            probability (0 <= a < 1) in every column that fits.
        draft_tokens: tokens drafted per speculative step (k >= 1).
        draft_model: the draft (a preset, GGUF path or shape) placed beside the target; None
            for prompt-lookup drafts, which cost nothing to draft.

    Raises:
        UsageError: for an unknown model, hardware or precision, non-positive sizes, or an
            acceptance outside [0, 1) or fewer than one draft token.
    """
    shape = resolve_model(model)
    speculative: dict[str, Any] | None = None
    if acceptance is not None:
        try:
            expected_tokens_per_step(acceptance, draft_tokens)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        draft = resolve_model(draft_model) if draft_model is not None else None
        speculative = {"acceptance": acceptance, "draft_tokens": draft_tokens, "draft": draft}
    elif draft_model is not None:
        raise UsageError("a draft model is for speculative decoding: add --speculative")
    try:
        bits = 8 * bytes_per_weight(precision)
        main_hw = get_hardware(hardware)
        other_hw = get_hardware(compare) if compare else _comparison_hardware(main_hw)
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    if prompt_tokens < 1 or output_tokens < 1:
        raise UsageError("prompt and output token counts must be at least 1")
    if prompt_tokens > context:
        raise UsageError(
            f"a {prompt_tokens}-token prompt does not fit a {context}-token context",
            hint="raise --context or shorten the prompt",
        )
    try:
        main = plan(shape, main_hw, systems, context=context, sequences=sequences, precision=bits)
        other = plan(shape, other_hw, None, context=context, sequences=sequences, precision=bits)
        main = _with_room_for(main, systems, speculative)
        other = _with_room_for(other, None, speculative)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    main_column = _column(main, prompt_tokens, output_tokens, speculative)
    spec = main_column["speculative"]
    return {
        "emulated": True,
        # Fits: the model, and its draft beside it when one is asked for.
        "fits": main.fits and (spec is None or spec["fits"]),
        "model": {
            "name": shape.name,
            "layers": shape.layers,
            "hidden": shape.hidden,
            "heads": shape.heads,
            "kv_heads": shape.kv_heads,
            "ffn": shape.ffn,
            "vocab": shape.vocab,
            "tied": shape.tied,
            "params": shape.model_params,
            "precision_bits": bits,
            "weight_bytes": shape.weight_bytes(bits),
            "kv_bytes": shape.kv_bytes(context, sequences),
        },
        "request": {
            "context": context,
            "sequences": sequences,
            "prompt_tokens": prompt_tokens,
            "output_tokens": output_tokens,
        },
        "min_systems": main.min_systems,
        "columns": [main_column, _column(other, prompt_tokens, output_tokens, speculative)],
    }


# --- text rendering -----------------------------------------------------------------------------


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def _floorplan(system: dict[str, Any], grid: tuple[int, int]) -> list[str]:
    """One system's core grid as a box of characters, each region labelled."""
    rows, cols = grid
    width = _BOX_COLS
    height = max(4, round(width * rows / cols / 2))
    canvas = [[" "] * width for _ in range(height)]
    for n, reg in enumerate(system["regions"]):
        fill = _FILLS[n % len(_FILLS)]
        cells = []
        for i in range(height):
            r = (i + 0.5) * rows / height
            if not reg["row0"] <= r < reg["row0"] + reg["rows"]:
                continue
            for j in range(width):
                c = (j + 0.5) * cols / width
                if reg["col0"] <= c < reg["col0"] + reg["cols"]:
                    canvas[i][j] = fill
                    cells.append((i, j))
        if not cells:
            continue
        # Centre the label on the region's middle line; a label cut short would name another
        # block, so a region too narrow for its label stays unlabelled.
        mid = cells[len(cells) // 2][0]
        line = [j for i, j in cells if i == mid]
        label = reg["label"]
        if len(label) <= len(line):
            first = line[0] + (len(line) - len(label)) // 2
            for k, ch in enumerate(label):
                canvas[mid][first + k] = ch
    title = f" system {system['index']} "
    top = "+" + title.center(width, "-") + "+"
    return [top] + ["|" + "".join(line) + "|" for line in canvas] + ["+" + "-" * width + "+"]


def _floorplans(column: dict[str, Any], page_width: int) -> list[str]:
    systems = column["per_system"]
    if not systems or not systems[0]["regions"]:
        return []
    boxes = [_floorplan(s, tuple(column["grid"])) for s in systems[:_MAX_BOXES]]
    per_row = max(1, page_width // (_BOX_COLS + 4))
    out: list[str] = []
    for start in range(0, len(boxes), per_row):
        group = boxes[start : start + per_row]
        for i in range(len(group[0])):
            out.append("  ".join(box[i] for box in group).rstrip())
    if len(systems) > _MAX_BOXES:
        out.append(f"... and {len(systems) - _MAX_BOXES} more systems (see the table)")
    out.append(
        "E = embeddings, H = output head, n = decoder block n; blank = free cores. "
        f"Grid {column['grid'][0]} x {column['grid'][1]} cores per system."
    )
    return out


def _gpu_bars(column: dict[str, Any]) -> list[str]:
    out = []
    for s in column["per_system"]:
        filled = min(30, round(30 * s["utilisation"]))
        out.append(
            f"GPU {s['index']:<2} [{'#' * filled}{'.' * (30 - filled)}] "
            f"{s['utilisation']:.0%} of {_gb(s['memory_bytes'])} (1/{column['systems']} of "
            "every layer)"
        )
    return out


def _system_table(column: dict[str, Any]) -> list[str]:
    head = f"{'sys':>3}  {'holds':<28} {'weights':>10} {'KV':>9} {'used/usable':>19} {'util':>5}"
    out = [head, "-" * len(head)]
    for s in column["per_system"]:
        mark = "" if s["fits"] else "  OVER"
        used = f"{_gb(s['used_bytes'])} / {_gb(s['capacity_bytes'])}"
        out.append(
            f"{s['index']:>3}  {s['holds']:<28} {_gb(s['weight_bytes']):>10} "
            f"{_gb(s['kv_bytes']):>9} {used:>19} "
            f"{s['utilisation']:>5.0%}{mark}"
        )
    return out


def _timing_table(columns: list[dict[str, Any]]) -> list[str]:
    names = [f"{c['hardware']} x{c['systems']}" for c in columns]
    width = 16
    out = [f"{'emulated':<24}" + "".join(f"{n:>{width}}" for n in names)]
    out.append("-" * len(out[0]))
    preds = [c["prediction"] for c in columns]

    def row(label: str, values: list[str]) -> str:
        return f"{label:<24}" + "".join(f"{v:>{width}}" for v in values)

    def cell(p: dict[str, Any] | None, fn: Any) -> str:
        return "does not fit" if p is None else fn(p)

    out.append(row("TTFT", [cell(p, lambda p: _time(p["ttft_s"])) for p in preds]))
    out.append(
        row("decode tok/s", [cell(p, lambda p: f"{p['decode_tokens_per_s']:,.0f}") for p in preds])
    )
    out.append(
        row("decode per token", [cell(p, lambda p: _time(p["decode_s_per_token"])) for p in preds])
    )
    for phase, key in (("TTFT", "ttft_breakdown"), ("decode", "decode_breakdown")):
        present = {k for p in preds for k in (p or {}).get(key, {})}
        keys = [k for k in COMPONENTS if k in present] + sorted(present - set(COMPONENTS))
        out.append(f"{phase} breakdown:")
        for k in keys:
            out.append(
                row(
                    f"  {k}",
                    ["-" if p is None or k not in p[key] else _time(p[key][k]) for p in preds],
                )
            )
    return out


def _speculative_table(columns: list[dict[str, Any]]) -> list[str]:
    """The speculative projection of every column, side by side (empty without one)."""
    specs = [c["speculative"] for c in columns]
    first = next((s for s in specs if s is not None), None)
    if first is None:
        return []
    draft = f"a {first['draft_model']} draft" if first["draft_model"] else "prompt-lookup drafts"
    names = [f"{c['hardware']} x{c['systems']}" for c in columns]
    width = 16
    out = [
        f"speculative decoding (projected): {draft}, k = {first['draft_tokens']} drafted tokens "
        f"per step, acceptance {first['acceptance']:g}",
        f"{'emulated':<24}" + "".join(f"{n:>{width}}" for n in names),
    ]
    out.append("-" * len(out[1]))

    def row(label: str, fn: Any) -> str:
        cells = []
        for s in specs:
            if s is None:
                cells.append("-")
            elif "tokens_per_s" not in s:
                cells.append("draft too big")
            else:
                cells.append(fn(s) + ("" if s["fits"] else " *"))
        return f"{label:<24}" + "".join(f"{c:>{width}}" for c in cells)

    out.append(row("draft per step", lambda s: _time(s["draft_s_per_step"])))
    out.append(row("verify per step", lambda s: _time(s["verify_s_per_step"])))
    out.append(row("tokens per step", lambda s: f"{s['tokens_per_step']:.2f}"))
    out.append(row("decode tok/s", lambda s: f"{s['tokens_per_s']:,.0f}"))
    out.append(row("without speculation", lambda s: f"{s['plain_tokens_per_s']:,.0f}"))
    for i, a in enumerate(ACCEPTANCE_SWEEP):
        out.append(
            row(f"  at acceptance {a:g}", lambda s, i=i: f"{s['sweep'][i]['tokens_per_s']:,.0f}")
        )
    out.append(
        "tokens per step = (1 - a^(k+1)) / (1 - a); a step = k draft steps + one "
        "(k+1)-token verify."
    )
    for c, s in zip(columns, specs, strict=True):
        if s is not None and not s["fits"]:
            out.append(f"{c['hardware']} x{c['systems']}: {s['reason']}")
            if "tokens_per_s" in s:
                out.append("  * projected as if the draft fitted (timed alone on its own systems)")
    return out


def render_text(report: dict[str, Any], width: int = 100) -> str:
    """The report as text: model line, placement table, floorplan, timing side by side."""
    m, req = report["model"], report["request"]
    main = report["columns"][0]
    lines = [
        f"wafer plan: {m['name']} ({m['params'] / 1e9:.2f}B params, {m['precision_bits']}-bit, "
        f"{_gb(m['weight_bytes'])} weights{', tied head' if m['tied'] else ''})",
        f"context {req['context']} x {req['sequences']} sequence(s): KV {_gb(m['kv_bytes'])}; "
        f"prompt {req['prompt_tokens']} tokens. All times are emulated.",
        "",
    ]
    status = "fits" if main["fits"] else "DOES NOT FIT"
    lines.append(
        f"{main['label']} x {main['systems']} ({main['mode'].replace('_', ' ')}): {status}"
    )
    if not main["fits"]:
        lines.append(main["reason"] or "does not fit")
    spec = main["speculative"]
    if spec is not None and spec["draft_model"]:
        where = ", ".join(str(h) for h in spec.get("draft_hosts") or [])
        lines.append(
            f"draft {spec['draft_model']} beside it on system(s) {where}: "
            f"{_gb(spec['draft_bytes'])} of {_gb(spec['free_bytes'])} free"
            if spec["fits"]
            else f"DRAFT DOES NOT FIT: {spec['reason']}"
        )
    lines += _system_table(main)
    lines.append("")
    if main["fits"]:
        lines += _floorplans(main, width) if main["kind"] == "wafer" else _gpu_bars(main)
        lines.append("")
    other = report["columns"][1]
    lines.append(
        f"comparison: {other['label']} x {other['systems']} "
        f"({'fits' if other['fits'] else 'does not fit'}; fewest that hold the model)"
    )
    lines.append("")
    lines += _timing_table(report["columns"])
    spec = _speculative_table(report["columns"])
    if spec:
        lines += ["", *spec]
    return "\n".join(lines)


def _speculative_args(args: Any) -> dict[str, Any]:
    """``--speculative --acceptance A [--draft-model M] [--draft-tokens K]`` as keywords."""
    acceptance = getattr(args, "acceptance", None)
    draft_model = getattr(args, "draft_model", None)
    draft_tokens = getattr(args, "draft_tokens", None)
    if not getattr(args, "speculative", False):
        if acceptance is not None or draft_model is not None or draft_tokens is not None:
            raise UsageError("--acceptance, --draft-model and --draft-tokens need --speculative")
        return {}
    if acceptance is None:
        raise UsageError(
            "--speculative needs --acceptance A: the per-token acceptance probability, 0 <= A < 1"
        )
    return {
        "acceptance": acceptance,
        "draft_model": draft_model,
        "draft_tokens": 4 if draft_tokens is None else draft_tokens,
    }


def problem(report: dict[str, Any]) -> str | None:
    """Why the plan's main column does not fit (the model or its draft), in one line."""
    main = report["columns"][0]
    if not main["fits"]:
        return main["reason"] or "does not fit"
    spec = main["speculative"]
    if spec is not None and not spec["fits"]:
        return str(spec["reason"])
    return None


def report_from_args(args: Any) -> dict[str, Any]:
    """The CLI's ``wafer plan`` report from options read off ``args``.

    ``args`` may carry ``model`` (required), ``hardware`` (cs3), ``systems`` (None),
    ``context`` (8192), ``sequences`` (1), ``prompt_tokens`` (1000, or half a shorter
    context), ``precision`` (16), ``output_tokens`` (256), ``compare`` (None), and
    ``speculative`` (False) with ``acceptance``, ``draft_model`` and ``draft_tokens`` (4).
    Bad input raises a :class:`~tedchat.errors.TedchatError` (``UsageError``, or
    ``GGUFShapeError`` for an unreadable file) for the CLI to report.
    """
    model = getattr(args, "model", None)
    if not model:
        raise UsageError("wafer plan needs a model: a preset name or a .gguf path")
    context = getattr(args, "context", None) or 8192
    return plan_report(
        model,
        hardware=getattr(args, "hardware", None) or "cs3",
        systems=getattr(args, "systems", None),
        context=context,
        sequences=getattr(args, "sequences", None) or 1,
        # The default prompt shrinks with a short context rather than refusing it.
        prompt_tokens=getattr(args, "prompt_tokens", None) or min(1000, max(1, context // 2)),
        precision=getattr(args, "precision", None) or 16,
        output_tokens=getattr(args, "output_tokens", None) or 256,
        compare=getattr(args, "compare", None),
        **_speculative_args(args),
    )


def render(report: dict[str, Any], args: Any) -> str:
    """The report as ``args`` asks: JSON (``json``) or text ``width`` columns wide."""
    if getattr(args, "json", False):
        return json.dumps(report, indent=2)
    return render_text(report, width=getattr(args, "width", None) or 100)


def run_plan(args: Any) -> tuple[int, str]:
    """``wafer plan`` as (exit code, output): 0 if the model (and its draft, if any) fits on
    the chosen hardware, 1 if not (the output says how many systems it needs). ``args`` as for
    :func:`report_from_args`, plus ``json`` (False) and ``width`` (100)."""
    report = report_from_args(args)
    return (0 if report["fits"] else 1), render(report, args)


__all__ = [
    "plan_report",
    "problem",
    "render",
    "render_text",
    "report_from_args",
    "resolve_model",
    "run_plan",
]
