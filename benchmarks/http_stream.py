"""How fast the http engine takes in a stream, against the least a client must do.

A loopback server in another process streams N one-token chunks (llama-server's chunk shape)
as fast as the socket takes them. Two clients read the same stream, alternately, best of R:

- baseline: an httpx ``aiter_lines`` loop that ``json.loads`` each data line and appends its
  text -- the essential work, nothing else;
- tedchat: the whole engine path -- the http engine built by its plugin (SSE parsed by
  httpx-sse, chunk shapes, <think> splitting, events) driven by ``session.run_turn``, which
  meters every event with ``StreamMeter``.

Bounds (exit 1 if either fails): tedchat keeps >= 0.8x the baseline's chunk rate, and
>= 20,000 chunks/s.

A second table times SSE parsing alone (no network, no JSON) over the same bytes: httpx's
``aiter_lines``, httpx-sse's ``aiter_sse`` and tedchat's ``SSEParser``. It is why the engine
has its own parser: driven by httpx-sse, the engine path kept only ~0.68x of the baseline.

    python benchmarks/http_stream.py [--chunks 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

MIN_RATIO = 0.8
MIN_RATE = 20_000.0
WORDS = [" the", " capital", " of", " France", " is", " Paris", ".", "\n", " and", " it"]


# --- the server (runs in its own process) --------------------------------------------------


def sse_body(n: int) -> bytes:
    """N one-token chunks, a finish chunk with usage, [DONE], in HTTP chunked framing."""
    events = []
    for i in range(n):
        chunk = {
            "choices": [
                {"finish_reason": None, "index": 0, "delta": {"content": WORDS[i % len(WORDS)]}}
            ],
            "created": 1700000000,
            "id": "chatcmpl-bench",
            "model": "bench",
            "system_fingerprint": "b1",
            "object": "chat.completion.chunk",
        }
        events.append(f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n")
    usage = {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": n + 4}
    final = {"choices": [{"finish_reason": "stop", "index": 0, "delta": {}}], "usage": usage}
    events.append(f"data: {json.dumps(final)}\n\n")
    events.append("data: [DONE]\n\n")
    raw = "".join(events).encode()
    framed = []
    for start in range(0, len(raw), 64 * 1024):
        piece = raw[start : start + 64 * 1024]
        framed.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    framed.append(b"0\r\n\r\n")
    return b"".join(framed)


async def serve(n: int) -> None:
    body = sse_body(n)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    models = json.dumps({"data": [{"id": "bench"}]}).encode()
    models_head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(models)}\r\nConnection: close\r\n\r\n"
    ).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in request.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if request.startswith(b"GET"):
                writer.write(models_head + models)
            else:
                writer.write(head + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        # Stop when the parent closes our stdin (or dies): never outlive the benchmark.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# --- the two clients -----------------------------------------------------------------------


@dataclass
class Run:
    chunks: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds


async def baseline(url: str) -> Run:
    import httpx

    body = {"messages": [{"role": "user", "content": "go"}], "stream": True}
    parts: list[str] = []
    chunks = 0
    async with httpx.AsyncClient(timeout=60) as client:
        start = time.perf_counter()
        async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[6:]
                if payload == "[DONE]":
                    break
                choices = json.loads(payload)["choices"]
                if choices:
                    text = choices[0]["delta"].get("content")
                    if text:
                        parts.append(text)
                        chunks += 1
        seconds = time.perf_counter() - start
    return Run(chunks, seconds)


async def tedchat_path(url: str, n: int) -> Run:
    from tedchat.engine import GenerationParams, Message, Runtime
    from tedchat.session import Turn, run_turn
    from tedchat_http import SETTINGS, _factory

    engine = _factory("bench", {**SETTINGS, "base_url": url, "model": "bench"}, Runtime(1))
    await engine.load()
    turn = Turn(engine, [Message("user", "go")], GenerationParams(max_tokens=n))
    start = time.perf_counter()
    result = await run_turn(turn)
    seconds = time.perf_counter() - start
    await engine.close()
    if result.error is not None:
        raise SystemExit(f"tedchat run failed: {result.error}")
    m = result.metrics
    if (m.output_tokens, m.output_tokens_source) != (n, "server"):
        raise SystemExit(f"tedchat counted {m.output_tokens} ({m.output_tokens_source})")
    return Run(turn.meter.chunks, seconds)


async def parse_only(body: bytes, how: str) -> float:
    """Seconds to split ``body`` (the SSE text, unframed) into events one way, best of 3."""
    import httpx
    from httpx_sse import EventSource

    from tedchat_http.sse import SSEParser

    pieces = [body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]

    async def stream() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    best = float("inf")
    for _ in range(3):
        response = httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=stream()
        )
        start = time.perf_counter()
        n = 0
        if how == "aiter_lines":
            async for line in response.aiter_lines():
                n += line.startswith("data: ")
        elif how == "httpx-sse":
            async for _event in EventSource(response).aiter_sse():
                n += 1
        else:
            parser = SSEParser()
            async for raw in response.aiter_bytes():
                n += len(parser.feed(raw.decode()))
        best = min(best, time.perf_counter() - start)
    return best


def sse_text(n: int) -> bytes:
    """The event-stream bytes the server sends, without the HTTP chunk framing."""
    out, rest = [], sse_body(n)
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return b"".join(out)
        out.append(rest[:size])
        rest = rest[size + 2 :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.chunks))
        return 0

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--chunks", str(args.chunks)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        if not line.startswith("PORT "):
            raise SystemExit("benchmark server did not start")
        url = f"http://127.0.0.1:{int(line.split()[1])}/v1"
        rows: list[tuple[int, Run, Run]] = []
        for i in range(args.rounds):
            base = asyncio.run(baseline(url))
            ted = asyncio.run(tedchat_path(url, args.chunks))
            for run, name in ((base, "baseline"), (ted, "tedchat")):
                if run.chunks != args.chunks:
                    raise SystemExit(f"{name} saw {run.chunks} of {args.chunks} chunks")
            rows.append((i + 1, base, ted))
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)

    print(f"{args.chunks} one-token chunks over loopback, alternating runs\n")
    print(f"{'run':>4}  {'baseline chunks/s':>18}  {'tedchat chunks/s':>17}  {'ratio':>6}")
    for i, base, ted in rows:
        print(f"{i:>4}  {base.rate:>18,.0f}  {ted.rate:>17,.0f}  {ted.rate / base.rate:>6.2f}")
    best_base = max(base.rate for _, base, _ in rows)
    best_ted = max(ted.rate for _, _, ted in rows)
    ratio = best_ted / best_base
    print(f"{'best':>4}  {best_base:>18,.0f}  {best_ted:>17,.0f}  {ratio:>6.2f}\n")
    failed = []
    if ratio < MIN_RATIO:
        failed.append(f"tedchat keeps {ratio:.2f}x of the baseline's rate (bound {MIN_RATIO}x)")
    if best_ted < MIN_RATE:
        failed.append(f"tedchat takes {best_ted:,.0f} chunks/s (bound {MIN_RATE:,.0f})")
    text = sse_text(args.chunks)
    print(f"SSE parsing alone, {args.chunks} events from memory (best of 3)\n")
    print(f"{'parser':>12}  {'events/s':>11}")
    for how in ("aiter_lines", "httpx-sse", "SSEParser"):
        seconds = asyncio.run(parse_only(text, how))
        print(f"{how:>12}  {args.chunks / seconds:>11,.0f}")
    print()
    for failure in failed:
        print(f"FAIL: {failure}")
    if not failed:
        print(f"ok: ratio >= {MIN_RATIO} and >= {MIN_RATE:,.0f} chunks/s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
