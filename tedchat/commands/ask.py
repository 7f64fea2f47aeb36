"""``tedchat ask``: one prompt, the answer streamed to stdout, metrics to stderr."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tedchat.commands.history import add_history_option
from tedchat.errors import EXIT_CANCELLED, EXIT_ENGINE, HistoryError, UsageError

DESCRIPTION = """\
Ask one question and stream the answer to stdout; one metrics line (TTFT, output tokens/s,
tokens) goes to stderr. The prompt is the argument; text piped on stdin is appended to it
(git diff | tedchat ask "review this"); with no argument the prompt is stdin.
Exit codes: 0 ok, 1 engine error, 2 usage or config error, 130 cancelled (Ctrl-C)."""


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ask",
        parents=parents,
        help="ask one question from the shell (pipes and scripts)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", nargs="?", help="the prompt (stdin is appended, or used alone)")
    add_generation_options(p)
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
    add_history_option(p)
    p.add_argument(
        "--replay",
        action="store_true",
        help="compute the whole answer first, then play it on the engine's own (for wafer "
        "engines: emulated) clock; for emulated hardware faster than this machine",
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
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from tedchat.cli import warn_plugin_failures
    from tedchat.engines import load_context

    prompt = read_prompt(args.prompt)
    context = load_context(args.config)
    warn_plugin_failures(context)
    name = args.engine or context.settings.default_engine
    engine = context.engines.get(name)
    store = None
    if not args.no_history and context.settings.history.enabled:
        from tedchat.history.files import open_history

        store = open_history(context.settings, new_history=args.new_history)
    elif args.continue_ or args.conversation:
        raise UsageError("--continue and --conversation need the history, which is turned off")
    try:
        return asyncio.run(_ask(engine, prompt, args, store))
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    finally:
        if store is not None:
            store.close()


async def _ask(engine: Any, prompt: str, args: argparse.Namespace, store: Any) -> int:
    import asyncio

    from tedchat.conversation import (
        build_messages,
        context_budget,
        conversation_from_store,
        engine_context_tokens,
        history_pairs,
    )
    from tedchat.engine import Notice, TextDelta
    from tedchat.session import Turn, run_turn

    params = generation_params(args)
    system, pairs, conversation_id = args.system or "", [], None
    if store is not None:
        if args.continue_:
            conversation_id = store.last_conversation_id()
            if conversation_id is None:
                raise UsageError("--continue: there is no conversation yet")
        elif args.conversation:
            conversation_id = args.conversation
        if conversation_id is not None:
            previous = conversation_from_store(store.get_conversation(conversation_id))
            system = args.system or previous.system
            pairs = history_pairs(previous.exchanges)
        else:
            conversation_id = store.new_conversation(system=args.system, params=params)
    context_tokens, _ = engine_context_tokens(engine, default=8192)
    built = build_messages(system, pairs, prompt, context_budget(context_tokens, params.max_tokens))
    if built.dropped_exchanges:
        print(
            f"note: the conversation outgrew {engine.name}'s context; "
            f"the oldest {built.dropped_exchanges} exchange(s) were left out",
            file=sys.stderr,
        )
    recorder = None
    if store is not None:  # the question is saved before it is sent: nothing typed is lost
        try:
            user_id = store.add_user_message(
                conversation_id, prompt, engine=engine.name, model=engine.model
            )
            recorder = _GuardedRecorder(
                store.begin_reply(conversation_id, user_id, engine.name, engine.model)
            )
        except HistoryError as exc:
            _history_not_saved(exc)  # the question is still worth an answer
    await engine.load()
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

    try:
        result = await run_turn(turn, on_event=show, recorder=recorder)
    except (asyncio.CancelledError, KeyboardInterrupt):
        metrics = turn.meter.snapshot()
        if args.json:
            _print_json(engine, turn.text, metrics, error="cancelled")
        else:
            out.write("\n")
            _print_metrics_line(engine, metrics)
        return EXIT_CANCELLED
    await engine.close()
    if args.json:
        _print_json(
            engine, result.text, result.metrics, error=result.error and result.error.message
        )
    else:
        if result.text and not result.text.endswith("\n"):
            out.write("\n")
        out.flush()
        _print_metrics_line(engine, result.metrics)
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


class _GuardedRecorder:
    """The reply's writer, except that a history failure while the answer streams (a full
    disk, a lock held past ``[history] lock_timeout_s``) is said once on stderr and recording
    stops: the answer itself still reaches stdout."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.failed = False

    def append(self, text: str) -> None:
        self._call(self.writer.append, text)

    def finish(self, finish_reason: str, metrics: Any) -> None:
        self._call(self.writer.finish, finish_reason, metrics)

    def _call(self, fn: Any, *args: Any) -> None:
        if self.failed:
            return
        try:
            fn(*args)
        except HistoryError as exc:
            self.failed = True
            _history_not_saved(exc)


def _print_metrics_line(engine: Any, metrics: Any) -> None:
    from tedchat.metrics import format_metrics_line

    print(f"[{engine.name} · {engine.model}] {format_metrics_line(metrics)}", file=sys.stderr)


def answer_record(engine: Any, text: str, metrics: Any) -> dict[str, Any]:
    """The JSON shape of one answer, shared by ``ask --json`` and ``bench`` records."""
    m = metrics.as_dict()
    record: dict[str, Any] = {
        "engine": engine.name,
        "model": engine.model,
        "text": text,
        "prompt_tokens": m["prompt_tokens"],
        "output_tokens": m["output_tokens"],
        "output_tokens_source": m["output_tokens_source"],
        "ttft_s": m["ttft_s"],
        "output_tokens_per_s": m["output_tokens_per_s"],
        "elapsed_s": m["elapsed_s"],
        "finish_reason": m["finish_reason"],
        "timings": m["timings"],
    }
    if m["reasoning_tokens"]:
        record["reasoning_tokens"] = m["reasoning_tokens"]
        record["time_to_first_reasoning_s"] = m["time_to_first_reasoning_s"]
    if metrics.emulated is not None:
        e = metrics.emulated
        record["emulated"] = {
            "hardware": e.hardware,
            "systems": e.systems,
            "timing_target": e.timing_target,
            "ttft_s": e.ttft_s,
            "output_tokens_per_s": e.output_tokens_per_s,
            "breakdown": dict(e.breakdown),
            "replay": e.replay,
        }
    return record


def _print_json(engine: Any, text: str, metrics: Any, *, error: str | None) -> None:
    record = answer_record(engine, text, metrics)
    if error:
        record["error"] = error
    print(json.dumps(record, ensure_ascii=False, indent=2))
