"""What the MCP tests share: the test servers' paths, finding their processes in ``/proc``, and
the streamable HTTP echo server on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVERS = Path(__file__).resolve().parent / "servers"
ECHO = str(SERVERS / "echo_server.py")
FAULTY = str(SERVERS / "faulty_server.py")


def marker() -> str:
    """A tag unique to one test, put on a server's command line or in its environment."""
    return f"tedchat-test-{uuid.uuid4().hex}"


def pids_with(tag: str) -> list[int]:
    """Live processes (not zombies) whose command line or environment holds ``tag``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read()
            except OSError:
                environ = b""
        except OSError:
            continue
        if tag.encode() in cmdline or tag.encode() in environ:
            found.append(int(entry))
    return found


def wait_gone(tag: str, timeout: float = 15.0) -> list[int]:
    """Wait (wide margin) until no process holds ``tag``; the ones left."""
    deadline = time.monotonic() + timeout
    while (left := pids_with(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def stdio_table(*args: str, **extra: object) -> dict[str, object]:
    """An ``[mcp.NAME]`` table running ``python ARGS``."""
    return {"command": sys.executable, "args": list(args), **extra}


@dataclass
class HttpServer:
    url: str
    token: str
    process: subprocess.Popen[str]


@contextlib.contextmanager
def echo_http_server() -> Iterator[HttpServer]:
    """The echo server over streamable HTTP on 127.0.0.1, requiring a bearer token; stopped
    after."""
    token = f"tok-{uuid.uuid4().hex}"
    env = dict(os.environ, ECHO_SERVER_TOKEN=token)
    process = subprocess.Popen(
        [sys.executable, ECHO, "http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PORT "), f"echo server did not start: {line!r}"
        url = f"http://127.0.0.1:{int(line.split()[1])}/mcp"
        yield HttpServer(url, token, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
