"""What MCP tools cost: per-call overhead, and starting servers before the first request.

1. Per call: a trivial tool through :class:`tedchat.tools.mcp.McpServers`, ``--calls`` times
   after a warm-up, median and p90 of the wall time per call, beside the same work done as a
   direct in-process ``async`` function call (the baseline). Rows: the test echo server over
   stdio (``echo``), ``mcp-server-time``'s ``get_current_time`` over stdio, and the echo
   server over streamable HTTP on 127.0.0.1.
2. Start: ``McpServers.start()`` (spawn + initialize + list tools) for ``mcp-server-time`` and
   the echo server over stdio, median over ``--starts`` starts; each is stopped after, and the
   stop is timed too. The start is what the first request waits for when MCP servers start
   with it (``ask --mcp``): the time added to its time to first token. The very first start
   in a process also imports the SDK (``mcp``, httpx2, pydantic models): shown apart, as
   "first".

    .venv/bin/python benchmarks/mcp_tools.py [--calls 200] [--starts 10]

Exits 1 when the median stdio call is over 20 ms or a start's median is over 3 s (loose
bounds for a shared 2-core machine: they catch a regression by a factor, not noise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from tedchat.tools.mcp import McpServers

ECHO = str(Path(__file__).resolve().parents[1] / "tests" / "tools" / "servers" / "echo_server.py")
TIME = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}
ECHO_STDIO = {"command": sys.executable, "args": [ECHO, "stdio"]}
CALL_BOUND_MS = 20.0
START_BOUND_S = 3.0


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


async def timed_calls(fn: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    for _ in range(min(20, calls)):  # warm-up
        await fn()
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def per_call(servers: McpServers, tool: str, args: dict[str, Any], calls: int) -> list[float]:
    function = next(t.function for t in servers.tools() if t.name == tool)

    async def once() -> Any:
        result = function(args)
        return await result if not isinstance(result, str) else result

    return await timed_calls(once, calls)


async def baseline(calls: int) -> list[float]:
    async def echo(args: dict[str, Any]) -> str:
        return str(args["text"])

    return await timed_calls(lambda: echo({"text": "ping"}), calls)


@contextlib.contextmanager
def http_echo() -> Iterator[tuple[str, str]]:
    token = "bench-token-0123456789"
    process = subprocess.Popen(
        [sys.executable, ECHO, "http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, ECHO_SERVER_TOKEN=token),
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().split()[1])
        yield f"http://127.0.0.1:{port}/mcp", token
    finally:
        process.terminate()
        process.wait(10)


async def starts(table: dict[str, Any], n: int) -> tuple[list[float], list[float]]:
    start_s, stop_s = [], []
    for _ in range(n):
        servers = McpServers({"s": table}, None, 60)
        began = time.perf_counter()
        warnings = await servers.start()
        start_s.append(time.perf_counter() - began)
        assert not warnings, warnings
        began = time.perf_counter()
        await servers.stop()
        stop_s.append(time.perf_counter() - began)
    return start_s, stop_s


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--starts", type=int, default=10)
    opts = parser.parse_args()

    start_rows = []
    for label, table in (("mcp-server-time (stdio)", TIME), ("echo server (stdio)", ECHO_STDIO)):
        start_rows.append((label, *await starts(table, opts.starts)))

    rows: list[tuple[str, list[float]]] = [("direct in-process call", await baseline(opts.calls))]
    async with McpServers({"echo": ECHO_STDIO, "time": TIME}, None, 60) as servers:
        rows.append(
            ("echo over stdio", await per_call(servers, "echo", {"text": "ping"}, opts.calls))
        )
        rows.append(
            (
                "get_current_time over stdio",
                await per_call(servers, "get_current_time", {"timezone": "UTC"}, opts.calls),
            )
        )
    with http_echo() as (url, token):
        table = {"url": url, "headers": {"Authorization": f"Bearer {token}"}}
        async with McpServers({"web": table}, None, 60) as servers:
            rows.append(
                (
                    "echo over streamable HTTP",
                    await per_call(servers, "echo", {"text": "ping"}, opts.calls),
                )
            )

    base = statistics.median(rows[0][1])
    print(f"per call, {opts.calls} calls after a warm-up (ms)")
    print(f"{'':30} {'median':>10} {'p90':>10} {'x direct':>10}")
    for label, values in rows:
        median = statistics.median(values)
        print(f"{label:30} {median:10.4f} {p90(values):10.4f} {median / base:10.0f}")

    print(f"\nstart (spawn + initialize + list tools) and stop, {opts.starts} times (s)")
    print(f"{'':30} {'first':>10} {'median':>10} {'min':>10} {'max':>10} {'stop med':>10}")
    start_medians = []
    for label, start_s, stop_s in start_rows:
        start_medians.append(statistics.median(start_s))
        print(
            f"{label:30} {start_s[0]:10.3f} {statistics.median(start_s):10.3f} "
            f"{min(start_s):10.3f} {max(start_s):10.3f} {statistics.median(stop_s):10.3f}"
        )

    stdio_median = statistics.median(rows[1][1])
    ok = stdio_median <= CALL_BOUND_MS and max(start_medians) <= START_BOUND_S
    print(
        f"\nbounds: stdio call median {stdio_median:.2f} ms <= {CALL_BOUND_MS:g} ms, "
        f"start medians <= {START_BOUND_S:g} s: {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
