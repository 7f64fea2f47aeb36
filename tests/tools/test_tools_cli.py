"""``tedchat tools list`` and tools from plugins, through the real plugin loader and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tedchat.config import ToolSettings
from tedchat.engine import ToolCall
from tedchat.plugins import load_plugins
from tedchat.tools.base import ToolCallRecord
from tedchat.tools.toolbox import Toolbox
from tests.conftest import cli_env, one_error_line, run_cli

# A folder plugin shipping tools, as a third party would write it. Its read_file clashes with
# the built-in one.
WEATHER_PLUGIN = textwrap.dedent(
    """
    import tedchat
    from tedchat.tools.base import Tool

    FORECAST = {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "a city"}},
        "required": ["city"],
    }


    def forecast(args):
        return f"sunny in {args['city']}"


    @tedchat.hookimpl
    def register_tools(register):
        register(Tool("forecast", "Tomorrow's weather.\\nSecond line.", FORECAST, forecast))
        register(Tool("read_file", "Read a weather file.", {"type": "object"}, lambda a: ""))
    """
)

ROW_KEYS = {"name", "source", "description", "parameters", "status", "error"}


def write_plugin(home: Path) -> Path:
    folder = home / "config" / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weather.py").write_text(WEATHER_PLUGIN, encoding="utf-8")
    return folder


async def test_a_plugins_tool_arrives_as_plugin_name(tedchat_home: Path) -> None:
    plugins = load_plugins([write_plugin(tedchat_home)])
    assert not plugins.failures
    toolbox = Toolbox.from_plugins(ToolSettings(approval="auto"), plugins)
    sources = {name: spec for name, spec in zip(toolbox.names(), toolbox.specs(), strict=True)}
    assert "forecast" in sources
    assert {"builtin__read_file", "plugin_weather__read_file"} <= set(sources)
    record = ToolCallRecord(id="1", name="forecast", arguments='{"city": "Kyoto"}')
    await toolbox.call(ToolCall("1", "forecast", record.arguments), record, None)
    assert (record.status, record.result, record.source) == (
        "done",
        "sunny in Kyoto",
        "plugin:weather",
    )


def test_a_plugin_registering_something_else_is_reported(tedchat_home: Path) -> None:
    folder = tedchat_home / "plugins"
    folder.mkdir()
    (folder / "odd.py").write_text(
        "import tedchat\n\n@tedchat.hookimpl\ndef register_tools(register):\n"
        "    register({'name': 'x'})\n"
    )
    plugins = load_plugins([folder])
    assert [t.source for t in plugins.tools()] == ["builtin"] * 4
    assert any("'odd' registered 'dict' as a tool" in f.message for f in plugins.failures)


def test_tools_list_json(tedchat_home: Path) -> None:
    write_plugin(tedchat_home)
    result = run_cli(tedchat_home, "tools", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert all(set(row) == ROW_KEYS for row in rows)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == {
        "builtin__read_file",
        "list_directory",
        "search_text",
        "shell",
        "forecast",
        "plugin_weather__read_file",
    }
    assert by_name["forecast"] == {
        "name": "forecast",
        "source": "plugin:weather",
        "description": "Tomorrow's weather.\nSecond line.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "a city"}},
            "required": ["city"],
        },
        "status": "ready",
        "error": None,
    }
    assert by_name["shell"]["source"] == "builtin"


def test_tools_list_table(tedchat_home: Path) -> None:
    write_plugin(tedchat_home)
    result = run_cli(tedchat_home, "tools", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "STATUS", "DESCRIPTION"]
    forecast = next(line for line in lines if line.startswith("forecast "))
    assert forecast.split() == ["forecast", "plugin:weather", "ready", "Tomorrow's", "weather."]


def test_tools_list_follows_the_sources(tedchat_home: Path) -> None:
    write_plugin(tedchat_home)
    (tedchat_home / "config" / "config.toml").write_text('[tools]\nsources = ["plugin"]\n')
    result = run_cli(tedchat_home, "tools", "list", "--json")
    assert [r["name"] for r in json.loads(result.stdout)] == ["forecast", "read_file"]


def test_an_unconfigured_mcp_source_is_one_error_line(tedchat_home: Path) -> None:
    (tedchat_home / "config").mkdir()
    (tedchat_home / "config" / "config.toml").write_text('[tools]\nsources = ["mcp:time"]\n')
    result = run_cli(tedchat_home, "tools", "list")
    assert result.returncode == 2
    assert "'mcp:time' names no configured MCP server" in one_error_line(result.stderr)


def imported_after(home: Path, argv: list[str]) -> list[str]:
    code = (
        "import sys, contextlib, io\n"
        "from tedchat.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try: main({argv!r})\n"
        "    except SystemExit: pass\n"
        "print(sorted(m for m in ('mcp', 'textual', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(home)
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().replace("'", '"'))


def test_help_and_tools_list_do_not_import_mcp(tedchat_home: Path) -> None:
    assert imported_after(tedchat_home, ["--help"]) == []
    assert "mcp" not in imported_after(tedchat_home, ["tools", "list"])
    # a configured server whose source is off is not started either
    (tedchat_home / "config").mkdir()
    (tedchat_home / "config" / "config.toml").write_text(
        '[tools]\nsources = ["builtin"]\n[mcp.time]\ncommand = "mcp-server-time"\n'
    )
    assert "mcp" not in imported_after(tedchat_home, ["tools", "list"])


REPO = Path(__file__).resolve().parents[2]


async def test_readme_tool_plugin_example_works(tedchat_home: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in readme.split("```python")[1:] if b.lstrip().startswith("# weather.py"))
    folder = tedchat_home / "plugins"
    folder.mkdir()
    (folder / "weather.py").write_text(block.split("```")[0], encoding="utf-8")
    plugins = load_plugins([folder])
    assert not plugins.failures
    toolbox = Toolbox.from_plugins(ToolSettings(approval="auto"), plugins)
    records = []
    for city in ("Tokyo", "Osaka"):
        record = ToolCallRecord(id=city, name="forecast", arguments=json.dumps({"city": city}))
        await toolbox.call(ToolCall(city, "forecast", record.arguments), record, None)
        records.append((record.result, record.error))
    assert records == [("sunny, 24 °C", None), (None, "no forecast for Osaka")]


def test_the_example_config_documents_every_tools_key() -> None:
    from dataclasses import fields

    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    section = text.split("\n[tools]\n", 1)[1].split("\n[engines.", 1)[0]
    for field in fields(ToolSettings):
        if field.name == "tool_approval":
            continue
        key = "default" if field.name == "approval" else field.name
        assert f"\n{key} =" in section, f"[tools] {key} undocumented"


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker``."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry))
    return found


def test_tools_list_starts_lists_and_stops_mcp_servers(tedchat_home: Path) -> None:
    import pytest

    pytest.importorskip("tedchat.tools.mcp", reason="the MCP module is on another branch")
    marker = f"TEDCHAT_TOOLS_LIST_TEST_{tedchat_home.stat().st_ino}"
    (tedchat_home / "config").mkdir()
    (tedchat_home / "config" / "config.toml").write_text(
        textwrap.dedent(
            f"""
            [tools]
            sources = ["mcp"]
            [mcp.time]
            command = {json.dumps(sys.executable)}
            args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]
            env = {{ {marker} = "secret-value-1234" }}
            [mcp.broken]
            command = "/nonexistent/mcp-server"
            """
        )
    )
    result = run_cli(tedchat_home, "tools", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert all(set(row) == ROW_KEYS for row in rows)
    ready = {r["name"]: r for r in rows if r["status"] == "ready"}
    assert {"get_current_time", "convert_time"} <= set(ready)
    assert {r["source"] for r in ready.values()} == {"mcp:time"}
    failed = [r for r in rows if r["status"] == "failed"]
    assert [(r["name"], r["source"]) for r in failed] == [(None, "mcp:broken")]
    assert failed[0]["error"]
    assert "secret-value-1234" not in result.stdout + result.stderr
    assert processes_with(marker) == []  # the server tedchat started is gone
