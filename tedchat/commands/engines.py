"""``tedchat engines``: every configured engine, its model, status and plugin."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "engines",
        parents=parents,
        help="list configured engines and whether they are ready",
        description="List every configured engine: name, type, model, status "
        "(ready, or unavailable and why) and the plugin it came from.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from tedchat.cli import warn_plugin_failures
    from tedchat.engines import load_context

    context = load_context(args.config)
    warn_plugin_failures(context)
    rows = asyncio.run(engine_rows(context))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print_table(rows, default=context.settings.default_engine)
    return 0


async def engine_rows(context: Any) -> list[dict[str, Any]]:
    """One row per engine, statuses checked concurrently (servers get a short timeout)."""
    import asyncio

    from tedchat.errors import TedchatError

    async def row(name: str) -> dict[str, Any]:
        info = context.engines.describe(name)
        out = {
            "name": name,
            "type": info["type"],
            "model": info["settings"].get("model", ""),
            "status": "unavailable",
            "detail": info.get("error", ""),
            "plugin": info["plugin"],
            "origin": info["origin"],
        }
        if "error" in info:
            return out
        try:
            engine = context.engines.get(name)
            status = await engine.status()  # may learn the model from a server
            out["model"] = engine.model
        except TedchatError as exc:
            out["detail"] = exc.message
            return out
        out["status"] = "ready" if status.ready else "unavailable"
        out["detail"] = status.detail
        return out

    return list(await asyncio.gather(*(row(n) for n in context.engines.names())))


def print_table(rows: list[dict[str, Any]], default: str) -> None:
    """A plain table; the status (which may be a long reason) is the last column."""
    headers = ("", "NAME", "TYPE", "MODEL", "PLUGIN", "STATUS")
    table = [
        (
            "*" if r["name"] == default else "",
            r["name"],
            r["type"],
            r["model"] or "-",
            r["plugin"] or "-",
            r["status"] + (f": {r['detail']}" if r["status"] != "ready" and r["detail"] else ""),
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *table, strict=True)]
    for line in (headers, *table):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    print("\n* default engine")
