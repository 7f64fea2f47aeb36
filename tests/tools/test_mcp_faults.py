"""MCP servers that cannot start: each is one line in the status and the warnings, with the
exit code its kind deserves, nothing raises from ``start``, and no process is left."""

from __future__ import annotations

import os
import time

import pytest
from mcp_helpers import ECHO, FAULTY, marker, pids_with, stdio_table, wait_gone

from tedchat.errors import (
    EXIT_ENGINE,
    EXIT_USAGE,
    McpCommandError,
    McpStartupError,
    TedchatError,
)
from tedchat.tools.mcp import McpServers

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds processes in /proc")

STARTUP = 60.0


def failure(servers: McpServers) -> TedchatError:
    with pytest.raises(TedchatError) as info:
        servers.raise_for_failures()
    return info.value


async def test_command_not_found_is_a_config_error() -> None:
    servers = McpServers({"gone": {"command": "tedchat-no-such-mcp-server"}}, None, STARTUP)
    try:
        (warning,) = await servers.start()
        expected = "MCP server 'gone': command not found: tedchat-no-such-mcp-server"
        assert warning == f"{expected}; its tools are left out"
        assert servers.status()[0]["status"] == "failed"
        assert servers.status()[0]["error"] == expected
        error = failure(servers)
        assert isinstance(error, McpCommandError) and error.exit_code == EXIT_USAGE
        assert error.hint and "[mcp.gone]" in error.hint
    finally:
        await servers.stop()


async def test_server_exiting_during_the_handshake_says_why_without_its_secret() -> None:
    tag = marker()
    secret = "s3cr3t-token-value-42"
    table = stdio_table(FAULTY, "exit", tag, env={"FAULTY_TOKEN": secret})
    servers = McpServers({"broken": table}, None, STARTUP)
    try:
        (warning,) = await servers.start()
        error = failure(servers)
        assert isinstance(error, McpStartupError) and error.exit_code == EXIT_ENGINE
        # The server's own last stderr line, with the env value it quoted hidden.
        assert (
            str(error)
            == "MCP server 'broken' exited during the handshake: fatal: token *** was refused"
        )
        assert secret not in warning + str(servers.status()) + repr(servers.configs)
    finally:
        await servers.stop()
    assert wait_gone(tag) == []


async def test_a_hung_server_is_left_out_at_the_timeout_and_killed() -> None:
    tag = marker()
    table = stdio_table(FAULTY, "hang", tag, startup_timeout_s=1.5)
    good = marker()
    servers = McpServers({"hung": table, "echo": stdio_table(ECHO, "stdio", good)}, None, STARTUP)
    try:
        started = time.monotonic()
        warnings = await servers.start()
        waited = time.monotonic() - started
        assert warnings == [
            "MCP server 'hung' did not finish starting within 1.5 s; its tools are left out"
        ]
        # It ignores SIGTERM and its stdin closing: killed, and gone when start returns.
        assert pids_with(tag) == []
        assert waited < 30  # the timeout (1.5 s) plus the kill, with a wide margin
        statuses = {s["name"]: s["status"] for s in servers.status()}
        assert statuses == {"hung": "failed", "echo": "ready"}
        assert {t.source for t in servers.tools()} == {"mcp:echo"}
        error = failure(servers)
        assert isinstance(error, McpStartupError) and error.exit_code == EXIT_ENGINE
    finally:
        await servers.stop()
    assert wait_gone(good) == []


async def test_stop_during_the_handshake_ends_the_process() -> None:
    tag = marker()
    servers = McpServers({"hung": stdio_table(FAULTY, "hang", tag)}, None, STARTUP)
    servers.launch()
    deadline = time.monotonic() + 30
    while not pids_with(tag) and time.monotonic() < deadline:
        await __import__("asyncio").sleep(0.05)
    assert pids_with(tag), "the server never started"
    await servers.stop()
    assert pids_with(tag) == []
    assert servers.status()[0]["status"] == "stopped"


async def test_an_unreachable_http_server_is_a_startup_error() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mcp"
    servers = McpServers({"down": {"url": url}}, None, STARTUP)
    try:
        (warning,) = await servers.start()
        assert warning.startswith(
            f"MCP server 'down' failed the handshake: cannot connect to {url}"
        )
        error = failure(servers)
        assert isinstance(error, McpStartupError) and error.exit_code == EXIT_ENGINE
    finally:
        await servers.stop()
