"""``tedchat models``: the local model registry, or what an engine's server offers."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models",
        parents=parents,
        help="list known models and where their files are",
        description="The model registry: names an engine's 'model' setting accepts.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser(
        "list",
        parents=parents,
        help="list registry models (or, with --engine, the models a server offers)",
    )
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument(
        "--engine",
        metavar="NAME",
        help="list what this engine's server offers (GET /v1/models) instead of the registry",
    )
    ls.set_defaults(run=run_list)
    path = actions.add_parser("path", parents=parents, help="print a model's GGUF path")
    path.add_argument("name")
    path.set_defaults(run=run_path)


def model_rows() -> list[dict[str, Any]]:
    from tedchat.models import REGISTRY, entry_path

    rows = []
    for entry in REGISTRY.values():
        path = entry_path(entry)
        present = path.is_file()
        rows.append(
            {
                "name": entry.name,
                "present": present,
                "path": str(path),
                "size_bytes": path.stat().st_size if present else None,
                "license": entry.license,
                "description": entry.description,
            }
        )
    return rows


def run_list(args: argparse.Namespace) -> int:
    if args.engine:
        return run_list_engine(args)
    rows = model_rows()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.0f} MB" if r["present"] else "not present"
        print(f"{r['name']:<10} {size:<12} {r['license']:<12} {r['path']}")
    return 0


def run_list_engine(args: argparse.Namespace) -> int:
    """The models an engine can serve, for engines that can say (``list_models()``)."""
    import asyncio

    from tedchat.cli import warn_plugin_failures
    from tedchat.errors import UsageError
    from tedchat.registry import load_context

    context = load_context(args.config)
    warn_plugin_failures(context)
    engine = context.engines.get(args.engine)
    list_models = getattr(engine, "list_models", None)
    if list_models is None:
        raise UsageError(
            f"engine {args.engine!r} (type {engine.type}) cannot list models; "
            "its model is set in its config table"
        )

    async def fetch() -> list[dict[str, Any]]:
        try:
            return await list_models()
        finally:
            await engine.close()

    models = asyncio.run(fetch())
    if args.json:
        print(json.dumps(models, ensure_ascii=False, indent=2))
        return 0
    for model in models:
        owner = model.get("owned_by")
        print(f"{model['id']}  ({owner})" if owner else model["id"])
    return 0


def run_path(args: argparse.Namespace) -> int:
    from tedchat.models import resolve_model

    print(resolve_model(args.name))
    return 0
