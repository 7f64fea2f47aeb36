"""``[mcp.NAME]`` validation (one line each, no secret in it), tool results as text, and the
rule that importing tedchat.tools.mcp does not import the SDK."""

from __future__ import annotations

import base64
import subprocess
import sys
from typing import Any

import pytest

from tedchat.errors import ConfigError
from tedchat.tools.mcp import (
    McpServers,
    names_from_sources,
    parse_server_config,
    result_text,
    server_configs,
)

SECRET = "sk-topsecret-value-0001"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"command": "x", "cmd": "y"},
            "unknown key 'cmd' in [mcp.srv]; valid keys: command, args, env, url, headers, "
            "startup_timeout_s",
        ),
        (
            {"command": "x", "url": "http://h/mcp"},
            "[mcp.srv] sets both command (a stdio server) and url (an HTTP server); keep one",
        ),
        (
            {"args": ["a"]},
            "[mcp.srv] needs command (a stdio server: command, args, env) or url "
            "(a streamable HTTP server: url, headers)",
        ),
        ({"command": ""}, "[mcp.srv]: command must be a non-empty string (the program to run)"),
        (
            {"command": ["uvx", "x"]},
            "[mcp.srv]: command must be a non-empty string (the program to run)",
        ),
        (
            {"command": "x", "args": "a b"},
            '[mcp.srv]: args must be a list of strings, like args = ["--flag"]',
        ),
        (
            {"command": "x", "args": [1]},
            '[mcp.srv]: args must be a list of strings, like args = ["--flag"]',
        ),
        (
            {"command": "x", "env": {"TOKEN": 5}},
            '[mcp.srv]: env must be a table of strings, like env = { NAME = "value" }',
        ),
        (
            {"command": "x", "headers": {"Authorization": SECRET}},
            "[mcp.srv]: headers belongs to HTTP servers (url); a stdio server takes "
            "command, args, env, startup_timeout_s",
        ),
        (
            {"url": "http://h/mcp", "env": {"TOKEN": SECRET}},
            "[mcp.srv]: env belongs to stdio servers (command); an HTTP server takes "
            "url, headers, startup_timeout_s",
        ),
        ({"url": "ftp://h/mcp"}, "[mcp.srv]: url must be an http:// or https:// URL"),
        ({"url": f"h:{SECRET}@host"}, "[mcp.srv]: url must be an http:// or https:// URL"),
        (
            {"url": "https://h/mcp", "headers": {"Authorization": ["Bearer", SECRET]}},
            '[mcp.srv]: headers must be a table of strings, like headers = { NAME = "value" }',
        ),
        (
            {"command": "x", "startup_timeout_s": 0},
            "[mcp.srv]: startup_timeout_s must be a positive number of seconds",
        ),
        (
            {"command": "x", "startup_timeout_s": True},
            "[mcp.srv]: startup_timeout_s must be a positive number of seconds",
        ),
        (
            {"command": "x", "startup_timeout_s": "10"},
            "[mcp.srv]: startup_timeout_s must be a positive number of seconds",
        ),
    ],
)
def test_a_bad_table_is_one_line_naming_the_server(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_server_config("srv", table)
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_a_bad_server_name() -> None:
    with pytest.raises(ConfigError, match=r"^\[mcp\.a:b\]: an MCP server name is 1-64 letters"):
        parse_server_config("a:b", {"command": "x"})


def test_an_unknown_server_name_lists_the_configured_ones() -> None:
    tables = {"time": {"command": "x"}, "web": {"url": "https://h/mcp"}}
    with pytest.raises(ConfigError) as info:
        McpServers(tables, ["time", "nope"])
    assert str(info.value) == "no MCP server named 'nope'; configured: time, web"
    assert info.value.hint == "add a [mcp.nope] table to the config file (see config.example.toml)"
    with pytest.raises(ConfigError, match=r"configured: none$"):
        server_configs({}, ["x"])


def test_only_the_named_servers_are_checked() -> None:
    tables = {"good": {"command": "x"}, "bad": {"oops": 1}}
    assert [c.name for c in server_configs(tables, ["good"])] == ["good"]
    with pytest.raises(ConfigError):
        server_configs(tables)


def test_valid_tables_and_no_secret_in_repr_or_describe() -> None:
    stdio = parse_server_config(
        "time", {"command": "uvx", "args": ["mcp-server-time"], "env": {"TOKEN": SECRET}}
    )
    assert (stdio.transport, stdio.command, stdio.args) == ("stdio", "uvx", ("mcp-server-time",))
    assert stdio.env == {"TOKEN": SECRET}
    assert stdio.describe() == "uvx mcp-server-time"
    http = parse_server_config(
        "web",
        {
            "url": f"https://bob:{SECRET}@mcp.example.com/mcp?api_key={SECRET}",
            "headers": {"X-Custom": "header-value-0002"},
            "startup_timeout_s": 2.5,
        },
    )
    assert http.transport == "http" and http.startup_timeout_s == 2.5
    assert http.describe() == "https://***@mcp.example.com/mcp?api_key=***"
    assert "header-value-0002" in http.secrets()
    for config in (stdio, http):
        shown = repr(config) + str(config) + config.describe()
        assert SECRET not in shown and "header-value-0002" not in shown
        assert SECRET in config.secrets()


def test_result_text_joins_parts_and_describes_the_rest() -> None:
    from mcp import types

    png = base64.b64encode(b"\0" * 300).decode()
    result = types.CallToolResult(
        content=[
            types.TextContent(type="text", text="first"),
            types.ImageContent(type="image", data=png, mime_type="image/png"),
            types.AudioContent(type="audio", data=png, mime_type="audio/wav"),
            types.ResourceLink(type="resource_link", uri="file:///a.txt", name="a.txt"),
            types.EmbeddedResource(
                type="resource",
                resource=types.TextResourceContents(uri="file:///b.txt", text="embedded text"),
            ),
            types.EmbeddedResource(
                type="resource",
                resource=types.BlobResourceContents(
                    uri="file:///c.bin", blob=png, mime_type="application/octet-stream"
                ),
            ),
        ]
    )
    assert result_text(result).splitlines() == [
        "first",
        "[image: image/png, about 300 bytes]",
        "[audio: audio/wav, about 300 bytes]",
        "[resource: file:///a.txt (a.txt)]",
        "embedded text",
        "[resource: file:///c.bin, application/octet-stream]",
    ]
    structured = types.CallToolResult(content=[], structured_content={"a": 1, "b": "東京"})
    assert result_text(structured) == '{"a": 1, "b": "東京"}'


def test_importing_the_module_does_not_import_the_sdk() -> None:
    code = (
        "import sys, tedchat.tools.mcp\n"
        "heavy = [m for m in ('mcp', 'mcp_types', 'httpx2', 'anyio') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_the_debug_log_redactor_knows_the_mcp_secrets(tmp_path: Any) -> None:
    from tedchat.cli import known_redactor

    config = tmp_path / "config.toml"
    config.write_text(
        "[mcp.web]\n"
        'url = "https://mcp.example.com/mcp"\n'
        f'headers = {{ X-Custom = "{SECRET}" }}\n'
        "[mcp.local]\n"
        'command = "server"\n'
        'env = { DB_PASS = "another-secret-99" }\n'
    )
    config.chmod(0o600)
    redact = known_redactor(str(config))
    assert redact(f"sent {SECRET}, then another-secret-99") == "sent ***, then ***"


def test_names_from_sources() -> None:
    tables = {"time": {"command": "x"}, "web": {"url": "https://h/mcp"}}
    assert names_from_sources(["builtin", "plugin", "mcp"], tables) == ["time", "web"]
    assert names_from_sources(["mcp:web", "builtin", "mcp:web"], tables) == ["web"]
    assert names_from_sources(["builtin"], tables) == []
    with pytest.raises(ConfigError, match="no MCP server named 'nope'"):
        names_from_sources(["mcp:nope"], tables)
