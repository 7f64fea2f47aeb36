"""``tedchat wafer plan``: where a model's layers go and what the emulated hardware would take.

:func:`plan_report` builds a JSON-ready dict (placement per system, bytes, utilisation, fit,
predicted TTFT and decode speed with their breakdowns) for the chosen hardware and, side by
side, for a comparison column (H100s for a wafer, CS-3s for a GPU). :func:`render_text` turns
it into a table plus a text floorplan. :func:`run_plan` is the entry point the CLI calls.

All times in the report are emulated (the timing model's predictions), never measured here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tedchat.errors import UsageError
from tedchat.wafer.hardware import GpuProfile, HardwareProfile, WaferProfile, get_hardware
from tedchat.wafer.placement import Placement, Region, SystemUse, plan
from tedchat.wafer.shapes import PRESETS, ModelShape, bytes_per_weight, get_shape, shape_from_gguf
from tedchat.wafer.timing import COMPONENTS, TimingModel

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


def _column(placement: Placement, prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
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
    }
    if placement.fits:
        pred = TimingModel(placement).predict(prompt_tokens, output_tokens)
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

    Raises:
        UsageError: for an unknown model, hardware or precision, or non-positive sizes.
    """
    shape = resolve_model(model)
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
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return {
        "emulated": True,
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
        "fits": main.fits,
        "min_systems": main.min_systems,
        "columns": [
            _column(main, prompt_tokens, output_tokens),
            _column(other, prompt_tokens, output_tokens),
        ],
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
    return "\n".join(lines)


def run_plan(args: Any) -> tuple[int, str]:
    """The CLI's ``wafer plan``: read options off ``args`` and return (exit code, output).

    ``args`` may carry ``model`` (required), ``hardware`` (cs3), ``systems`` (None),
    ``context`` (8192), ``sequences`` (1), ``prompt_tokens`` (1000, or half a shorter
    context), ``precision`` (16), ``output_tokens`` (256), ``compare`` (None), ``json``
    (False) and ``width`` (100). Exit code 0 if the model fits on the chosen hardware, 1 if it
    does not (the output says how many systems it needs). Bad input raises a
    :class:`~tedchat.errors.TedchatError` (``UsageError``, or ``GGUFShapeError`` for an
    unreadable file) for the CLI to report.
    """
    model = getattr(args, "model", None)
    if not model:
        raise UsageError("wafer plan needs a model: a preset name or a .gguf path")
    context = getattr(args, "context", None) or 8192
    report = plan_report(
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
    )
    if getattr(args, "json", False):
        text = json.dumps(report, indent=2)
    else:
        text = render_text(report, width=getattr(args, "width", None) or 100)
    return (0 if report["fits"] else 1), text


__all__ = ["plan_report", "render_text", "resolve_model", "run_plan"]
