"""A small MCP server for tedchat's tests and benchmarks, written with the SDK's ``MCPServer``.

    python echo_server.py stdio [MARKER]
    python echo_server.py stdio-stubborn [MARKER]  ignores its stdin closing and SIGTERM
    python echo_server.py stdio-family [MARKER]    starts a helper process (in its process
                                                   group, ignoring SIGTERM) that outlives it
    python echo_server.py http                     (token in $ECHO_SERVER_TOKEN)

Tools: ``echo`` (returns its text), ``boom`` and ``fail`` (raise), ``slow`` (sleeps, then answers),
``picture`` (an image part beside a text part), ``crash`` (the process exits mid-call, saying
why on stderr).

Over HTTP it listens on a free loopback port, prints ``PORT <n>`` as its first stdout line,
and answers 401 to any request without ``Authorization: Bearer $ECHO_SERVER_TOKEN``: proof
that the ``headers`` of ``[mcp.NAME]`` reach the server. ``MARKER`` only tags the process's
command line, so a test can find it in ``/proc``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ImageContent, TextContent

server = MCPServer("tedchat-echo", log_level="WARNING")


@server.tool(description="Return the text unchanged.")
def echo(text: str) -> str:
    return text


@server.tool(description="Always fails.")
def boom() -> str:
    raise ToolError("boom: the tool failed on purpose")


@server.tool(description="Fail with the given message.")
def fail(message: str) -> str:
    raise ToolError(message)


@server.tool(description="Exit the server process in the middle of the call.")
def crash() -> str:
    print("echo server: crashing on purpose", file=sys.stderr, flush=True)
    os._exit(70)


@server.tool(description="Sleep for a while, then answer.")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds} s"


@server.tool(description="A caption and a tiny PNG.")
def picture() -> list[TextContent | ImageContent]:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    return [
        TextContent(type="text", text="a caption"),
        ImageContent(type="image", data=png, mime_type="image/png"),
    ]


def _require_token(app: Any, token: str) -> Any:
    """An ASGI wrapper refusing HTTP requests without the bearer token."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    return guarded


def serve_http() -> None:
    import uvicorn

    token = os.environ["ECHO_SERVER_TOKEN"]
    app = _require_token(server.streamable_http_app(), token)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn serves them
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


def stubborn() -> None:
    """After the session ends: ignore SIGTERM and stay, until killed."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)


def start_helper() -> None:
    """A grandchild in this process group that ignores SIGTERM and outlives this process,
    like the node process an npx launcher starts."""
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True: time.sleep(60)"
    )
    subprocess.Popen(
        [sys.executable, "-c", code, *sys.argv[2:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "http":
        serve_http()
    else:
        if mode == "stdio-family":
            start_helper()
        server.run("stdio")
        if mode == "stdio-stubborn":
            stubborn()
