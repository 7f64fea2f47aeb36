"""A wafer floorplan: systems, the core-grid region of every layer, SRAM use, predicted times.

The widget draws a placement dict, the shape of one column of
:func:`tedchat.wafer.plan_report.plan_report` (a whole report is accepted too: its first column
is drawn and its ``model.name`` used as the title). Everything is JSON-ready data::

    {
      "hardware": "cs3",                 # profile name
      "label": "CS-3",                   # how people call it (optional)
      "kind": "wafer",                   # "wafer" (regions have geometry) or "gpu"
      "systems": 2,                      # wafers, or GPUs in a tensor-parallel group
      "grid": [rows, cols],              # the core grid of one wafer (None for GPUs)
      "per_system": [
        {
          "index": 0,
          "holds": "embed + layers 0-14",           # optional description
          "used_bytes": 1.2e10,                      # weights + KV reservation
          "memory_bytes": 4.4e10,                    # SRAM (wafer) or HBM (GPU)
          "utilisation": 0.27,                       # optional; used/memory otherwise
          "regions": [
            {"label": "E", "kind": "embed", "layer": "embed",
             "row0": 0, "col0": 0, "rows": 40, "cols": 762,
             "weight_bytes": 1.0e9, "kv_bytes": 0},
            {"label": "0", "kind": "layer", "layer": 0, "row0": 40, ...},
            {"label": "H", "kind": "head", "layer": "head", ...}
          ]
        }
      ],
      "prediction": {                    # optional; every figure here is EMULATED
        "ttft_s": 0.012, "ttft_breakdown": {"compute": 0.004, "fabric": 0.006, ...},
        "decode_tokens_per_s": 2100.0, "decode_s_per_token": 0.00047,
        "decode_breakdown": {"compute": 0.0002, ...}
      },
      "active": {"system": 1, "layer": 17}   # optional: the stage working right now
    }

The active stage can also be set live with :meth:`Floorplan.set_active` (the floorplan screen
does so from the engine's ``activity()``).
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

#: Width of one wafer's drawing in cells; its height follows the grid's aspect ratio (a
#: terminal cell is about twice as tall as wide).
BOX_WIDTH = 28
BAR_WIDTH = 48
EMBED_COLOR = "#7f8c9d"
HEAD_COLOR = "#b07cff"
COMPONENT_COLORS = ("#2e6fd6", "#e60012", "#f2a33a", "#3cc48c", "#b07cff", "#23b5c9", "#e377c2")


def normalise_plan(plan: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
    """(the column to draw, the model's name) from a column or a whole plan report."""
    if not plan:
        return None, None
    if "columns" in plan and isinstance(plan["columns"], list) and plan["columns"]:
        model = plan.get("model")
        name = model.get("name") if isinstance(model, Mapping) else None
        return dict(plan["columns"][0]), name
    name = plan.get("model_name") or (
        plan["model"].get("name") if isinstance(plan.get("model"), Mapping) else None
    )
    return dict(plan), name


def layer_color(layer: Any, n_layers: int) -> str:
    """A colour per layer: a hue sweep from blue (first) to red (last); embed/head apart."""
    if layer == "embed":
        return EMBED_COLOR
    if layer == "head":
        return HEAD_COLOR
    try:
        i = int(layer)
    except (TypeError, ValueError):
        return EMBED_COLOR
    frac = i / max(1, n_layers - 1)
    r, g, b = colorsys.hsv_to_rgb((0.62 - 0.62 * frac) % 1.0, 0.65, 0.85)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _bar(fraction: float, width: int, color: str) -> Text:
    fraction = min(1.0, max(0.0, fraction))
    full = round(fraction * width)
    return Text.assemble(("█" * full, color), ("░" * (width - full), "dim"))


def draw_wafer(
    system: Mapping[str, Any],
    grid: tuple[int, int],
    n_layers: int,
    active: Mapping[str, Any] | None,
    width: int = BOX_WIDTH,
) -> list[Text]:
    """One wafer as lines of coloured cells, each cell taking the region under its centre."""
    rows, cols = grid
    height = max(6, min(24, round(width * rows / max(1, cols) / 2)))
    regions = list(system.get("regions") or [])
    is_active = active is not None and active.get("system") == system.get("index")
    active_layer = active.get("layer") if is_active and active else None
    lines: list[Text] = []
    labelled: set[int] = set()
    # Rich styles need concrete colours (not theme variables): the active wafer gets a bright
    # border, the others a dim one.
    border_style = Style.parse("bold #ffffff") if is_active else Style.parse("dim")
    lines.append(Text("┌" + "─" * width + "┐", style=border_style))
    for y in range(height):
        line = Text("│", style=border_style)
        for x in range(width):
            r = (y + 0.5) * rows / height
            c = (x + 0.5) * cols / width
            char, style = " ", Style(bgcolor="#1a1a1a")
            for i, reg in enumerate(regions):
                r0, c0 = reg.get("row0", 0), reg.get("col0", 0)
                if r0 <= r < r0 + reg.get("rows", 0) and c0 <= c < c0 + reg.get("cols", 0):
                    color = layer_color(reg.get("layer"), n_layers)
                    hot = active_layer is not None and reg.get("layer") == active_layer
                    style = Style(
                        bgcolor="#ffffff" if hot else color,
                        color="#000000",
                        bold=hot,
                    )
                    label = str(reg.get("label", ""))
                    if i not in labelled and label and len(label) <= width - x:
                        labelled.add(i)
                        char = label
                    break
            line.append(char, style)
        # Labels longer than one cell push the line; cut back to the box width.
        line.truncate(width + 1)
        line.append("│", style=border_style)
        lines.append(line)
    lines.append(Text("└" + "─" * width + "┘", style=border_style))
    return lines


def breakdown_lines(title: str, total: float, parts: Mapping[str, float]) -> list[Text]:
    """A stacked bar of one predicted time and a legend line per component."""
    lines = [
        Text.assemble((f"{title}: ", "bold"), (_ms(total), "bold"), ("  (emulated)", "italic"))
    ]
    bar = Text()
    items = [(k, v) for k, v in parts.items() if v > 0]
    used = 0
    for i, (_name, value) in enumerate(items):
        cells = round(value / total * BAR_WIDTH) if total > 0 else 0
        if i == len(items) - 1:
            cells = BAR_WIDTH - used
        used += cells
        bar.append("█" * max(0, cells), COMPONENT_COLORS[i % len(COMPONENT_COLORS)])
    lines.append(bar)
    name_width = max((len(name) for name, _ in items), default=0) + 2
    for i, (name, value) in enumerate(items):
        share = value / total * 100 if total > 0 else 0
        lines.append(
            Text.assemble(
                ("■ ", COMPONENT_COLORS[i % len(COMPONENT_COLORS)]),
                (f"{name:<{name_width}}", ""),
                (f"{_ms(value):>10}  {share:5.1f}%", "dim"),
            )
        )
    return lines


class Floorplan(Widget):
    """Draws a placement dict (see the module docstring)."""

    DEFAULT_CSS = """
    Floorplan {
        height: auto;
        padding: 0 1;
    }
    """

    plan: reactive[dict[str, Any] | None] = reactive(None, layout=True)
    active: reactive[dict[str, Any] | None] = reactive(None)

    def __init__(self, plan: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.set_reactive(Floorplan.plan, dict(plan) if plan else None)
        if plan and isinstance(plan.get("active"), Mapping):
            self.set_reactive(Floorplan.active, dict(plan["active"]))

    def set_active(self, system: int | None, layer: Any = None) -> None:
        """Highlight the stage (system) working now, and its layer if known; None clears."""
        self.active = None if system is None else {"system": system, "layer": layer}

    def render(self) -> RenderableType:
        column, model_name = normalise_plan(self.plan)
        if column is None:
            return Text("no placement to draw", style="dim")
        return Group(*self._lines(column, model_name))

    def _lines(self, column: dict[str, Any], model_name: str | None) -> list[RenderableType]:
        systems = list(column.get("per_system") or [])
        label = column.get("label") or column.get("hardware") or "?"
        n = column.get("systems", len(systems))
        title = Text.assemble(
            (f"{model_name} on " if model_name else "", "bold"),
            (f"{n}× {label}", "bold"),
            (f"  ({column.get('kind', 'wafer')}, {column.get('mode', 'pipeline')})", "dim"),
        )
        out: list[RenderableType] = [title, Text("")]
        if column.get("fits") is False:
            reason = column.get("reason") or "does not fit"
            need = column.get("min_systems")
            out.append(
                Text(f"does not fit: {reason}" + (f" (needs {need})" if need else ""), "bold red")
            )
        n_layers = 1 + max(
            (
                int(r["layer"])
                for s in systems
                for r in s.get("regions") or []
                if isinstance(r.get("layer"), int)
            ),
            default=0,
        )
        grid = column.get("grid")
        if column.get("kind", "wafer") == "wafer" and grid:
            out.extend(self._wafers(systems, (int(grid[0]), int(grid[1])), n_layers))
        out.append(Text(""))
        for s in systems:
            used = float(s.get("used_bytes") or 0)
            memory = float(s.get("memory_bytes") or 0)
            util = s.get("utilisation")
            util = float(util) if util is not None else (used / memory if memory else 0.0)
            is_active = (self.active or {}).get("system") == s.get("index")
            out.append(
                Text.assemble(
                    ("▶ " if is_active else "  ", "bold"),
                    (f"system {s.get('index', '?')}", "bold"),
                    (f"  {s.get('holds', '')}", ""),
                )
            )
            memory_kind = "SRAM" if column.get("kind", "wafer") == "wafer" else "HBM"
            out.append(
                Text.assemble(
                    (f"    {memory_kind} ", "dim"),
                    _bar(util, 30, "#3cc48c" if util <= 0.9 else "#ff4d5e"),
                    (f" {_gb(used)} / {_gb(memory)} ({util * 100:.0f}%)", ""),
                )
            )
        prediction = column.get("prediction")
        if isinstance(prediction, Mapping):
            out.append(Text(""))
            out.extend(
                breakdown_lines(
                    "Predicted TTFT",
                    float(prediction.get("ttft_s") or 0.0),
                    prediction.get("ttft_breakdown") or {},
                )
            )
            out.append(Text(""))
            per_token = float(prediction.get("decode_s_per_token") or 0.0)
            tps = prediction.get("decode_tokens_per_s")
            title_text = "Predicted decode step"
            if tps:
                title_text += f" ({float(tps):,.0f} tok/s)"
            out.extend(
                breakdown_lines(title_text, per_token, prediction.get("decode_breakdown") or {})
            )
        return out

    def _wafers(
        self, systems: list[dict[str, Any]], grid: tuple[int, int], n_layers: int
    ) -> list[Text]:
        """Wafer drawings side by side, as many per row as the widget's width allows."""
        width = self.size.width or 120
        per_row = max(1, (width - 2) // (BOX_WIDTH + 4))
        out: list[Text] = []
        for start in range(0, len(systems), per_row):
            group = systems[start : start + per_row]
            drawings = [draw_wafer(s, grid, n_layers, self.active) for s in group]
            captions = [Text(f" system {s.get('index', '?')}".ljust(BOX_WIDTH + 2)) for s in group]
            out.append(Text("  ").join(captions))
            for row in range(max(len(d) for d in drawings)):
                out.append(Text("  ").join(d[row] for d in drawings if row < len(d)))
        return out
