"""``tedchat chat`` (and ``tedchat`` with no command): the chat screen."""

from __future__ import annotations

import argparse
from typing import Any

from tedchat.commands.ask import add_generation_options, add_preset_option
from tedchat.commands.history import add_history_option

DESCRIPTION = """\
Open the chat screen: answers stream as Markdown with live TTFT and tokens/s in the status bar.
Enter sends, Ctrl+J starts a new line, Ctrl+G writes the prompt in $VISUAL/$EDITOR, Esc stops
an answer, F11 picks a preset, F1 lists every key, Ctrl+P opens the command palette (switch
engine, conversations, compare, theme). --preset NAME starts with [presets.NAME] (its system
prompt, engine, sampling and tools); options given here win over it."""


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "chat",
        parents=parents,
        help="chat in the terminal UI (the default command)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_generation_options(p)
    add_preset_option(p)
    add_theme_option(p)
    add_history_option(p)
    p.set_defaults(run=run)


def add_theme_option(p: argparse.ArgumentParser) -> None:
    """``--theme``, shared by the commands that open the UI."""
    p.add_argument(
        "--theme",
        metavar="NAME",
        help="UI theme (tokyo-electron, cerebras-dark, light, or one in <config dir>/themes)",
    )


def ui_params(args: argparse.Namespace) -> Any:
    """Generation parameters from the command line, as the UI starts with them."""
    from tedchat.commands.ask import generation_params

    return generation_params(args)


def run(args: argparse.Namespace) -> int:
    from tedchat.engines import load_context

    context = load_context(args.config)
    return run_app(context, **app_options(args, context))


def app_options(args: argparse.Namespace, context: Any) -> dict[str, Any]:
    """The app's options from the command line and ``--preset`` (command line > preset)."""
    from tedchat.commands.ask import apply_preset

    apply_preset(args, context.settings)
    engine = args.engine or context.settings.default_engine
    context.engines.spec(engine)  # an unknown name is a clean error before the screen opens
    return {
        "engine": engine,
        "theme": getattr(args, "theme", None),
        "params": ui_params(args),
        "system": args.system or "",
        "new_history": args.new_history,
    }


def run_app(context: Any, **options: Any) -> int:
    """Run the UI until it exits, then close the history and the engines."""
    import asyncio

    from tedchat.tui.app import TedchatApp

    app = TedchatApp(context, **options)
    try:
        result = app.run()
    finally:
        asyncio.run(app.close_resources())
    return int(result or 0)
