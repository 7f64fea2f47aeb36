"""The ``tedchat`` command: argument parsing, error reporting and exit codes.

Each command lives in its own module under :mod:`tedchat.commands` with ``add_parser`` (cheap:
argparse only) and ``run`` (where the heavy imports happen), so ``tedchat --help`` imports
neither Textual nor NumPy nor llama.cpp.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tedchat import __version__, paths
from tedchat.errors import EXIT_CANCELLED, EXIT_ENGINE, TedchatError

if TYPE_CHECKING:
    from tedchat.engines import Context
    from tedchat.redact import Redactor

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Command modules in the order --help lists them.
COMMANDS = (
    "chat",
    "compare",
    "arena",
    "ask",
    "engines",
    "tools",
    "models",
    "config",
    "wafer",
    "history",
    "bench",
)


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
    if args.command is None:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "chat"])
        args.config = getattr(args, "config", None)
        args.debug = getattr(args, "debug", False)
    handler = _start_debug_log(args.config) if args.debug else None
    try:
        return int(args.run(args) or 0)
    except TedchatError as exc:
        _report(exc, args.debug, _redactor_for(handler, args.config))
        return exc.exit_code
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, unless --debug
        redact = _redactor_for(handler, args.config)
        if args.debug:
            logging.getLogger("tedchat").exception("unexpected error")
            _print_traceback(exc, redact)
        print(
            redact(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)"),
            file=sys.stderr,
        )
        return EXIT_ENGINE
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _report(exc: TedchatError, debug: bool, redact: Redactor) -> None:
    if debug:
        logging.getLogger("tedchat").error("%s", exc.message, exc_info=exc)
        _print_traceback(exc, redact)
    print(redact(f"error: {exc.message}"), file=sys.stderr)
    if exc.hint:
        print(redact(f"hint: {exc.hint}"), file=sys.stderr)


def _print_traceback(exc: BaseException, redact: Redactor) -> None:
    import traceback

    sys.stderr.write(redact("".join(traceback.format_exception(exc))))


def known_redactor(config: str | None) -> Redactor:
    """A redactor that knows every secret of the config (and the variables it names) and of
    the environment, so that they are hidden in any form wherever they turn up."""
    from tedchat.config import load_settings
    from tedchat.redact import MCP_SECRET_TABLES, Redactor, environ_secrets, secrets_in

    redactor = Redactor(environ_secrets(os.environ))
    try:
        settings = load_settings(config, warn=False)
    except TedchatError:
        return redactor  # the command reports a broken config itself
    for table in settings.engines.values():
        redactor.add(*secrets_in(table, os.environ))
    for table in settings.mcp.values():  # an MCP server's env and headers are secret whole
        redactor.add(*secrets_in(table, os.environ, MCP_SECRET_TABLES))
    return redactor


def _redactor_for(handler: logging.Handler | None, config: str | None) -> Redactor:
    formatter = getattr(handler, "formatter", None)
    redactor = getattr(formatter, "redactor", None)
    return redactor if redactor is not None else known_redactor(config)


def _start_debug_log(config: str | None) -> logging.Handler:
    """Log everything (tedchat's and every library's records) to a private file, redacted."""
    from tedchat.redact import RedactingFormatter

    path = paths.private_file(paths.state_dir() / "tedchat.log")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(LOG_FORMAT, known_redactor(config)))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    print(f"debug log: {path}", file=sys.stderr)
    return handler


def warn_plugin_failures(context: Context) -> None:
    """One line per plugin that failed to load (they are reported, never fatal)."""
    for failure in context.plugins.failures:
        print(f"warning: {failure.message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
