"""``tedchat tools``: the tools the model is offered, where each comes from, and whether its
source is ready (an MCP server that does not start says why)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tedchat.config import Settings
    from tedchat.plugins import Plugins

#: The description column is cut to this many characters in the table.
DESCRIPTION_CHARS = 72


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tools",
        parents=parents,
        help="list the tools models may call",
        description="The tools offered to models: built-in ones, plugins' and MCP servers' "
        "([tools] sources chooses which).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser(
        "list",
        parents=parents,
        help="list every tool: its name as the model sees it, source, status, description",
        description="List every tool: its name as the model sees it, its source (builtin, "
        "plugin:NAME, mcp:NAME), its status and what it does. MCP servers are started to ask "
        "them for their tools, and stopped again.",
    )
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(run=run_list)


def run_list(args: argparse.Namespace) -> int:
    import asyncio

    from tedchat.cli import warn_plugin_failures
    from tedchat.engines import load_context

    context = load_context(args.config)
    rows = asyncio.run(tool_rows(context.settings, context.plugins))
    warn_plugin_failures(context)  # after the tools: a plugin's register_tools may fail too
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print_table(rows)
    return 0


async def tool_rows(settings: Settings, plugins: Plugins) -> list[dict[str, Any]]:
    """``[{name, source, description, parameters, status, error}]`` of every enabled tool
    source; MCP servers are started, listed and stopped."""
    from tedchat.tools.setup import open_tools

    tools = open_tools(settings, plugins)
    try:
        await tools.ready()
        return tools.toolbox.listing()
    finally:
        await tools.aclose()


def print_table(rows: list[dict[str, Any]]) -> None:
    """NAME, SOURCE, STATUS and the description's first line (or why a source failed)."""
    if not rows:
        print("no tools ([tools] sources turns none on)")
        return
    headers = ("NAME", "SOURCE", "STATUS", "DESCRIPTION")
    table = [
        (
            r["name"] or "-",
            r["source"],
            r["status"],
            _first_line(r["error"] if r["error"] else r["description"]),
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *table, strict=True)]
    for line in (headers, *table):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= DESCRIPTION_CHARS else line[: DESCRIPTION_CHARS - 1] + "…"
