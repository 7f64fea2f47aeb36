"""``tedchat history``: list, show, search, export, import and delete conversations."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from tedchat.errors import UsageError


def add_history_option(p: argparse.ArgumentParser) -> None:
    """``--new-history``, for every command that opens the history."""
    p.add_argument(
        "--new-history",
        action="store_true",
        help="start a fresh history file next to the current one (nothing is moved or deleted)",
    )


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "history",
        parents=parents,
        help="list, search and export past conversations",
        description="The conversation history (SQLite in the user data dir, or [history] path).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help: str, run: Any) -> argparse.ArgumentParser:
        a = actions.add_parser(name, parents=parents, help=help, description=help)
        add_history_option(a)
        a.set_defaults(run=run)
        return a

    ls = action("list", "list conversations, most recently updated first", run_list)
    ls.add_argument("--limit", type=int, default=50, metavar="N")
    ls.add_argument("--json", action="store_true", help="print JSON")
    show = action(
        "show",
        "print a conversation's active path (or another branch) with its figures; prompts and"
        " replies with siblings say which they are (2 of 3)",
        run_show,
    )
    show.add_argument("id", type=int)
    show.add_argument(
        "--branch",
        type=int,
        metavar="N",
        help="print branch N instead: branches are the conversation's leaves numbered 1, 2, ..."
        " in the order they were created (the header line says how many there are)",
    )
    show.add_argument(
        "--json", action="store_true", help="print JSON (the export format: the whole tree)"
    )
    search = action("search", "full-text search (Japanese words of any length too)", run_search)
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=50, metavar="N")
    search.add_argument("--json", action="store_true", help="print JSON")
    export = action("export", "export a conversation as Markdown or JSON", run_export)
    export.add_argument("id", type=int)
    export.add_argument("--format", choices=("md", "json"), default="md")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    imp = action("import", "import a conversation exported as JSON", run_import)
    imp.add_argument("file", help="JSON file from 'history export --format json' (- for stdin)")
    delete = action("delete", "delete a conversation", run_delete)
    delete.add_argument("id", type=int)


def _store(args: argparse.Namespace) -> Any:
    from tedchat.config import load_settings
    from tedchat.history.files import open_history

    return open_history(load_settings(args.config), new_history=args.new_history)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def run_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = store.list_conversations(limit=args.limit)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no conversations yet", file=sys.stderr)
    for r in rows:
        print(
            f"{r.id:>6}  {_when(r.updated)}  {r.message_count:>4} msgs  {r.title or '(untitled)'}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    if args.json and args.branch is not None:
        raise UsageError("--json prints the whole tree: leave out --branch")
    with _store(args) as store:
        text = (
            store.export_json(args.id)
            if args.json
            else store.export_markdown(args.id, branch=args.branch)
        )
    print(text)
    return 0


def run_search(args: argparse.Namespace) -> int:
    with _store(args) as store:
        hits = store.search(args.query, limit=args.limit)
    if args.json:
        print(json.dumps([asdict(h) for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print(f"no matches for {args.query!r}", file=sys.stderr)
    for h in hits:
        snippet = " ".join(h.snippet.split())
        print(f"{h.conversation_id:>6}  {_when(h.created)}  {h.role:<9}  {snippet}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    with _store(args) as store:
        text = (
            store.export_json(args.id) if args.format == "json" else store.export_markdown(args.id)
        )
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


def run_import(args: argparse.Namespace) -> int:
    if args.file == "-":
        data = sys.stdin.read()
    else:
        try:
            data = Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
    with _store(args) as store:
        new_id = store.import_json(data)
    print(new_id)
    print(f"imported as conversation {new_id}", file=sys.stderr)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    with _store(args) as store:
        store.delete(args.id)
    print(f"deleted conversation {args.id}", file=sys.stderr)
    return 0
