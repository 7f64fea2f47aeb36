"""The Toolbox: names, argument checks, approval, timeouts, caps, sources that come later."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.config import Settings, ToolSettings
from tedchat.engine import ToolCall
from tedchat.errors import ConfigError, ToolError
from tedchat.tools.base import Approval, ApprovalRequest, Approver, Tool, ToolCallRecord
from tedchat.tools.toolbox import (
    NAME_PATTERN,
    Toolbox,
    ToolSourceStatus,
    cap_text,
    mcp_servers,
    model_names,
    sanitize,
)

OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


def echo_tool(name: str = "echo", source: str = "builtin", **kw: Any) -> Tool:
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "what to echo"}},
        "required": ["text"],
        "additionalProperties": False,
    }
    return Tool(name, "Echo the text.", schema, lambda a: a["text"], source=source, **kw)


class Counting:
    """A tool function that counts its runs."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, args: dict[str, Any]) -> str:
        self.runs += 1
        return "ran"


async def run(
    toolbox: Toolbox, name: str, arguments: str | dict[str, Any], approver: Approver | None = None
) -> ToolCallRecord:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    record = ToolCallRecord(id="1", name=name, arguments=text)
    await toolbox.call(ToolCall("1", name, text), record, approver)
    return record


def auto(**settings: Any) -> ToolSettings:
    return ToolSettings(approval="auto", **settings)


# --- names -----------------------------------------------------------------------------------


def test_plain_names_when_unique_else_source_prefixed() -> None:
    toolbox = Toolbox(
        auto(),
        [
            echo_tool("read_file"),
            echo_tool("read_file", "plugin:files"),
            echo_tool("convert_time", "mcp:time"),
            echo_tool("read_file", "mcp:fs.v2"),
        ],
    )
    assert toolbox.names() == [
        "builtin__read_file",
        "plugin_files__read_file",
        "convert_time",
        "mcp_fs_v2__read_file",
    ]
    assert [s.name for s in toolbox.specs()] == toolbox.names()


async def test_a_prefixed_name_calls_its_own_sources_tool() -> None:
    tools = [
        Tool("who", "", OBJECT, lambda a: "builtin"),
        Tool("who", "", OBJECT, lambda a: "plugin", source="plugin:p"),
    ]
    toolbox = Toolbox(auto(), tools)
    record = await run(toolbox, "plugin_p__who", {})
    assert (record.result, record.source) == ("plugin", "plugin:p")
    assert (await run(toolbox, "builtin__who", {})).result == "builtin"


def test_long_and_odd_names_fit_64_characters() -> None:
    long = "x" * 100
    names = model_names([("mcp:a", long), ("mcp:b", long), ("mcp:c", "ok.name")])
    assert all(NAME_PATTERN.match(n) for n in names)
    assert len(set(names)) == 3
    assert names[2] == "ok_name"


def test_sanitizing_that_makes_names_equal_still_keeps_them_apart() -> None:
    names = model_names([("mcp:x", "a.b"), ("mcp:y", "a_b"), ("mcp:z", "a b")])
    assert len(set(names)) == 3 and all(NAME_PATTERN.match(n) for n in names)


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_sanitize_always_gives_a_valid_name(name: str) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", sanitize(name))


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["builtin", "plugin:p", "mcp:x", "mcp:ü"]), st.text())))
def test_model_names_are_valid_and_distinct_for_any_tools(keys: list[tuple[str, str]]) -> None:
    keys = list(dict.fromkeys(keys))  # a source offers a name once
    names = model_names(keys)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", n) for n in names)
    assert len(set(names)) == len(names)
    assert model_names(keys) == names  # the same tools always get the same names


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ("{not json", "invalid JSON arguments: Expecting property name enclosed in double quotes"),
        ("[1, 2]", "invalid JSON arguments: expected an object, got an array"),
        ('"text"', "invalid JSON arguments: expected an object, got a string"),
        ("null", "invalid JSON arguments: expected an object, got null"),
        ("{}", "invalid arguments: 'text' is a required property"),
        ('{"text": 3}', "invalid arguments: 3 is not of type 'string' (at text)"),
        ('{"text": "a", "more": 1}', "invalid arguments: Additional properties are not allowed"),
    ],
)
async def test_bad_arguments_are_error_results(arguments: str, error: str) -> None:
    record = await run(Toolbox(auto(), [echo_tool()]), "echo", arguments)
    assert record.status == "error"
    assert record.error is not None and record.error.startswith(error), record.error
    assert record.result is None
    assert record.content_for_model().startswith("error: invalid")


async def test_empty_arguments_mean_none() -> None:
    record = await run(Toolbox(auto(), [Tool("now", "", OBJECT, lambda a: "noon")]), "now", "")
    assert (record.status, record.result, record.args) == ("done", "noon", {})


async def test_unknown_tool_lists_the_tools() -> None:
    record = await run(Toolbox(auto(), [echo_tool()]), "rm_rf", {})
    assert (record.status, record.error) == ("error", "unknown tool 'rm_rf'; the tools are: echo")


async def test_a_tool_with_a_broken_schema_is_an_error_result() -> None:
    tool = Tool("bad", "", {"type": "object", "properties": {"x": {"type": 7}}}, lambda a: "")
    record = await run(Toolbox(auto(), [tool]), "bad", {"x": 1})
    assert record.error is not None and "invalid parameter schema" in record.error


# --- running ---------------------------------------------------------------------------------


def boom(args: dict[str, Any]) -> str:
    raise RuntimeError("boom\nsecond line")


def clean_failure(args: dict[str, Any]) -> str:
    raise ToolError("no such city")


async def slow_async(args: dict[str, Any]) -> str:
    await asyncio.sleep(30)
    return "late"


def slow_sync(args: dict[str, Any]) -> str:
    time.sleep(1.5)
    return "late"


@pytest.mark.parametrize(
    ("function", "error"),
    [
        (boom, "RuntimeError: boom"),
        (clean_failure, "no such city"),
        (slow_async, "timed out after 0.2 s"),
        (slow_sync, "timed out after 0.2 s"),
    ],
)
async def test_failures_become_one_line_error_results(function: Any, error: str) -> None:
    toolbox = Toolbox(auto(timeout_s=0.2), [Tool("t", "", OBJECT, function)])
    record = await run(toolbox, "t", {})
    assert (record.status, record.error, record.result) == ("error", error, None)
    assert record.elapsed_s > 0


async def test_results_are_capped_between_characters() -> None:
    toolbox = Toolbox(auto(max_result_bytes=1001), [Tool("t", "", OBJECT, lambda a: "é" * 4000)])
    record = await run(toolbox, "t", {})
    assert record.result == "é" * 500 + "\n[result cut: 7000 of 8000 bytes not shown]"


def test_cap_text() -> None:
    assert cap_text("short", 10) == "short"
    assert cap_text("日本語", 7) == "日本\n[result cut: 3 of 9 bytes not shown]"


async def test_async_tools_and_non_text_results() -> None:
    async def fetch(args: dict[str, Any]) -> str:
        await asyncio.sleep(0)
        return "fetched"

    tools = [Tool("fetch", "", OBJECT, fetch), Tool("obj", "", OBJECT, lambda a: {"a": 1})]
    toolbox = Toolbox(auto(), tools)
    assert (await run(toolbox, "fetch", {})).result == "fetched"
    assert (await run(toolbox, "obj", {})).result == '{"a": 1}'


async def test_cancelling_a_call_marks_it_and_propagates() -> None:
    toolbox = Toolbox(auto(timeout_s=60), [Tool("slow", "", OBJECT, slow_async)])
    record = ToolCallRecord(id="1", name="slow", arguments="{}")
    task = asyncio.ensure_future(toolbox.call(ToolCall("1", "slow", "{}"), record, None))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (record.status, record.error) == ("cancelled", "cancelled")


async def test_cancelling_while_asking_marks_it_cancelled() -> None:
    async def never_answers(request: ApprovalRequest) -> Approval:
        await asyncio.sleep(60)
        return "once"

    ran = Counting()
    toolbox = Toolbox(ToolSettings(), [Tool("t", "", OBJECT, ran)])
    record = ToolCallRecord(id="1", name="t", arguments="{}")
    task = asyncio.ensure_future(toolbox.call(ToolCall("1", "t", "{}"), record, never_answers))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert record.status == "cancelled" and ran.runs == 0


# --- approval --------------------------------------------------------------------------------


def recorder(answer: Approval, asked: list[str]) -> Approver:
    async def approver(request: ApprovalRequest) -> Approval:
        asked.append(request.name)
        return answer

    return approver


@pytest.mark.parametrize(
    ("policy", "yes", "overrides", "ask_always", "answer", "expect"),
    [
        # policy, --yes, [tools.approval] overrides, ask_always, the person's answer -> outcome
        ("ask", False, {}, False, None, "refused"),
        ("ask", False, {}, False, "once", "asked+ran"),
        ("ask", False, {}, False, "deny", "asked+denied"),
        ("auto", False, {}, False, None, "ran"),
        ("ask", True, {}, False, None, "ran"),
        ("auto", False, {}, True, None, "refused"),
        ("ask", True, {}, True, "once", "asked+ran"),
        ("auto", True, {}, True, "deny", "asked+denied"),
        ("ask", False, {"t": "auto"}, True, None, "ran"),
        ("ask", False, {"plugin_p__t": "auto"}, False, None, "ran"),
        ("auto", False, {"t": "ask"}, False, None, "refused"),
        ("auto", True, {"t": "ask"}, False, "once", "asked+ran"),
        ("ask", False, {"other": "auto"}, False, None, "refused"),
    ],
)
async def test_approval_policy(
    policy: str,
    yes: bool,
    overrides: dict[str, str],
    ask_always: bool,
    answer: Approval | None,
    expect: str,
) -> None:
    ran = Counting()
    tools = [
        Tool("t", "", OBJECT, ran, source="plugin:p", ask_always=ask_always),
        Tool("t", "", OBJECT, ran, source="builtin"),
    ]
    settings = ToolSettings(approval=policy, tool_approval=overrides)
    toolbox = Toolbox(settings, tools, yes=yes)
    asked: list[str] = []
    approver = recorder(answer, asked) if answer else None
    record = await run(toolbox, "plugin_p__t", {}, approver)
    outcome = {
        ("done", 1): "ran",
        ("denied", 0): "denied" if record.error == "denied by the user" else "refused",
    }[(record.status, ran.runs)]
    assert ("asked+" if asked else "") + outcome == expect, record.error
    if outcome == "refused":
        assert record.error is not None and record.error.startswith("refused: needs approval (")


async def test_always_is_remembered_for_that_tool_only() -> None:
    ran = Counting()
    toolbox = Toolbox(ToolSettings(), [Tool("a", "", OBJECT, ran), Tool("b", "", OBJECT, ran)])
    asked: list[str] = []
    approver = recorder("always", asked)
    for name in ("a", "a", "b", "a"):
        await run(toolbox, name, {}, approver)
    assert asked == ["a", "b"] and ran.runs == 4
    assert (await run(toolbox, "a", {}, None)).status == "done"  # no one to ask: still allowed


async def test_always_outlives_a_rename_when_another_source_arrives() -> None:
    ran = Counting()
    toolbox = Toolbox(ToolSettings(), [Tool("a", "", OBJECT, ran)])
    await run(toolbox, "a", {}, recorder("always", []))
    toolbox.add([Tool("a", "", OBJECT, ran, source="mcp:x")])
    assert toolbox.names() == ["builtin__a", "mcp_x__a"]
    assert (await run(toolbox, "builtin__a", {})).status == "done"
    assert (await run(toolbox, "mcp_x__a", {})).status == "denied"
    assert ran.runs == 2


async def test_concurrent_calls_ask_one_at_a_time_and_always_covers_the_waiting_one() -> None:
    ran = Counting()
    toolbox = Toolbox(ToolSettings(), [Tool("a", "", OBJECT, ran)])
    asked: list[str] = []

    async def slow_always(request: ApprovalRequest) -> Approval:
        asked.append(request.name)
        await asyncio.sleep(0.05)
        return "always"

    await asyncio.gather(*(run(toolbox, "a", {}, slow_always) for _ in range(3)))
    assert asked == ["a"] and ran.runs == 3


async def test_the_approval_request_names_the_tool_as_the_model_does() -> None:
    requests: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> Approval:
        requests.append(request)
        return "deny"

    toolbox = Toolbox(ToolSettings(), [echo_tool(source="mcp:x"), echo_tool()])
    await run(toolbox, "mcp_x__echo", {"text": "hi"}, approver)
    assert requests == [ApprovalRequest("mcp_x__echo", "mcp:x", {"text": "hi"}, "Echo the text.")]


async def test_an_approver_that_fails_refuses_the_call() -> None:
    async def broken(request: ApprovalRequest) -> Approval:
        raise OSError("no terminal")

    ran = Counting()
    record = await run(Toolbox(ToolSettings(), [Tool("t", "", OBJECT, ran)]), "t", {}, broken)
    assert record.status == "denied" and ran.runs == 0
    assert record.error == "refused: asking for approval failed (OSError: no terminal)"


# --- sources ---------------------------------------------------------------------------------


def test_sources_choose_the_tools() -> None:
    tools = [echo_tool("a"), echo_tool("b", "plugin:p"), echo_tool("c", "plugin:q")]
    only = Toolbox(auto(sources=["builtin", "plugin:q"]), tools)
    assert only.names() == ["a", "c"]
    assert Toolbox(auto(sources=["plugin"]), tools).names() == ["b", "c"]
    assert Toolbox(auto(sources=[]), tools).names() == []


def test_mcp_servers_follow_the_sources() -> None:
    settings = Settings()
    settings.mcp = {"time": {"command": "x"}, "fs": {"command": "y"}}
    assert mcp_servers(settings) == ["time", "fs"]
    settings.tools.sources = ["builtin", "mcp:fs"]
    assert mcp_servers(settings) == ["fs"]
    settings.tools.sources = ["mcp:nope"]
    with pytest.raises(ConfigError, match="'mcp:nope' names no configured MCP server"):
        mcp_servers(settings)


async def test_pending_sources_ready_failed_and_late() -> None:
    stopped: list[str] = []

    async def ready() -> list[Tool]:
        await asyncio.sleep(0.01)
        return [echo_tool("convert_time", "mcp:time")]

    async def broken() -> list[Tool]:
        raise ConnectionError("server exited during the handshake")

    async def hangs() -> list[Tool]:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.append("hangs")
        return []

    toolbox = Toolbox(auto(), [echo_tool()])
    toolbox.add_pending("mcp:time", ready())
    toolbox.add_pending("mcp:broken", broken())
    toolbox.add_pending("mcp:slow", hangs())
    closed: list[str] = []

    async def close() -> None:
        closed.append("time")

    toolbox.on_close(close)
    assert [r["status"] for r in toolbox.listing()] == ["ready", *["starting"] * 3]
    notices = await toolbox.wait_ready(timeout_s=0.5)
    assert notices == [
        "tool source mcp:broken left out: ConnectionError: server exited during the handshake",
        "tool source mcp:slow left out: not ready after 0.5 s",
    ]
    assert stopped == ["hangs"]  # the late one was cancelled
    assert toolbox.names() == ["echo", "convert_time"]
    rows = toolbox.listing()
    assert all(
        set(r) == {"name", "source", "description", "parameters", "status", "error"} for r in rows
    )
    assert [(r["name"], r["source"], r["status"], r["error"]) for r in rows] == [
        ("echo", "builtin", "ready", None),
        ("convert_time", "mcp:time", "ready", None),
        (None, "mcp:broken", "failed", "ConnectionError: server exited during the handshake"),
        (None, "mcp:slow", "failed", "not ready after 0.5 s"),
    ]
    await toolbox.aclose()
    assert closed == ["time"]


def test_a_failed_source_status_is_listed() -> None:
    toolbox = Toolbox(auto())
    toolbox.set_status(ToolSourceStatus("mcp:x", "failed", "command not found: nope"))
    assert toolbox.listing() == [
        {
            "name": None,
            "source": "mcp:x",
            "description": "",
            "parameters": {},
            "status": "failed",
            "error": "command not found: nope",
        }
    ]


async def test_callers_waiting_at_once_share_one_wait() -> None:
    async def ready() -> list[Tool]:
        await asyncio.sleep(0.05)
        return [echo_tool("convert_time", "mcp:time")]

    toolbox = Toolbox(auto())
    toolbox.add_pending("mcp:time", ready())
    names = []

    async def pane() -> None:
        await toolbox.wait_ready(timeout_s=30)
        names.append(toolbox.names())

    await asyncio.gather(pane(), pane(), pane())
    assert names == [["convert_time"]] * 3
    assert await toolbox.wait_ready() == []


async def test_closing_while_sources_start_stops_them() -> None:
    stopped: list[str] = []

    async def hangs() -> list[Tool]:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.append("hangs")
        return []

    toolbox = Toolbox(auto())
    toolbox.add_pending("mcp:a", hangs())
    waiter = asyncio.ensure_future(toolbox.wait_ready(timeout_s=60))
    await asyncio.sleep(0.05)
    toolbox.add_pending("mcp:b", hangs())  # added after the wait began: never awaited
    await asyncio.sleep(0.05)
    await toolbox.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert stopped == ["hangs", "hangs"]


class Servers:
    """Stands in for tedchat.tools.mcp.McpServers (tested against real servers with it in
    test_tools_cli.py): one server ready with a tool, one failed."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.state = "starting"

    def launch(self) -> None:
        self.events.append("launch")

    async def wait_ready(self, timeout: float | None = None) -> list[str]:
        await asyncio.sleep(0.01)
        self.state = "ready"
        return ["MCP server 'db': command not found: nope; its tools are left out"]

    def tools(self) -> list[Tool]:
        return [echo_tool("convert_time", "mcp:time")] if self.state == "ready" else []

    def status(self) -> list[dict[str, Any]]:
        return [
            {"name": "time", "source": "mcp:time", "status": self.state, "error": None},
            {"name": "db", "source": "mcp:db", "status": "failed", "error": "command not found"},
        ]

    async def stop(self) -> None:
        self.events.append("stop")


async def test_servers_are_launched_listed_and_stopped() -> None:
    servers = Servers()
    toolbox = Toolbox(auto(), [echo_tool()])
    toolbox.add_servers(servers)
    assert servers.events == ["launch"]
    assert [(r["source"], r["status"]) for r in toolbox.listing()] == [
        ("builtin", "ready"),
        ("mcp:time", "starting"),
        ("mcp:db", "failed"),
    ]
    notices = await toolbox.wait_ready(timeout_s=0.001)  # servers keep their own timeouts
    assert notices == ["MCP server 'db': command not found: nope; its tools are left out"]
    assert toolbox.names() == ["echo", "convert_time"]
    assert [(r["name"], r["source"], r["status"], r["error"]) for r in toolbox.listing()] == [
        ("echo", "builtin", "ready", None),
        ("convert_time", "mcp:time", "ready", None),
        (None, "mcp:db", "failed", "command not found"),
    ]
    await toolbox.aclose()
    assert servers.events == ["launch", "stop"]


async def test_mcp_errors_reach_the_model_by_their_message() -> None:
    from tedchat.errors import TedchatError

    def fails(args: dict[str, Any]) -> str:
        raise TedchatError("MCP server 'time' died during the call")

    record = await run(Toolbox(auto(), [Tool("t", "", OBJECT, fails, source="mcp:time")]), "t", {})
    assert record.error == "MCP server 'time' died during the call"
