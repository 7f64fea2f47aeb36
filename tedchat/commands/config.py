"""``tedchat config path|show|init``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tedchat.errors import UsageError


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "config",
        parents=parents,
        help="show or create the config file",
        description="Config precedence: defaults < file < environment < command line. "
        "The file is --config PATH, else $TEDCHAT_CONFIG, else config.toml in the user "
        "config dir.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("path", parents=parents, help="print the config file's path").set_defaults(
        run=run_path
    )
    actions.add_parser(
        "show", parents=parents, help="print the effective settings as TOML (secrets hidden)"
    ).set_defaults(run=run_show)
    init = actions.add_parser(
        "init", parents=parents, help="write the commented example config to the config path"
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(run=run_init)


def run_path(args: argparse.Namespace) -> int:
    from tedchat.config import config_path

    path, _ = config_path(args.config)
    print(path)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from tedchat.config import to_toml
    from tedchat.engines import load_context

    context = load_context(args.config)
    engines = {}
    for name in context.engines.names():
        spec = context.engines.spec(name)
        engines[name] = {"type": spec.type, **context.engines.describe(name)["settings"]}
    source = context.settings.source
    print(f"# from: {source if source else 'defaults (no config file)'}")
    print(to_toml(context.settings, engines))
    return 0


def run_init(args: argparse.Namespace) -> int:
    from tedchat.config import config_path
    from tedchat.paths import resource_path, write_private_text

    path, _ = config_path(args.config)
    if path.exists() and not args.force:
        raise UsageError(f"{path} already exists (use --force to overwrite it)")
    # Private (0600): a config is where API keys end up.
    write_private_text(path, resource_path("config.example.toml").read_text(encoding="utf-8"))
    print(f"wrote {path}", file=sys.stderr)
    return 0
