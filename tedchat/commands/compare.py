"""``tedchat compare``: one prompt to 2-4 engines at once, side by side."""

from __future__ import annotations

import argparse
from typing import Any

from tedchat.commands.ask import add_generation_options, add_preset_option
from tedchat.commands.history import add_history_option
from tedchat.errors import UsageError

DESCRIPTION = """\
Open the side-by-side screen: every prompt goes to all the engines at once, each answer streams
in its own pane with its own live TTFT and tokens/s, and a table compares them when all are
done (the winner of each figure marked). Local engines share the machine's thread budget.
The race start: a paced pane whose emulated hardware streams faster than this machine can
make the text (its tokens/s, measured when the engine loads) prepares first: its answer is
computed, shown as "preparing N%". Then every pane starts on one instant: prepared panes play
each token at its emulated time, live engines get their request then; TTFT and tokens/s count
from that start, the preparation time is shown (and stored) apart. Esc cancels a preparation.
--replay prepares every pane (engines without an emulated clock replay as they streamed);
--live prepares none (paced panes then show this machine's speed).
--preset NAME applies [presets.NAME]'s system prompt, sampling and tools (not its engine).
Engines with prices (price_input_per_mtok, price_output_per_mtok) get a cost column.
When the answers are in, F3 continues the conversation in chat with the pane you pick (its
reply becomes the conversation's reply; the others stay as siblings).
--blind votes as 'tedchat arena' does (see 'tedchat arena --help'); --seed N fixes the order."""


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    from tedchat.commands.chat import add_theme_option

    p = sub.add_parser(
        "compare",
        parents=parents,
        help="compare 2-4 engines side by side in the terminal UI",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("engines", nargs="+", metavar="ENGINE", help="2 to 4 engine names")
    pacing = p.add_mutually_exclusive_group()
    pacing.add_argument(
        "--replay",
        action="store_true",
        help="prepare every pane: compute the answers first, then play them from the race start",
    )
    pacing.add_argument(
        "--live",
        action="store_true",
        help="prepare no pane: every engine streams live from the race start",
    )
    p.add_argument(
        "--blind",
        action="store_true",
        help="blind mode, as 'tedchat arena': panes labelled A, B, ... in a shuffled order"
        " (--seed N fixes it), engines named only after your vote",
    )
    add_generation_options(p)
    add_preset_option(p, engine=False)
    add_theme_option(p)
    add_history_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tedchat.commands.chat import run_app
    from tedchat.engines import load_context

    context = load_context(args.config)
    return run_app(context, **app_options(args, context))


def app_options(args: argparse.Namespace, context: Any) -> dict[str, Any]:
    """The app's options from the command line and ``--preset`` (its engine is ignored)."""
    from tedchat.commands.ask import apply_preset
    from tedchat.commands.chat import ui_params

    if args.engine:
        raise UsageError("compare takes its engines as arguments, not --engine")
    if not 2 <= len(args.engines) <= 4:
        raise UsageError(f"compare takes 2 to 4 engines, got {len(args.engines)}")
    if len(set(args.engines)) != len(args.engines):
        raise UsageError("compare the same engine with itself? name each engine once")
    apply_preset(args, context.settings, engine=False)  # its engines are the arguments
    for name in args.engines:
        context.engines.spec(name)  # unknown names fail here, with the list of known ones
    return {
        "compare": list(args.engines),
        "replay": args.replay,
        "live": args.live,
        "theme": getattr(args, "theme", None),
        "params": ui_params(args),
        "system": args.system or "",
        "new_history": args.new_history,
        "blind": bool(getattr(args, "blind", False)),
        "seed": args.seed,
        "preset": getattr(args, "preset", None),
    }
