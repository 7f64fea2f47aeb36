"""The app's tools: the ``[tools]`` toolbox, opened when the app starts, for every screen's turns.

:class:`AppTools` is the :class:`~tedchat.session.ToolRunner` the screens are handed
(``Services.tools``). :meth:`AppTools.start` opens the toolbox through
:func:`tedchat.tools.setup.open_tools` once the app runs (its MCP servers then start in the
background, so ``mcp`` is imported only when a server is configured and on); the first turn
that offers tools awaits :meth:`AppTools.ready` (servers not up by their startup timeout are
left out, one line each). :meth:`AppTools.aclose` stops the servers when the app ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tedchat.errors import TedchatError
from tedchat.tools.base import Approver, ToolCallRecord

if TYPE_CHECKING:
    from tedchat.config import Settings
    from tedchat.engine import ToolCall, ToolSpec
    from tedchat.plugins import Plugins
    from tedchat.tools.setup import OpenTools


class AppTools:
    """The tools of the app's turns (see the module docstring)."""

    def __init__(self, settings: Settings, plugins: Plugins) -> None:
        self.settings = settings
        self.plugins = plugins
        self._open: OpenTools | None = None
        self._error: str | None = None
        self._error_told = False
        self._sources: list[str] | None = None  # None: [tools] sources

    @property
    def error(self) -> str | None:
        """Why the tools could not be opened (a bad ``[tools]`` or ``[mcp.NAME]`` table)."""
        return self._error

    def start(self) -> None:
        """Open the toolbox and start its MCP servers (on the app's event loop); once."""
        if self._open is not None or self._error is not None:
            return
        from tedchat.tools.setup import open_tools

        try:
            self._open = open_tools(self.settings, self.plugins, self._sources)
        except TedchatError as exc:
            self._error = exc.message + (f" ({exc.hint})" if exc.hint else "")

    async def use_sources(self, sources: list[str]) -> None:
        """Offer ``sources`` from now on (a preset picked in the UI): the toolbox is closed
        (its MCP servers stopped) and opened again with them; the same sources keep it."""
        current = self._sources if self._sources is not None else self.settings.tools.sources
        if list(sources) == list(current) and (self._open or self._error):
            return
        await self.aclose()
        self._sources, self._error, self._error_told = list(sources), None, False
        self.start()

    async def ready(self) -> list[str]:
        """Wait for the servers still starting; one line per source left out (and, once, why
        there are no tools at all if they could not be opened)."""
        self.start()
        if self._open is None:
            if self._error is None or self._error_told:
                return []
            self._error_told = True
            return [f"no tools: {self._error}"]
        return await self._open.ready()

    def specs(self) -> tuple[ToolSpec, ...]:
        return self._open.toolbox.specs() if self._open is not None else ()

    async def call(self, call: ToolCall, record: ToolCallRecord, approver: Approver | None) -> None:
        if self._open is None:  # no specs were offered: a model calling anyway is told so
            record.status = "error"
            record.error = f"no tools are available{f': {self._error}' if self._error else ''}"
            return
        await self._open.toolbox.call(call, record, approver)

    async def aclose(self) -> None:
        """Stop every MCP server (no child process outlives the app)."""
        if self._open is not None:
            opened, self._open = self._open, None
            await opened.aclose()
