"""``tedchat models``: the local model registry."""

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
    ls = actions.add_parser("list", parents=parents, help="list registry models")
    ls.add_argument("--json", action="store_true", help="print JSON")
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
    rows = model_rows()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.0f} MB" if r["present"] else "not present"
        print(f"{r['name']:<10} {size:<12} {r['license']:<12} {r['path']}")
    return 0


def run_path(args: argparse.Namespace) -> int:
    from tedchat.models import resolve_model

    print(resolve_model(args.name))
    return 0
