"""MCP servers through tedchat.tools.mcp, against real servers: ``mcp-server-time`` over stdio
and the test's own SDK server (tests/tools/servers/echo_server.py) over stdio and streamable
HTTP on 127.0.0.1. Every server started here is stopped, and the tests check its process is
gone."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
from zoneinfo import ZoneInfo

import pytest
from mcp_helpers import ECHO, echo_http_server, marker, pids_with, stdio_table, wait_gone

from tedchat.config import Settings
from tedchat.errors import EXIT_ENGINE, McpCallError, McpToolError
from tedchat.tools.mcp import McpServers, list_server_tools

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds processes in /proc")

# Wide: a busy 2-core machine starts a Python server in well under this.
STARTUP = 60.0


def by_name(servers: McpServers) -> dict[str, object]:
    return {tool.name: tool for tool in servers.tools()}


async def call(servers: McpServers, name: str, **args: object) -> str:
    tool = next(t for t in servers.tools() if t.name == name)
    result = tool.function(dict(args))
    assert not isinstance(result, str)
    return await result


async def test_time_server_over_stdio_converts_and_its_process_ends_with_stop() -> None:
    tag = marker()
    table = stdio_table("-m", "mcp_server_time", "--local-timezone", "UTC", env={"TAG": tag})
    servers = McpServers({"time": table}, ["time"], STARTUP)
    try:
        assert await servers.start() == []
        assert servers.status() == [
            {
                "name": "time",
                "source": "mcp:time",
                "transport": "stdio",
                "target": f"{sys.executable} -m mcp_server_time --local-timezone UTC",
                "status": "ready",
                "error": None,
            }
        ]
        tools = by_name(servers)
        assert set(tools) == {"get_current_time", "convert_time"}
        assert {t.source for t in servers.tools()} == {"mcp:time"}
        convert = servers.tools()[[t.name for t in servers.tools()].index("convert_time")]
        assert convert.parameters["type"] == "object"
        assert set(convert.parameters["required"]) == {"source_timezone", "time", "target_timezone"}
        # The child got the env table (the marker), so it can be found.
        assert len(pids_with(tag)) == 1

        tokyo = ZoneInfo("Asia/Tokyo")
        before = dt.datetime.now(tokyo).date()
        text = await call(
            servers,
            "convert_time",
            source_timezone="Asia/Tokyo",
            time="12:00",
            target_timezone="Asia/Kolkata",
        )
        after = dt.datetime.now(tokyo).date()
        assert "08:30" in text and "+05:30" in text
        # 12:00 in Tokyo is 08:30 the same day in Kolkata (computed here, not by the server).
        expected = {
            dt.datetime(d.year, d.month, d.day, 12, 0, tzinfo=tokyo)
            .astimezone(ZoneInfo("Asia/Kolkata"))
            .isoformat()
            for d in (before, after)
        }
        assert any(e in text for e in expected), (expected, text)
    finally:
        await servers.stop()
    assert servers.status()[0]["status"] == "stopped"
    assert wait_gone(tag) == []


async def test_echo_server_over_stdio_tools_results_and_errors() -> None:
    tag = marker()
    async with McpServers({"echo": stdio_table(ECHO, "stdio", tag)}, None, STARTUP) as servers:
        assert set(by_name(servers)) == {"echo", "boom", "fail", "slow", "picture", "crash"}
        assert await call(servers, "echo", text="héllo 東京") == "héllo 東京"
        # An image part is described, not dumped.
        picture = await call(servers, "picture")
        assert picture.splitlines()[0] == "a caption"
        assert picture.splitlines()[1].startswith("[image: image/png")
        with pytest.raises(McpToolError, match="boom: the tool failed on purpose") as info:
            await call(servers, "boom")
        assert "\n" not in str(info.value)
        # Arguments the tool's schema refuses: an error result, the session lives on.
        with pytest.raises(McpToolError):
            await call(servers, "echo", nope=1)
        assert await call(servers, "echo", text="still here") == "still here"
    assert wait_gone(tag) == []


async def test_a_call_cancelled_by_a_timeout_leaves_the_session_usable() -> None:
    tag = marker()
    async with McpServers({"echo": stdio_table(ECHO, "stdio", tag)}, None, STARTUP) as servers:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call(servers, "slow", seconds=30), 0.5)
        assert await call(servers, "echo", text="after the timeout") == "after the timeout"
        assert servers.status()[0]["status"] == "ready"
    assert wait_gone(tag) == []


async def test_streamable_http_sends_the_headers_and_calls_tools() -> None:
    with echo_http_server() as http:
        team = "team-secret-0123456789"
        headers = {"Authorization": f"Bearer {http.token}", "X-Team": team}
        table = {"url": http.url, "headers": headers}
        async with McpServers({"web": table}, None, STARTUP) as servers:
            # The server refuses requests without the bearer token: ready proves it was sent.
            (status,) = servers.status()
            assert status["status"] == "ready", status
            assert status["transport"] == "http" and status["target"] == http.url
            assert await call(servers, "echo", text="over http") == "over http"
            with pytest.raises(McpToolError, match="boom: the tool failed on purpose"):
                await call(servers, "boom")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(call(servers, "slow", seconds=30), 0.5)
            assert await call(servers, "echo", text="again") == "again"
            assert "[image: image/png" in await call(servers, "picture")
            # A header value in an error's text is hidden, whatever the header's name.
            with pytest.raises(McpToolError) as info:
                await call(servers, "fail", message=f"rejected {team} and {http.token}")
            assert str(info.value).endswith("rejected *** and ***"), str(info.value)
            shown = repr(servers.configs) + str(servers.status())
            assert http.token not in shown and team not in shown


async def test_a_wrong_header_fails_the_handshake_without_showing_the_secret() -> None:
    with echo_http_server() as http:
        secret = "sk-wrong-0123456789abcdef"
        user_secret = "hunter2-password"
        url = http.url.replace("http://", f"http://alice:{user_secret}@")
        table = {"url": url, "headers": {"Authorization": f"Bearer {secret}"}}
        servers = McpServers({"web": table}, None, STARTUP)
        try:
            (warning,) = await servers.start()
            (status,) = servers.status()
            assert status["status"] == "failed"
            assert "401" in status["error"] and "\n" not in status["error"]
            assert warning.startswith("MCP server 'web' failed the handshake")
            assert servers.tools() == []
            with pytest.raises(Exception) as info:
                servers.raise_for_failures()
            error = info.value
            assert getattr(error, "exit_code", None) == EXIT_ENGINE
            hint = str(getattr(error, "hint", ""))
            shown = " ".join([warning, str(status), str(error), repr(error), hint])
            shown += repr(servers.configs)
            assert secret not in shown and user_secret not in shown
            assert "alice:" not in shown  # the URL's userinfo is hidden as a whole
        finally:
            await servers.stop()


async def test_the_server_dying_mid_call_is_one_line_and_leaves_no_process() -> None:
    tag = marker()
    async with McpServers({"echo": stdio_table(ECHO, "stdio", tag)}, None, STARTUP) as servers:
        tools = servers.tools()
        with pytest.raises(McpCallError) as info:
            await call(servers, "crash")
        message = str(info.value)
        assert message == "MCP server 'echo' exited: echo server: crashing on purpose"
        (status,) = servers.status()
        assert status["status"] == "failed" and status["error"] == message
        # Its tools are gone from the list; a stale reference fails with one line.
        assert servers.tools() == []
        echo = next(t for t in tools if t.name == "echo")
        with pytest.raises(McpCallError, match=r"^MCP server 'echo' is not running: "):
            await echo.function({"text": "x"})
    assert wait_gone(tag) == []


async def test_a_killed_server_fails_the_next_call() -> None:
    tag = marker()
    async with McpServers({"echo": stdio_table(ECHO, "stdio", tag)}, None, STARTUP) as servers:
        (pid,) = pids_with(tag)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(McpCallError) as info:
            await asyncio.wait_for(call(servers, "echo", text="x"), 30)
        assert str(info.value) == "MCP server 'echo' exited"
    assert wait_gone(tag) == []


async def test_list_server_tools_reports_each_server_and_stops_them() -> None:
    tag = marker()
    settings = Settings()
    settings.tools.startup_timeout_s = STARTUP
    settings.mcp = {
        "echo": stdio_table(ECHO, "stdio", tag),
        "missing": {"command": f"/nonexistent/{tag}"},
    }
    rows = await list_server_tools(settings)
    assert [(r["name"], r["source"], r["status"]) for r in rows] == [
        ("echo", "mcp:echo", "ready"),
        ("missing", "mcp:missing", "failed"),
    ]
    assert {t.name for t in rows[0]["tools"]} == {
        "echo",
        "boom",
        "fail",
        "slow",
        "picture",
        "crash",
    }
    assert rows[0]["error"] is None
    assert rows[1]["tools"] == [] and "command not found" in rows[1]["error"]
    assert wait_gone(tag) == []


@pytest.mark.parametrize("mode", ["stdio-stubborn", "stdio-family"])
async def test_stop_leaves_no_process_even_when_the_server_resists(mode: str) -> None:
    """stdio-stubborn ignores its stdin closing and SIGTERM; stdio-family leaves a helper in
    its process group that ignores SIGTERM (as launchers like npx do)."""
    tag = marker()
    servers = McpServers({"s": stdio_table(ECHO, mode, tag)}, None, STARTUP)
    try:
        await servers.start()
        assert await call(servers, "echo", text="hi") == "hi"
        assert len(pids_with(tag)) == (2 if mode == "stdio-family" else 1)
    finally:
        await servers.stop()
    assert pids_with(tag) == []  # gone when stop returns, no waiting
