"""Does the screen keep up with a 5,000 tokens/s stream? Measured in a real terminal.

A loopback server in another process speaks OpenAI-compatible SSE (POST /v1/chat/completions:
``data: {"choices":[{"delta":{"content":"tok"}}]}`` lines, then ``data: [DONE]``) and streams a
4,000-token Markdown answer (headings, lists, two 40-line code blocks), one token per chunk, on
a fixed schedule of 5,000 tokens/s. tedchat runs in tmux (160x50) with the ``http`` engine
pointed at it and the default session path (history on: the reply writer records every token).
The screen is read with ``capture-pane`` every 20 ms.

Measured, per run:

- chat: when the answer's last line is first on screen, against the server's first and last
  token. Bounds: on screen within 1.2x the stream's duration (from its first token) and within
  100 ms after the server sent the last token;
- keypress: a key typed while the answer streams shows in the prompt within 100 ms;
- compare, 3 panes each fed at 5,000 tokens/s: the last line on screen in every pane within
  1.5x the streams' duration.

The server also reports the rate it really sent at: a client that reads slowly would stretch
the stream (TCP backpressure) and make the ratios look better than they are, so a run whose
server fell below 95% of the schedule fails too.

    .venv/bin/python benchmarks/tui_stream.py [--runs 3] [--tokens 4000] [--rate 5000]

Prints a table; exits 1 if the median run misses a bound. The table also gives the CPU time
tedchat used from Enter to the last line: close to the wall time means it was CPU-bound (on a
machine shared with other work, it got less than a core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui_terminal import (
    PROMPT_PLACEHOLDER,
    TmuxSession,
    clean_env,
    cpu_seconds,
    input_line,
    tedchat_exe,
    temp_home,
    tmux_path,
)

MARKER = "ZQX-END-OF-ANSWER"
KEY = "§"
CHAT_RATIO = 1.2
CHAT_AFTER_LAST_S = 0.100
COMPARE_RATIO = 1.5
KEY_LATENCY_S = 0.100
MIN_SERVER_SHARE = 0.95
POLL_S = 0.020


# --- the answer --------------------------------------------------------------------------------


def answer_tokens(n: int) -> list[str]:
    """A Markdown answer of exactly ``n`` tokens (word pieces); its last line holds MARKER."""
    words = [
        "the",
        "wafer",
        "keeps",
        "every",
        "layer",
        "in",
        "SRAM",
        "so",
        "tokens",
        "flow",
        "from",
        "stage",
        "to",
        "stage",
    ]

    def prose(k: int, start: int = 0) -> list[str]:
        return [" " + words[(start + i) % len(words)] for i in range(k)]

    def code_block(lang: str, tag: str) -> list[str]:
        out = ["\n\n```" + lang]
        for i in range(40):
            out += [f"\n{tag}_{i:02d}", " =", f" compute({i},", " stage)"]
        return [*out, "\n```"]

    head: list[str] = ["# Streaming", " report"]
    head += ["\n\n## Overview\n\n", "This", *prose(120)]
    head += ["\n\n## Steps\n"]
    for i in range(12):
        head += [f"\n- step {i}:", *prose(8, i)]
    head += code_block("python", "alpha")
    head += ["\n\n## Details\n\n", "Then", *prose(150, 3)]
    head += ["\n\n1. first", " point", "\n2. second", " point", "\n3. third", " point"]
    head += code_block("rust", "beta")
    head += ["\n\n### Closing\n\n", "More"]
    tail = ["\n\nLast", " line:", f" {MARKER}"]
    filler = n - len(head) - len(tail)
    if filler < 0:
        raise ValueError(f"an answer needs at least {len(head) + len(tail)} tokens")
    body = prose(filler, 5)
    # Break the filler into paragraphs so no single block grows without end.
    for i in range(60, len(body), 60):
        body[i] = "\n\n" + body[i].lstrip()
    tokens = head + body + tail
    assert len(tokens) == n
    return tokens


# --- the server (its own process) --------------------------------------------------------------


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def serve(port_file: Path, log_file: Path, tokens: int, rate: float) -> None:
    payloads = [
        _chunk(
            b"data: "
            + json.dumps({"choices": [{"index": 0, "delta": {"content": t}}]}).encode()
            + b"\n\n"
        )
        for t in answer_tokens(tokens)
    ]
    finish = (
        _chunk(
            b"data: "
            + json.dumps(
                {
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": tokens},
                }
            ).encode()
            + b"\n\n"
        )
        + _chunk(b"data: [DONE]\n\n")
        + b"0\r\n\r\n"
    )
    log = log_file.open("a", buffering=1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if request_line.startswith("GET") and "/models" in request_line:
                body = json.dumps({"data": [{"id": "bench"}]}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            # A fixed schedule: token i is due at t0 + i / rate; all due tokens go out at once.
            t0 = time.monotonic()
            sent = 0
            t_first = t_last = None
            n = len(payloads)
            while sent < n:
                now = time.monotonic()
                due = min(n, int((now - t0) * rate) + 1)
                if due > sent:
                    writer.write(b"".join(payloads[sent:due]))
                    await writer.drain()
                    if t_first is None:
                        t_first = time.monotonic()
                    sent = due
                    if sent == n:
                        t_last = time.monotonic()
                        break
                next_due = t0 + sent / rate
                await asyncio.sleep(max(0.0, next_due - time.monotonic()))
            writer.write(finish)
            await writer.drain()
            log.write(json.dumps({"t_first": t_first, "t_last": t_last, "tokens": n}) + "\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            log.write(json.dumps({"error": "client went away"}) + "\n")
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    port_file.write_text(str(port))
    async with server:
        await server.serve_forever()


def start_server(
    workdir: Path, tokens: int, rate: float
) -> tuple[subprocess.Popen[bytes], int, Path]:
    port_file = workdir / "port"
    log_file = workdir / "server.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            str(port_file),
            str(log_file),
            "--tokens",
            str(tokens),
            "--rate",
            str(rate),
        ]
    )
    deadline = time.monotonic() + 10
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("the stream server did not start")
        time.sleep(0.02)
    return proc, int(port_file.read_text()), log_file


def read_log(log_file: Path, skip: int) -> list[dict[str, float]]:
    lines = log_file.read_text().splitlines() if log_file.exists() else []
    return [json.loads(line) for line in lines[skip:]]


# --- the terminal side ---------------------------------------------------------------------


def config_for(port: int, panes: int) -> str:
    engines = "\n".join(
        f'[engines.bench{i}]\ntype = "http"\nbase_url = "http://127.0.0.1:{port}/v1"\n'
        f'model = "bench"\nread_timeout = 30.0\n'
        for i in range(1, panes + 1)
    )
    return f'default_engine = "bench1"\n\n{engines}'


@dataclass
class ChatRun:
    duration_s: float
    server_rate: float
    on_screen_s: float  # from the server's first token
    after_last_s: float
    key_latency_s: float | None
    cpu_s: float  # tedchat's CPU time from Enter to the last line on screen

    @property
    def ratio(self) -> float:
        return self.on_screen_s / self.duration_s


@dataclass
class CompareRun:
    duration_s: float
    server_rate: float
    on_screen_s: float
    after_last_s: float
    cpu_s: float

    @property
    def ratio(self) -> float:
        return self.on_screen_s / self.duration_s


def wait_server(
    log_file: Path, skip: int, count: int, timeout: float = 30
) -> list[dict[str, float]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = read_log(log_file, skip)
        if len(entries) >= count:
            return entries
        time.sleep(0.02)
    raise SystemExit("the server never finished its streams")


def run_chat(port: int, log_file: Path, tokens: int, width: int, height: int) -> ChatRun:
    home = temp_home()
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(config_for(port, 1))
    skip = len(read_log(log_file, 0))
    with TmuxSession(width, height) as tmux:
        tmux.start([tedchat_exe(), "chat"], clean_env(home))
        if tmux.wait_for(lambda s: PROMPT_PLACEHOLDER in s, 20) is None:
            raise SystemExit("tedchat did not start:\n" + tmux.capture())
        time.sleep(0.5)  # let the engine load and the first frames settle
        pid = tmux.pane_pid()
        cpu0 = cpu_seconds(pid)
        tmux.send_keys("stream it", literal=True)
        tmux.send_keys("Enter")
        key_sent: float | None = None
        key_seen: float | None = None
        t_key_due = time.monotonic() + 0.35  # mid-stream (the stream lasts ~0.8 s)

        def during(screen: str) -> None:
            nonlocal key_sent, key_seen
            now = time.monotonic()
            if key_sent is None and now >= t_key_due:
                key_sent = tmux.send_keys(KEY, literal=True)
            elif key_sent is not None and key_seen is None and KEY in input_line(screen):
                key_seen = now

        seen = tmux.wait_for(lambda s: MARKER in s, 30, POLL_S, on_poll=during)
        if seen is None:
            raise SystemExit("the last line never showed:\n" + tmux.capture())
        cpu = cpu_seconds(pid) - cpu0
        if key_sent is not None and key_seen is None:
            extra = tmux.wait_for(lambda s: KEY in input_line(s), 5, POLL_S)
            key_seen = extra.t if extra else None
        [entry] = wait_server(log_file, skip, 1)
    duration = entry["t_last"] - entry["t_first"]
    return ChatRun(
        duration_s=duration,
        server_rate=(tokens - 1) / duration,
        on_screen_s=seen.t - entry["t_first"],
        after_last_s=seen.t - entry["t_last"],
        key_latency_s=(key_seen - key_sent) if key_sent and key_seen else None,
        cpu_s=cpu,
    )


def run_compare(
    port: int, log_file: Path, tokens: int, width: int, height: int, panes: int
) -> CompareRun:
    home = temp_home()
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(config_for(port, panes))
    skip = len(read_log(log_file, 0))
    names = [f"bench{i}" for i in range(1, panes + 1)]
    with TmuxSession(width, height) as tmux:
        tmux.start([tedchat_exe(), "compare", *names], clean_env(home))
        if tmux.wait_for(lambda s: PROMPT_PLACEHOLDER in s, 20) is None:
            raise SystemExit("tedchat compare did not start:\n" + tmux.capture())
        time.sleep(0.5)
        pid = tmux.pane_pid()
        cpu0 = cpu_seconds(pid)
        tmux.send_keys("stream it", literal=True)
        tmux.send_keys("Enter")
        seen = tmux.wait_for(lambda s: s.count(MARKER) >= panes, 60, POLL_S)
        if seen is None:
            raise SystemExit("the last lines never all showed:\n" + tmux.capture())
        cpu = cpu_seconds(pid) - cpu0
        entries = wait_server(log_file, skip, panes)
    first = min(e["t_first"] for e in entries)
    last = max(e["t_last"] for e in entries)
    duration = max(e["t_last"] - e["t_first"] for e in entries)
    rate = min((tokens - 1) / (e["t_last"] - e["t_first"]) for e in entries)
    return CompareRun(duration, rate, seen.t - first, seen.t - last, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--serve", nargs=2, metavar=("PORT_FILE", "LOG_FILE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--panes", type=int, default=3)
    parser.add_argument("--size", default="160x50")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve[0]), Path(args.serve[1]), args.tokens, args.rate))
        return 0
    if tmux_path() is None:
        print("tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.split("x"))
    workdir = temp_home("tedchat-bench-")
    server, port, log_file = start_server(workdir, args.tokens, args.rate)
    try:
        chats = [run_chat(port, log_file, args.tokens, width, height) for _ in range(args.runs)]
        compares = [
            run_compare(port, log_file, args.tokens, width, height, args.panes)
            for _ in range(args.runs)
        ]
    finally:
        server.kill()
    return report(chats, compares, args)


def report(chats: list[ChatRun], compares: list[CompareRun], args: argparse.Namespace) -> int:
    print(
        f"{args.tokens} tokens at {args.rate:.0f} tokens/s, one token per SSE chunk, "
        f"tmux {args.size}, screen polled every {POLL_S * 1000:.0f} ms"
    )
    print(
        f"{'run':<12}{'stream s':>9}{'server tok/s':>13}{'on screen s':>12}{'ratio':>7}"
        f"{'after last ms':>14}{'key ms':>8}{'tedchat cpu s':>15}"
    )
    for i, c in enumerate(chats, 1):
        key = f"{c.key_latency_s * 1000:.0f}" if c.key_latency_s is not None else "-"
        print(
            f"{f'chat {i}':<12}{c.duration_s:>9.3f}{c.server_rate:>13.0f}{c.on_screen_s:>12.3f}"
            f"{c.ratio:>7.2f}{c.after_last_s * 1000:>14.0f}{key:>8}{c.cpu_s:>15.2f}"
        )
    for i, c in enumerate(compares, 1):
        print(
            f"{f'compare{args.panes} {i}':<12}{c.duration_s:>9.3f}{c.server_rate:>13.0f}"
            f"{c.on_screen_s:>12.3f}{c.ratio:>7.2f}{c.after_last_s * 1000:>14.0f}{'':>8}"
            f"{c.cpu_s:>15.2f}"
        )
    med = statistics.median
    keys = [c.key_latency_s for c in chats if c.key_latency_s is not None]
    checks = [
        (
            f"chat: last line within {CHAT_RATIO}x the stream",
            med(c.ratio for c in chats) <= CHAT_RATIO,
        ),
        (
            f"chat: last line within {CHAT_AFTER_LAST_S * 1000:.0f} ms of the last token",
            med(c.after_last_s for c in chats) <= CHAT_AFTER_LAST_S,
        ),
        (
            f"keypress in the prompt within {KEY_LATENCY_S * 1000:.0f} ms",
            bool(keys) and med(keys) <= KEY_LATENCY_S,
        ),
        (
            f"compare x{args.panes}: every last line within {COMPARE_RATIO}x the streams",
            med(c.ratio for c in compares) <= COMPARE_RATIO,
        ),
        (
            f"server kept >= {MIN_SERVER_SHARE:.0%} of {args.rate:.0f} tokens/s",
            min(c.server_rate for c in [*chats, *compares]) >= MIN_SERVER_SHARE * args.rate,
        ),
    ]
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name} (median of {args.runs} runs)")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
