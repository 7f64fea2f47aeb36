"""``tedchat bench``: engines side by side — tables, bar charts and a JSON record."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tedchat.errors import EXIT_CANCELLED, EXIT_ENGINE, UsageError

DESCRIPTION = """\
Run every prompt on every engine, interleaved (A B A B ...) so that drift on the machine hits
them alike, and report TTFT and output tokens/s per engine and per prompt: medians with min and
max (and p90 from 10 runs on), token counts, errors, and ratios against the first engine.
Emulated engines show their emulated figures beside the measured ones.

Progress goes to stderr; the tables and bar charts to stdout. The JSON record (machine,
versions, redacted engine settings, every run's raw figures) is written to --out, or to
bench/ in the user data dir. Ctrl-C writes the runs finished so far, marked incomplete; the
file is also rewritten as the bench goes, so even a crash leaves all but the last seconds.
Prompt caches are cleared before every run where the engine can (the report says where it
could not). bench writes no chat history.

Exit codes: 0 ok, 1 some runs failed or an engine did not load (the report and the record
still cover everything else), 2 usage or config error, 130 cancelled (record written)."""

EPILOG = """\
examples:
  tedchat bench --engines local,wafer --runs 3 --max-tokens 64
  tedchat bench --engines local --prompts builtin:reference,short-ja --temperature 0
  tedchat bench --engines a,b --concurrency 4 --html report.html --csv runs.csv
  tedchat bench --report record.json --html report.html   # report a saved record again"""


def _count(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        parents=parents,
        help="benchmark engines side by side (TTFT, tokens/s, charts, JSON record)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--engines",
        metavar="A,B",
        help="engines to compare, comma-separated; ratios are against the first "
        "(default: the default engine)",
    )
    p.add_argument(
        "--prompts",
        metavar="FILE|builtin",
        default="builtin",
        help="'builtin' (default), 'builtin:ID,ID', a .json list or a text file "
        "with one prompt per line",
    )
    p.add_argument("--runs", type=_count(1), default=3, metavar="N", help="rounds (default 3)")
    p.add_argument(
        "--warmup",
        type=_count(0),
        default=1,
        metavar="N",
        help="unmeasured rounds of the first prompt per engine first (default 1)",
    )
    p.add_argument(
        "--max-tokens", type=_count(1), default=256, metavar="N", help="answer limit (default 256)"
    )
    p.add_argument(
        "--temperature", type=float, metavar="T", help="0 = greedy (default: the model's own)"
    )
    p.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling (default: model's)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed for sampling")
    p.add_argument(
        "--concurrency",
        type=_count(1),
        default=1,
        metavar="N",
        help="requests at once per engine; reports aggregate and per-request tokens/s",
    )
    p.add_argument("--out", metavar="FILE.json", help="where to write the JSON record")
    p.add_argument("--csv", metavar="FILE", help="also write one CSV row per run")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument(
        "--report",
        metavar="FILE.json",
        help="report a saved record (validated) instead of running a bench",
    )
    p.add_argument("--list-prompts", action="store_true", help="print the built-in prompts")
    p.add_argument(
        "--schema", action="store_true", help="print the JSON Schema of the record and exit"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.schema:
        from tedchat.bench.schema import RECORD_SCHEMA

        print(json.dumps(RECORD_SCHEMA, indent=2))
        return 0
    if args.list_prompts:
        return _list_prompts()
    if args.report:
        return _report_saved(args)
    return _run_bench(args)


def _list_prompts() -> int:
    from tedchat.bench.prompts import BUILTIN_PROMPTS

    for prompt in BUILTIN_PROMPTS:
        first = prompt.text.splitlines()[0]
        more = f" (+{len(prompt.text.splitlines()) - 1} lines)" if "\n" in prompt.text else ""
        print(f"{prompt.id:<14}{first}{more}")
    return 0


def _check_output(path_text: str | None, what: str) -> Path | None:
    """Refuse an unwritable output path before the bench, not after ten minutes of it."""
    if path_text is None:
        return None
    path = Path(path_text).expanduser()
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {what} {path}: folder {path.parent} does not exist")
    return path


def _write_extras(data: dict[str, Any], html: Path | None, csv: Path | None) -> None:
    from tedchat.bench.html_report import render_html
    from tedchat.bench.record import write_csv, write_text

    if html is not None:
        write_text(html, render_html(data))
        print(f"html report: {html}", file=sys.stderr)
    if csv is not None:
        write_csv(data, csv)
        print(f"csv: {csv}", file=sys.stderr)


def _report_saved(args: argparse.Namespace) -> int:
    from tedchat.bench.report import render_text
    from tedchat.bench.schema import validate

    path = Path(args.report).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"bench record not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read bench record {path}: {exc}") from exc
    problems = validate(data)
    if problems:
        raise UsageError(
            f"{path} is not a valid bench record: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    html = _check_output(args.html, "HTML report")
    csv = _check_output(args.csv, "CSV file")
    sys.stdout.write(render_text(data))
    _write_extras(data, html, csv)
    return 0


def _engine_names(text: str | None, default: str) -> list[str]:
    if text is None:
        return [default]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--engines needs at least one engine name", hint="see: tedchat engines")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"engine named twice in --engines: {', '.join(duplicates)}")
    return names


def _run_bench(args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import time

    from tedchat import paths
    from tedchat.bench.progress import Progress
    from tedchat.bench.prompts import load_prompts
    from tedchat.bench.record import BenchRecord, engine_entry, write_json
    from tedchat.bench.report import render_text
    from tedchat.bench.runner import BenchPlan
    from tedchat.cli import warn_plugin_failures
    from tedchat.engine import GenerationParams
    from tedchat.engines import load_context

    prompts = load_prompts(args.prompts)
    out = _check_output(args.out, "record")
    html = _check_output(args.html, "HTML report")
    csv = _check_output(args.csv, "CSV file")
    context = load_context(args.config)
    warn_plugin_failures(context)
    names = _engine_names(args.engines, context.settings.default_engine)
    # Build every engine now: an unknown name or type is a usage error before anything runs.
    engines = {name: context.engines.get(name) for name in names}
    if out is None:
        folder = paths.private_dir(paths.data_dir() / "bench")
        out = folder / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"

    params = GenerationParams(
        max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
    )
    prices = {n: p for n in names if (p := context.engines.prices(n)) is not None}
    plan = BenchPlan(prompts, args.runs, args.warmup, params, args.concurrency, prices)
    record = BenchRecord(
        config={
            "engines": names,
            "prompts": args.prompts,
            "runs": args.runs,
            "warmup": args.warmup,
            "max_tokens": args.max_tokens,
            "temperature": args.temperature,
            "top_p": args.top_p,
            "seed": args.seed,
            "concurrency": args.concurrency,
        },
        prompts=prompts,
        engines=[
            engine_entry(context.engines.describe(name), engine) for name, engine in engines.items()
        ],
    )
    listener = _Checkpoint(Progress(args.runs), record, out)
    write_json(record.to_dict(), out)  # the file exists from the start: a record, not a hope
    try:
        asyncio.run(_bench(plan, engines, record, listener))
        record.finish()
        status = 0
    except KeyboardInterrupt:
        # A second Ctrl-C must not cut the record's last write in half.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        record.finish(
            f"cancelled (Ctrl-C) after {len(record.batches)} of {listener.total or '?'} batches"
        )
        status = EXIT_CANCELLED
    finally:
        listener.progress.close()
    data = record.to_dict()
    write_json(data, out)
    sys.stdout.write(render_text(data))
    sys.stdout.flush()
    print(f"record: {out}", file=sys.stderr)
    _write_extras(data, html, csv)
    if status:
        print("cancelled: the record holds the runs finished so far", file=sys.stderr)
        return status
    rows = {r["engine"]: r for r in data["summary"]["engines"]}
    failed = [
        e["name"]
        for e in data["engines"]
        if e["load_error"] or rows[e["name"]]["errors"] or rows[e["name"]]["warmup_errors"]
    ]
    if failed:
        print(
            f"error: runs failed on {', '.join(failed)} (see the report above)",
            file=sys.stderr,
        )
        return EXIT_ENGINE
    return 0


async def _bench(plan: Any, engines: dict[str, Any], record: Any, listener: Any) -> None:
    import contextlib

    from tedchat.bench.runner import run_bench

    try:
        await run_bench(plan, engines, record, listener)
    finally:
        for engine in engines.values():
            # Closing is best effort: the figures are already recorded.
            with contextlib.suppress(Exception):
                await engine.close()


# Rewriting the record costs ~60 ms at 1,000 runs (benchmarks/bench_overhead.py); at most one
# write per this many seconds keeps that off long benches, and Ctrl-C still writes everything.
CHECKPOINT_EVERY_S = 2.0


class _Checkpoint:
    """Passes the runner's reports to the progress display and rewrites the record as batches
    finish (at most every CHECKPOINT_EVERY_S), so a crash loses only the last few seconds."""

    def __init__(self, progress: Any, record: Any, path: Path) -> None:
        import time

        self.progress = progress
        self.record = record
        self.path = path
        self.total: int | None = None
        self._warned = False
        self._clock = time.monotonic
        self._last = float("-inf")

    def engine_loading(self, name: str, stage: str) -> None:
        self.progress.engine_loading(name, stage)

    def engine_loaded(self, name: str, seconds: float, error: str | None) -> None:
        self.progress.engine_loaded(name, seconds, error)
        self._save()

    def step_started(self, index: int, total: int, step: Any) -> None:
        self.total = total
        self.progress.step_started(index, total, step)

    def step_done(self, index: int, total: int, step: Any, runs: list[dict[str, Any]]) -> None:
        self.progress.step_done(index, total, step, runs)
        self._save()

    def _save(self) -> None:
        from tedchat.bench.record import write_json

        now = self._clock()
        if now - self._last < CHECKPOINT_EVERY_S:
            return
        self._last = now
        try:
            write_json(self.record.to_dict(), self.path)
        except OSError as exc:  # the final write reports it; don't stop the bench for it
            if not self._warned:
                print(f"warning: cannot write {self.path}: {exc}", file=sys.stderr)
                self._warned = True
