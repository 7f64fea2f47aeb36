"""The ``tedchat`` command: argument parsing, error reporting and exit codes.

Each command lives in its own module under :mod:`tedchat.commands` with ``add_parser`` (cheap:
argparse only) and ``run`` (where the heavy imports happen), so ``tedchat --help`` imports
neither Textual nor NumPy nor llama.cpp.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tedchat import __version__, paths
from tedchat.errors import EXIT_CANCELLED, EXIT_ENGINE, TedchatError

if TYPE_CHECKING:
    from tedchat.engines import Context

# Command modules in the order --help lists them.
COMMANDS = ("chat", "compare", "ask", "engines", "models", "config", "wafer", "history", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tedchat",
        description="A terminal chat client for large language models. "
        "With no command, opens the chat screen.",
        epilog="Run 'tedchat COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"tedchat {__version__}")
    add_common_options(parser)
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"tedchat.commands.{name}")
        module.add_parser(sub, [common])
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every command takes, before or after the command name."""
    parser.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS, help="config file to read"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="full tracebacks, and a log file in the user state dir",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.config = getattr(args, "config", None)
    args.debug = getattr(args, "debug", False)
    if args.debug:
        _start_debug_log()
    if args.command is None:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "chat"])
        args.config = getattr(args, "config", None)
        args.debug = getattr(args, "debug", False)
    try:
        return int(args.run(args) or 0)
    except TedchatError as exc:
        _report(exc, args.debug)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, unless --debug
        if args.debug:
            logging.getLogger("tedchat").exception("unexpected error")
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_ENGINE


def _report(exc: TedchatError, debug: bool) -> None:
    if debug:
        logging.getLogger("tedchat").error("%s", exc.message, exc_info=exc)
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)


def _start_debug_log() -> None:
    log_dir = paths.state_dir()
    log_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=log_dir / "tedchat.log",
        level=logging.DEBUG,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    print(f"debug log: {log_dir / 'tedchat.log'}", file=sys.stderr)


def warn_plugin_failures(context: Context) -> None:
    """One line per plugin that failed to load (they are reported, never fatal)."""
    for failure in context.plugins.failures:
        print(f"warning: {failure.message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
