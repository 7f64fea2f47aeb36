"""The tools of one front end: which sources, and a :class:`~tedchat.tools.toolbox.Toolbox`
with MCP servers starting in the background.

``ask`` and ``tools list`` call :func:`open_tools` and then ``await tools.ready()`` (the
servers start while the engine loads); the TUI opens it at start and the first request
waits. This is the one place that starts MCP servers for a front end, so ``mcp`` is imported
only when an MCP source is in use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from tedchat.errors import UsageError
from tedchat.tools.toolbox import Toolbox, mcp_servers

if TYPE_CHECKING:
    from tedchat.config import Settings
    from tedchat.plugins import Plugins
    from tedchat.tools.mcp import McpServers

#: What ``[tools] sources`` and ``--tools`` may name.
SOURCE_KINDS = ("builtin", "plugin", "mcp")


def sources_for(
    settings: Settings, *, tools: str | None = None, mcp: Sequence[str] = ()
) -> list[str]:
    """The tool sources of one request: ``--tools`` (comma-separated; ``none`` for none) or
    ``[tools] sources``, plus ``mcp:NAME`` for each ``--mcp NAME``. An unknown source or a
    server that is not configured is a :class:`UsageError` (exit 2)."""
    chosen = settings.tools.sources if tools is None else _split(tools)
    for source in chosen:
        kind, _, name = source.partition(":")
        if kind not in SOURCE_KINDS or (kind == "builtin" and name):
            raise UsageError(
                f"unknown tool source {source!r}; use builtin, plugin, plugin:NAME, mcp,"
                " mcp:NAME or none"
            )
    for name in mcp:
        if name not in settings.mcp:
            raise UsageError(
                f"--mcp {name}: no MCP server [mcp.{name}] in the config; configured: "
                + (", ".join(settings.mcp) or "none"),
                hint="add an [mcp.NAME] table to the config file (see README: MCP servers)",
            )
    return [*chosen, *(f"mcp:{name}" for name in mcp if f"mcp:{name}" not in chosen)]


def _split(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return [] if parts == ["none"] else parts


class OpenTools:
    """A front end's toolbox and the MCP servers starting for it.

    ``toolbox`` is the :class:`~tedchat.session.ToolRunner` handed to turns. Await
    :meth:`ready` before the first request: it waits for the servers (each up to its startup
    timeout), adds the tools of those that came up and returns one line per server left out;
    a server in ``required`` that failed raises its error instead (``ask --mcp NAME``: exit 2
    when its command cannot be run, 1 when its handshake failed or hung). :meth:`aclose` stops
    every server (no child process outlives it)."""

    def __init__(
        self, toolbox: Toolbox, servers: McpServers | None, required: Sequence[str]
    ) -> None:
        self.toolbox = toolbox
        self.servers = servers
        self.required = list(required)

    async def ready(self) -> list[str]:
        notices = await self.toolbox.wait_ready()
        if self.servers is not None:
            failures = self.servers.failures()
            for name in self.required:
                if name in failures:
                    raise failures[name]
        return notices

    async def aclose(self) -> None:
        await self.toolbox.aclose()


def open_tools(
    settings: Settings,
    plugins: Plugins,
    sources: Iterable[str] | None = None,
    *,
    yes: bool = False,
    required: Sequence[str] = (),
) -> OpenTools:
    """The built-in and plugin tools ``sources`` (default ``[tools] sources``) turn on, with
    their MCP servers starting in the background (needs a running event loop when one is
    on)."""
    tool_settings = (
        settings.tools if sources is None else replace(settings.tools, sources=list(sources))
    )
    toolbox = Toolbox.from_plugins(tool_settings, plugins, yes=yes)
    names = mcp_servers(replace(settings, tools=tool_settings))
    servers = None
    if names:
        from tedchat.tools.mcp import McpServers

        servers = McpServers(settings.mcp, names, tool_settings.startup_timeout_s)
        toolbox.add_servers(servers)
    return OpenTools(toolbox, servers, required)
