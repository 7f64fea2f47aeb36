"""``tedchat arena``: blind side-by-side votes, the leaderboard they make, and their export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tedchat.errors import UsageError

DESCRIPTION = """\
tedchat arena ENGINE ENGINE [ENGINE [ENGINE]]
    Open the blind side-by-side screen: every prompt goes to all the engines at once, the panes
    are labelled A, B, ... in a shuffled order (--seed N fixes it) and nothing names an engine
    (no name, model, figures or summary) until you vote. Panes whose engines run the same text
    model are flagged before the vote; such votes are stored but stay out of the ranking.
    When the answers are in: 1-4 (or a-d) picks the best pane, t is a tie, x is all bad (keys:
    [keymap] arena-vote-a ... arena-vote-d, arena-tie, arena-all-bad). The vote reveals every
    pane's engine, model, TTFT and tok/s; w then continues the conversation in chat with the
    winner (arena-continue). Tab back to the prompt: the next prompt is a new blind round.
    --seed N also seeds sampling, as everywhere.
tedchat arena leaderboard [--json]
    Rank the engines by a Bradley-Terry fit of the votes, with a 95% interval (Fisher
    information) and the number of votes, beside their median TTFT and tok/s. A tie counts half
    a win each; 'all bad' votes, and votes between panes sharing a text model, are stored but
    not fitted. --json: {method, engines: [...]}, an empty list when there are no votes.
tedchat arena export [-o FILE]
    Write every vote as JSON Lines: the prompt, each pane's engine, model, reply and figures,
    the outcome and the pairwise results."""

ACTIONS = ("leaderboard", "export")


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    from tedchat.commands.ask import add_generation_options, add_preset_option
    from tedchat.commands.chat import add_theme_option
    from tedchat.commands.history import add_history_option

    p = sub.add_parser(
        "arena",
        parents=parents,
        help="blind votes between 2-4 engines, the leaderboard, the votes' export",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "words",
        nargs="+",
        metavar="ENGINE|leaderboard|export",
        help="2 to 4 engine names, or leaderboard, or export",
    )
    p.add_argument(
        "--replay",
        action="store_true",
        help="as compare --replay: compute the answers first, then play them from a common start",
    )
    p.add_argument("--json", action="store_true", help="leaderboard: print JSON")
    p.add_argument("-o", "--output", metavar="FILE", help="export: write to FILE (default: stdout)")
    add_generation_options(p)  # --seed also fixes the blind order
    add_preset_option(p, engine=False)
    add_theme_option(p)
    add_history_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    action = args.words[0] if args.words[0] in ACTIONS else None
    if action is None:
        if args.json or args.output:
            raise UsageError("--json and --output go with 'arena leaderboard' / 'arena export'")
        return run_vote(args)
    if len(args.words) > 1:
        raise UsageError(f"arena {action} takes no engine names")
    if action == "leaderboard":
        if args.output:
            raise UsageError("--output goes with 'arena export'")
        return run_leaderboard(args)
    if args.json:
        raise UsageError("arena export writes JSON Lines already; --json goes with leaderboard")
    return run_export(args)


def run_vote(args: argparse.Namespace) -> int:
    from tedchat.commands.chat import run_app
    from tedchat.commands.compare import app_options
    from tedchat.engines import load_context

    args.engines = args.words
    _compare_defaults(args)
    if not 2 <= len(args.engines) <= 4:
        raise UsageError(f"the arena takes 2 to 4 engines, got {len(args.engines)}")
    context = load_context(args.config)
    options = app_options(args, context)
    options["blind"] = True
    return run_app(context, **options)


def _compare_defaults(args: argparse.Namespace) -> None:
    """Give ``args`` the defaults of every ``compare`` option the arena does not take, so
    :func:`tedchat.commands.compare.app_options` reads them as compare would."""
    from tedchat.commands import compare

    parser = argparse.ArgumentParser(add_help=False)
    compare.add_parser(parser.add_subparsers(), [])
    for name, value in vars(parser.parse_args(["compare", "a", "b"])).items():
        if not hasattr(args, name):
            setattr(args, name, value)


def _votes(args: argparse.Namespace) -> list[Any]:
    from tedchat.config import load_settings
    from tedchat.history.files import open_history

    with open_history(load_settings(args.config), new_history=args.new_history) as store:
        return list(store.votes())


def run_leaderboard(args: argparse.Namespace) -> int:
    from tedchat.leaderboard import leaderboard, render_text

    board = leaderboard(_votes(args))
    if args.json:
        print(json.dumps(board.as_json(), ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(render_text(board))
    return 0


def run_export(args: argparse.Namespace) -> int:
    lines = "".join(json.dumps(v.as_dict(), ensure_ascii=False) + "\n" for v in _votes(args))
    if args.output and args.output != "-":
        out = Path(args.output).expanduser()
        try:
            out.write_text(lines, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
        print(f"wrote {lines.count(chr(10))} votes to {out}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0
