"""``tedchat ask``: one prompt, the answer streamed to stdout, metrics to stderr."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from tedchat.commands.history import add_history_option
from tedchat.errors import EXIT_CANCELLED, EXIT_ENGINE, HistoryError, UsageError

if TYPE_CHECKING:
    from tedchat.attachments import Attachment
    from tedchat.session import HistoryWriter
    from tedchat.tools.setup import OpenTools

DESCRIPTION = """\
Ask one question and stream the answer to stdout; one metrics line (TTFT, output tokens/s,
tokens; prompt tokens/s, cached prompt tokens and draft acceptance when the engine or server
measured them) goes to stderr. The prompt is the argument; text piped on stdin is appended to it
(git diff | tedchat ask "review this"); with no argument the prompt is stdin.

Attachments: -f PATH (repeatable) attaches a file, a glob ('src/*.py', quoted) or a folder
(recursed, skipping hidden, .gitignored and binary files); -f - attaches stdin. Text goes to
the model as fenced blocks named by path; images (PNG, JPEG, GIF, WebP) only to engines that
declare vision (http engines: vision = true). Each file's size and estimated tokens go to
stderr before sending; a binary file named directly, one over [attachments] max_file_bytes,
all over max_total_bytes, or an image for an engine without vision is refused (exit 2) before
anything is sent or saved.

Tools: an engine that supports them (http, llamacpp) is offered the tools of [tools] sources
(built-in file tools and shell, plugins, MCP servers); --mcp and --tools choose others. A call
that needs approval is asked on the terminal (y once, a always, n no); without a terminal it
is refused and the model is told. --yes approves every tool but the shell tool (which runs
unasked only with [tools.approval] shell = "auto"). Calls are shown on stderr.
--preset NAME uses [presets.NAME] (system prompt, engine, sampling, tools); options given
here win. An engine with price_input_per_mtok / price_output_per_mtok adds the reply's cost to
the metrics line and "cost_usd" to --json.
Exit codes: 0 ok, 1 engine error (or an MCP server that fails its handshake), 2 usage or
config error, 130 cancelled (Ctrl-C)."""


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ask",
        parents=parents,
        help="ask one question from the shell (pipes and scripts)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", nargs="?", help="the prompt (stdin is appended, or used alone)")
    p.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="PATH",
        help="attach a file, glob or folder (repeatable); - attaches stdin",
    )
    add_generation_options(p)
    add_preset_option(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object at the end instead of streaming text",
    )
    hist = p.add_mutually_exclusive_group()
    hist.add_argument("--no-history", action="store_true", help="do not record this exchange")
    hist.add_argument(
        "--continue",
        dest="continue_",
        action="store_true",
        help="continue the most recent conversation",
    )
    hist.add_argument(
        "--conversation", type=int, metavar="ID", help="continue conversation ID (history list)"
    )
    p.add_argument(
        "--branch",
        type=int,
        metavar="N",
        help="with --continue/--conversation: continue branch N (the conversation's leaves"
        " numbered 1, 2, ... in creation order, as 'history show' lists them) and make it the"
        " active one; without it the active path is continued",
    )
    add_history_option(p)
    p.add_argument(
        "--replay",
        action="store_true",
        help="compute the whole answer first, then play it on the engine's own (for wafer "
        "engines: emulated) clock; for emulated hardware faster than this machine",
    )
    tools = p.add_argument_group("tools")
    tools.add_argument(
        "--mcp",
        action="append",
        default=[],
        metavar="NAME",
        help="use the MCP server [mcp.NAME] (repeatable; started for this question)",
    )
    tools.add_argument(
        "--tools",
        metavar="SOURCE,...",
        help="the tool sources to offer instead of [tools] sources: builtin, plugin, "
        "plugin:NAME, mcp, mcp:NAME, or none",
    )
    tools.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="approve every tool call without asking, except the shell tool",
    )
    tools.add_argument(
        "--max-steps",
        type=_positive_int,
        metavar="N",
        help="model steps (model -> tools -> model) before the turn ends (default [tools] "
        "max_steps, 8)",
    )
    tools.add_argument(
        "--tool-choice",
        metavar="auto|required|none|NAME",
        help="whether the model must call a tool (required), may (auto, the default), must "
        "not (none), or must call tool NAME",
    )
    p.set_defaults(run=run)


def add_generation_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that generates (ask, chat, compare, bench)."""
    p.add_argument("--engine", metavar="NAME", help="engine to ask (see: tedchat engines)")
    p.add_argument("--system", metavar="TEXT", help="system prompt")
    p.add_argument("--max-tokens", type=_positive_int, metavar="N", help="answer length limit")
    p.add_argument(
        "--temperature", type=float, metavar="T", help="0 = greedy (default: the model's own)"
    )
    p.add_argument(
        "--top-p", type=float, metavar="P", help="nucleus sampling (default: the model's)"
    )
    p.add_argument("--seed", type=int, metavar="N", help="random seed for sampling")


def add_preset_option(p: argparse.ArgumentParser, *, engine: bool = True) -> None:
    """``--preset NAME`` (ask, chat, compare)."""
    sets = (
        "system prompt, engine, sampling and tools" if engine else "system prompt, sampling, tools"
    )
    p.add_argument(
        "--preset",
        metavar="NAME",
        help=f"use [presets.NAME] from the config: its {sets}; options given here win",
    )


def apply_preset(args: argparse.Namespace, settings: Any, *, engine: bool = True) -> Any:
    """Fill the options not given on the command line from ``--preset``'s table (command line >
    preset > engine config); its ``tools`` become ``[tools] sources`` unless ``--tools`` is
    given. ``engine=False`` (compare) leaves the preset's engine out. Returns the preset."""
    if not getattr(args, "preset", None):
        return None
    from tedchat.presets import find_preset

    preset = find_preset(settings.presets, args.preset)
    for arg, key in (
        ("system", "system_prompt"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("max_tokens", "max_tokens"),
        ("seed", "seed"),
    ):
        if getattr(args, arg, None) is None and getattr(preset, key) is not None:
            setattr(args, arg, getattr(preset, key))
    if engine and args.engine is None and preset.engine is not None:
        args.engine = preset.engine
    if preset.tools is not None and getattr(args, "tools", None) is None:
        from tedchat.tools.setup import sources_for

        settings.tools.sources = list(preset.tools)
        sources_for(settings)  # an unknown source is one line now, not at the first turn
    return preset


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def read_prompt(arg: str | None, stdin: Any = None) -> str:
    """The prompt from the argument and/or stdin, as documented in DESCRIPTION."""
    stdin = stdin if stdin is not None else sys.stdin
    piped = ""
    if stdin is not None and not stdin.isatty():
        piped = stdin.read()
    if arg is not None and piped.strip():
        return f"{arg}\n\n{piped}"
    prompt = arg if arg is not None else piped
    if not prompt.strip():
        raise UsageError("no prompt: give one as an argument or pipe it on stdin")
    return prompt


def generation_params(args: argparse.Namespace) -> Any:
    from tedchat.engine import GenerationParams

    return GenerationParams(
        max_tokens=args.max_tokens or GenerationParams.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        tool_choice=getattr(args, "tool_choice", None) or "auto",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from tedchat.cli import warn_plugin_failures
    from tedchat.engines import load_context

    if args.branch is not None and not (args.continue_ or args.conversation):
        raise UsageError(
            "--branch N picks a branch of the conversation --continue or"
            " --conversation ID continues"
        )
    files = list(getattr(args, "files", None) or [])
    if "-" in files:
        if args.prompt is None:
            raise UsageError("-f - attaches stdin: give the prompt as an argument")
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("-f - attaches stdin, but nothing is piped in")
        prompt = args.prompt
    else:
        prompt = read_prompt(args.prompt)
    context = load_context(args.config)
    warn_plugin_failures(context)
    apply_preset(args, context.settings)
    name = args.engine or context.settings.default_engine
    engine = context.engines.get(name)
    attachments = read_attachments(files, engine, context.settings)
    history = None
    if not args.no_history and context.settings.history.enabled:
        from tedchat.session import HistoryWriter

        history = HistoryWriter(
            _open_history(context.settings, args.new_history), on_error=_history_not_saved
        )
    elif args.continue_ or args.conversation:
        raise UsageError("--continue and --conversation need the history, which is turned off")
    try:
        return asyncio.run(_ask(engine, prompt, args, history, context, attachments))
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    finally:
        if history is not None:
            history.close()


def read_attachments(files: list[str], engine: Any, settings: Any) -> list[Attachment]:
    """The attachments ``-f`` names, checked against the caps and the engine, each described
    on stderr (size, estimated tokens); refusals raise before anything is sent."""
    if not files:
        return []
    from tedchat.attachments import Limits, check_engine, collect, describe, human_size
    from tedchat.conversation import attachment_tokens
    from tedchat.engine import capabilities_of

    attachments = collect(files, limits=Limits.from_settings(settings))
    check_engine(engine.name, attachments, vision=capabilities_of(engine).vision)
    tokens = [attachment_tokens(a) for a in attachments]
    for attachment, count in zip(attachments, tokens, strict=True):
        print(f"attached {describe(attachment, count)}", file=sys.stderr)
    if len(attachments) > 1:
        total = human_size(sum(a.size for a in attachments))
        print(f"attached {len(attachments)} files, {total}, ~{sum(tokens)} tokens", file=sys.stderr)
    return attachments


async def _ask(
    engine: Any,
    prompt: str,
    args: argparse.Namespace,
    history: HistoryWriter | None,
    context: Any,
    attachments: list[Attachment] | None = None,
) -> int:
    """The question's turn. MCP servers start first and come up while the engine loads; the
    prompt is saved before anything is sent."""
    tools = _open_tools(engine, args, context)
    try:
        return await _ask_with(engine, prompt, args, history, context, tools, attachments or [])
    finally:
        if tools is not None:
            await tools.aclose()


async def _ask_with(
    engine: Any,
    prompt: str,
    args: argparse.Namespace,
    history: HistoryWriter | None,
    context: Any,
    tools: OpenTools | None,
    attachments: list[Attachment],
) -> int:
    import asyncio

    from tedchat.attachments import user_message
    from tedchat.conversation import (
        build_messages,
        context_budget,
        conversation_from_store,
        engine_context_tokens,
        history_pairs,
    )
    from tedchat.engine import Notice, TextDelta, capabilities_of
    from tedchat.session import ToolCallFinished, ToolCallStarted, Turn, TurnHistory, run_turn

    params = generation_params(args)
    prices = context.engines.prices(engine.name)
    system, pairs, conversation_id = args.system or "", [], None
    if history is not None:
        store = history.store
        if args.continue_:
            conversation_id = store.last_conversation_id()
            if conversation_id is None:
                raise UsageError("--continue: there is no conversation yet")
        elif args.conversation:
            conversation_id = args.conversation
        if conversation_id is not None:
            if args.branch is not None:
                await history.set_active(conversation_id, branch=args.branch)
            previous = conversation_from_store(store.get_conversation(conversation_id))
            system = args.system or previous.system
            pairs = history_pairs(previous.exchanges)
            images = sum(a.kind == "image" for ex in previous.exchanges for a in ex.attachments)
            if images and not capabilities_of(engine).vision:
                print(
                    f"note: {engine.name} does not take images: the conversation's {images} "
                    "image(s) are left out",
                    file=sys.stderr,
                )
    context_tokens, _ = engine_context_tokens(engine, default=8192)
    caps = capabilities_of(engine)
    built = build_messages(
        system,
        pairs,
        user_message(prompt, attachments, vision=caps.vision),
        context_budget(context_tokens, params.max_tokens),
        tools=caps.tools,
        vision=caps.vision,
    )
    if built.dropped_exchanges:
        print(
            f"note: the conversation outgrew {engine.name}'s context; "
            f"the oldest {built.dropped_exchanges} exchange(s) were left out",
            file=sys.stderr,
        )
    record = TurnHistory(history, conversation_id, system=args.system or "", params=params)
    try:
        # before it is sent: nothing typed (or attached) is lost
        await record.save_prompt(
            prompt, engine=engine, attachments=attachments, on_wait=_say_history_wait
        )
    except HistoryError as exc:
        _history_not_saved(exc)  # the question is still worth an answer
    await engine.load()
    if tools is not None:
        for line in await tools.ready():  # a required (--mcp) server that failed raises here
            print(f"warning: {line}", file=sys.stderr)
    recorder = await record.begin_reply(engine)  # failures: said once, through on_error
    if args.replay:
        from tedchat.replay import ReplayEngine

        print(f"computing {engine.name}'s answer for the replay...", file=sys.stderr)
        engine = ReplayEngine(engine)
        await engine.prepare(built.messages, params)
    turn = Turn(engine, built.messages, params)
    out = sys.stdout

    def show(event: Any, _turn: Turn) -> None:
        if isinstance(event, Notice):
            print(f"note: {event.text}", file=sys.stderr)
        elif not args.json and isinstance(event, TextDelta):
            out.write(event.text)
            out.flush()
        elif isinstance(event, ToolCallStarted) and not args.json:
            out.flush()
        elif isinstance(event, ToolCallFinished):
            print(_tool_line(event.record), file=sys.stderr)

    try:
        result = await run_turn(
            turn,
            on_event=show,
            recorder=recorder,
            tools=tools.toolbox if tools is not None else None,
            approver=terminal_approver() if tools is not None else None,
            max_steps=args.max_steps or context.settings.tools.max_steps,
        )
    except (asyncio.CancelledError, KeyboardInterrupt):
        metrics = turn.meter.snapshot()
        if args.json:
            calls = turn.tool_calls if tools is not None else None
            _print_json(engine, turn.text, metrics, error="cancelled", calls=calls, prices=prices)
        else:
            out.write("\n")
            _print_metrics_line(engine, metrics, prices)
        return EXIT_CANCELLED
    await engine.close()
    if args.json:
        _print_json(
            engine,
            result.text,
            result.metrics,
            error=result.error.message if result.error else None,
            calls=result.tool_calls if tools is not None else None,
            prices=prices,
        )
    else:
        if result.text and not result.text.endswith("\n"):
            out.write("\n")
        out.flush()
        _print_metrics_line(engine, result.metrics, prices)
    if result.error is not None:
        print(f"error: {result.error.message}", file=sys.stderr)
        if result.error.hint:
            print(f"hint: {result.error.hint}", file=sys.stderr)
        return EXIT_ENGINE
    return 0


def _history_not_saved(exc: HistoryError) -> None:
    print(f"warning: history not saved: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)


def _open_history(settings: Any, new_history: bool) -> Any:
    """The history store; opening writes (replies whose writer died are marked), so it waits
    for another process's lock like any write: after half a second, one line says so."""
    import threading

    from tedchat.history.files import open_history
    from tedchat.history.integrity import waiting_for_lock
    from tedchat.session import SLOW_SAVE_S

    line = waiting_for_lock(settings.history.lock_timeout_s)
    timer = threading.Timer(SLOW_SAVE_S, _say_history_wait, args=(line,))
    timer.daemon = True
    timer.start()
    try:
        return open_history(settings, new_history=new_history)
    finally:
        timer.cancel()


def _say_history_wait(line: str | None) -> None:
    if line:
        print(f"note: {line}", file=sys.stderr)


def _print_metrics_line(engine: Any, metrics: Any, prices: Any = None) -> None:
    from tedchat.gauges import reply_cost
    from tedchat.metrics import format_metrics_line

    line = f"[{engine.name} · {engine.model}] {format_metrics_line(metrics)}"
    cost = reply_cost(prices, metrics.prompt_tokens, metrics.output_tokens)
    if cost is not None:
        line += f" · {cost.text()}"
    print(line, file=sys.stderr)


def _print_json(
    engine: Any,
    text: str,
    metrics: Any,
    *,
    error: str | None,
    calls: list[Any] | None = None,
    prices: Any = None,
) -> None:
    from tedchat.answer_record import answer_record

    record = answer_record(engine, text, metrics, prices)
    if calls is not None:
        record["tool_calls"] = [
            {
                k: v
                for k, v in call.as_dict().items()
                if k in ("name", "arguments", "result", "error", "elapsed_s", "source")
            }
            for call in calls
        ]
        record["steps"] = metrics.steps
        record["tool_s"] = metrics.tool_s
    if error:
        record["error"] = error
    print(json.dumps(record, ensure_ascii=False, indent=2))


def _tool_line(record: Any) -> str:
    """One stderr line per ended tool call: what ran, how long, and the start of the result."""
    arguments = json.dumps(record.args, ensure_ascii=False) if record.args else record.arguments
    if len(arguments) > 80:
        arguments = arguments[:77] + "..."
    if record.error is not None:
        outcome = f"{record.status}: {record.error}"
    else:
        outcome = (record.result or "").strip().replace("\n", " ")
    if len(outcome) > 100:
        outcome = outcome[:97] + "..."
    source = f" [{record.source}]" if record.source else ""
    return f"tool {record.name}{source} {arguments} ({record.elapsed_s:.2f} s) -> {outcome}"


def _open_tools(engine: Any, args: argparse.Namespace, context: Any) -> OpenTools | None:
    """The toolbox for this question, or None when no tool is offered.

    ``--mcp``, ``--tools`` and a ``--tool-choice`` other than ``auto`` ask for tools: an engine
    that does not support them is a usage error. Otherwise tools are offered where the engine
    supports them and ``[tools] sources`` names any."""
    from tedchat.engine import capabilities_of
    from tedchat.tools.setup import open_tools, sources_for

    asked = bool(args.mcp or args.tools or (args.tool_choice or "auto") != "auto")
    if not capabilities_of(engine).tools:
        if asked:
            raise UsageError(
                f"engine {engine.name!r} (type {engine.type}) does not support tools",
                hint="use an http or llamacpp engine: tedchat engines",
            )
        return None
    sources = sources_for(context.settings, tools=args.tools, mcp=args.mcp)
    if not sources:
        return None
    return open_tools(context.settings, context.plugins, sources, yes=args.yes, required=args.mcp)


def terminal_approver() -> Any:
    """Asks on the controlling terminal (even when stdin is a pipe); None without one."""
    import asyncio

    try:
        tty = open("/dev/tty", "r+", encoding="utf-8")  # noqa: SIM115 - kept for the process
    except OSError:
        return None
    lock = asyncio.Lock()

    def ask(request: Any) -> str:
        arguments = json.dumps(dict(request.args), ensure_ascii=False)
        tty.write(
            f"\nallow tool {request.name} [{request.source}] {arguments}?"
            " [y] once, [a] always, [N] no: "
        )
        tty.flush()
        answer = tty.readline().strip().lower()
        return {"y": "once", "yes": "once", "a": "always", "always": "always"}.get(answer, "deny")

    async def approve(request: Any) -> Any:
        async with lock:  # calls of one step run concurrently; ask one at a time
            return await asyncio.to_thread(ask, request)

    return approve
