"""MCP servers from ``[mcp.NAME]`` as tool sources, through the official ``mcp`` SDK (v2).

A server is either a child process spoken to over stdio or an HTTP endpoint (streamable HTTP)::

    [mcp.time]
    command = "uvx"                      # stdio: the program, its args, extra environment
    args = ["mcp-server-time", "--local-timezone", "UTC"]
    env = { TZDATA_DIR = "/usr/share/zoneinfo" }

    [mcp.docs]
    url = "https://mcp.example.com/mcp"  # streamable HTTP, with headers on every request
    headers = { Authorization = "Bearer sk-..." }
    startup_timeout_s = 20               # its own wait; default: [tools] startup_timeout_s

``env`` and ``headers`` values are secrets: no message, status, ``repr`` or log line of this
module holds them (every error text goes through :mod:`tedchat.redact` with the server's
secrets). A stdio server gets the SDK's minimal environment (``PATH``, ``HOME``, ``USER``, ...)
plus its ``env``.

The interface (the rest is private):

- :class:`McpServers` -- the servers this process uses, each started once and stopped with it::

      servers = McpServers(settings.mcp, ["time"], settings.tools.startup_timeout_s)
      warnings = await servers.start()  # every server ready or failed, or the timeout passed
      servers.tools()                   # tedchat.tools.base.Tool values, source "mcp:NAME"
      servers.status()                  # [{name, source, transport, target, status, error}]
      servers.raise_for_failures()      # for `ask --mcp NAME`: exit 2 or 1 (below)
      await servers.stop()              # every child process gone

  It is also an async context manager (start on enter, stop on exit). ``start`` is
  ``launch()`` (runner tasks begin in the background: the TUI calls it at app start) and then
  ``await wait_ready()`` (the first request waits up to the startup timeout; a server not
  ready by then is stopped and left out with one warning line; nothing raises).
- :func:`list_server_tools` -- for ``tedchat tools list``: starts the configured servers (or
  the named ones), lists what each offers, stops them. One dict per server::

      {"name": "time", "source": "mcp:time", "transport": "stdio",
       "target": "python -m mcp_server_time", "status": "ready" | "failed",
       "error": None | "one line", "tools": [Tool, ...]}

- :func:`server_configs` -- the validated ``[mcp.NAME]`` tables (:class:`McpServerConfig`);
  :func:`names_from_sources` -- the servers a ``[tools] sources`` list selects (``mcp``: all,
  ``mcp:NAME``: one).

Errors (:mod:`tedchat.errors`): a bad table or an unknown name is a ``ConfigError`` (exit 2,
raised by the constructor, before anything starts); a command that cannot be run is an
``McpCommandError`` (a ``ConfigError``, exit 2); a handshake that fails or hangs is an
``McpStartupError`` (exit 1). Those two are recorded in the status, and
:meth:`McpServers.raise_for_failures` raises them. A tool whose result has ``isError`` raises
``McpToolError`` with the tool's text; a call that cannot complete (the server died, refused
the request) raises ``McpCallError``. The toolbox turns both into error results.

Each server lives in one asyncio task that owns the SDK's context managers (they use anyio
task groups, which must be entered and left in the same task): it connects, initializes, lists
the tools, then waits until it is stopped; calls run from the callers' tasks on the shared
session. The SDK's stdio client ends its child on exit (stdin closed, then SIGTERM and
SIGKILL to its process group when it does not exit). As a fallback, and for what a child that
did exit left in its process group (a launcher's helper), the group is then killed if any of
it is still alive; a server that hangs in the handshake is killed at once (found through
``/proc``, on Linux).

``mcp`` is imported only inside functions: ``tedchat --help``, a plain ``ask`` and the TUI's
start do not import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal

from tedchat.errors import (
    ConfigError,
    McpCallError,
    McpCommandError,
    McpStartupError,
    McpToolError,
    TedchatError,
)
from tedchat.redact import MCP_SECRET_TABLES, Redactor, redact_url, secrets_in
from tedchat.tools.base import Tool

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # pragma: no cover - Python 3.10: the backport anyio depends on
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from contextlib import AsyncExitStack

    from tedchat.config import Settings

log = logging.getLogger(__name__)

Transport = Literal["stdio", "http"]
ServerState = Literal["starting", "ready", "failed", "stopped"]

STDIO_KEYS = ("command", "args", "env")
HTTP_KEYS = ("url", "headers")
COMMON_KEYS = ("startup_timeout_s",)
VALID_KEYS = (*STDIO_KEYS, *HTTP_KEYS, *COMMON_KEYS)

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# How long stop() waits for a server's runner to wind down (the SDK's own escalation, stdin
# closed -> SIGTERM -> SIGKILL, takes at most ~6.5 s) before killing the process group itself.
_STOP_TIMEOUT_S = 10.0
# How long stop() waits for a process group it killed to be gone.
_GROUP_EXIT_S = 2.0
# The lines of a stdio server's stderr kept for error messages (the tail of its log).
_STDERR_TAIL_BYTES = 4096
# The longest detail in an error line, and the longest tool error text (sent to the model).
_MAX_DETAIL = 300
_MAX_TOOL_ERROR = 4000


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class McpServerConfig:
    """One validated ``[mcp.NAME]`` table. Its ``repr`` and :meth:`describe` hold no secret."""

    name: str
    transport: Transport
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    url: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    startup_timeout_s: float | None = None
    table: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def source(self) -> str:
        return f"mcp:{self.name}"

    def secrets(self) -> list[str]:
        """The values no message may show: env and header values, URL userinfo."""
        return secrets_in(self.table, secret_tables=MCP_SECRET_TABLES)

    def redactor(self) -> Redactor:
        return Redactor(self.secrets())

    def describe(self) -> str:
        """What the server is, for a person: the command line or the URL, redacted."""
        if self.transport == "http":
            return self.redactor()(redact_url(self.url))
        return self.redactor()(" ".join([self.command, *self.args]))

    def __repr__(self) -> str:
        target = self.describe()
        return f"McpServerConfig(name={self.name!r}, transport={self.transport!r}, {target!r})"


def _where(name: str) -> str:
    return f"[mcp.{name}]"


def _string_table(name: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(
            f'{_where(name)}: {key} must be a table of strings, like {key} = {{ NAME = "value" }}'
        )
    return dict(value)


def parse_server_config(name: str, table: Mapping[str, Any]) -> McpServerConfig:
    """Validate one ``[mcp.NAME]`` table; a ``ConfigError`` (one line, no secret) otherwise."""
    where = _where(name)
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: an MCP server name is 1-64 letters, digits, '_' or '-' "
            "(it names the tool source mcp:NAME)"
        )
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = [key for key in table if key not in VALID_KEYS]
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {where}; valid keys: {', '.join(VALID_KEYS)}"
        )
    has_command, has_url = "command" in table, "url" in table
    if has_command and has_url:
        raise ConfigError(
            f"{where} sets both command (a stdio server) and url (an HTTP server); keep one"
        )
    if not has_command and not has_url:
        raise ConfigError(
            f"{where} needs command (a stdio server: command, args, env) or url "
            "(a streamable HTTP server: url, headers)"
        )
    timeout = table.get("startup_timeout_s")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigError(f"{where}: startup_timeout_s must be a positive number of seconds")
    startup_timeout_s = float(timeout) if timeout is not None else None

    if has_command:
        wrong = [key for key in HTTP_KEYS if key in table]
        if wrong:
            raise ConfigError(
                f"{where}: {wrong[0]} belongs to HTTP servers (url); a stdio server takes "
                f"{', '.join((*STDIO_KEYS, *COMMON_KEYS))}"
            )
        command = table["command"]
        if not isinstance(command, str) or not command.strip():
            raise ConfigError(f"{where}: command must be a non-empty string (the program to run)")
        args = table.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConfigError(f'{where}: args must be a list of strings, like args = ["--flag"]')
        env = _string_table(name, "env", table.get("env", {}))
        return McpServerConfig(
            name=name,
            transport="stdio",
            command=command,
            args=tuple(args),
            env=env,
            startup_timeout_s=startup_timeout_s,
            table=dict(table),
        )

    wrong = [key for key in STDIO_KEYS if key in table]
    if wrong:
        raise ConfigError(
            f"{where}: {wrong[0]} belongs to stdio servers (command); an HTTP server takes "
            f"{', '.join((*HTTP_KEYS, *COMMON_KEYS))}"
        )
    url = table["url"]
    if not isinstance(url, str) or not re.match(r"https?://[^/?#\s]+", url, re.IGNORECASE):
        raise ConfigError(f"{where}: url must be an http:// or https:// URL")
    headers = _string_table(name, "headers", table.get("headers", {}))
    return McpServerConfig(
        name=name,
        transport="http",
        url=url,
        headers=headers,
        startup_timeout_s=startup_timeout_s,
        table=dict(table),
    )


def server_configs(
    tables: Mapping[str, Mapping[str, Any]], names: Iterable[str] | None = None
) -> list[McpServerConfig]:
    """The validated servers named (every configured one when ``names`` is None), in order.

    A name with no ``[mcp.NAME]`` table is a ``ConfigError`` naming the configured ones.
    """
    chosen = list(dict.fromkeys(tables if names is None else names))
    missing = [name for name in chosen if name not in tables]
    if missing:
        raise ConfigError(
            f"no MCP server named {missing[0]!r}; configured: {', '.join(tables) or 'none'}",
            hint=f"add a [mcp.{missing[0]}] table to the config file (see config.example.toml)",
        )
    return [parse_server_config(name, tables[name]) for name in chosen]


def names_from_sources(
    sources: Iterable[str], tables: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """The servers a ``[tools] sources`` / ``--tools`` list selects: ``mcp`` is every
    configured one, ``mcp:NAME`` that one (a ``ConfigError`` when it has no table); other
    sources are not MCP's and are skipped."""
    names: list[str] = []
    for source in sources:
        if source == "mcp":
            names.extend(tables)
        elif source.startswith("mcp:"):
            names.append(source[4:])
    server_configs(tables, names)  # unknown names and bad tables fail here, before any start
    return list(dict.fromkeys(names))


# --- results ---------------------------------------------------------------------------------


def result_text(result: Any) -> str:
    """A ``CallToolResult`` as text: text parts joined by newlines; images, audio and binary
    resources described in one short line each; the structured content as JSON when there is
    no content at all."""
    import json

    parts: list[str] = []
    for part in result.content or ():
        kind = getattr(part, "type", "")
        if kind == "text":
            parts.append(part.text)
        elif kind in ("image", "audio"):
            size = len(part.data) * 3 // 4
            parts.append(f"[{kind}: {part.mime_type}, about {size} bytes]")
        elif kind == "resource_link":
            parts.append(f"[resource: {part.uri}" + (f" ({part.name})" if part.name else "") + "]")
        elif kind == "resource":
            resource = part.resource
            text = getattr(resource, "text", None)
            if isinstance(text, str):
                parts.append(text)
            else:
                mime = getattr(resource, "mime_type", None) or "binary"
                parts.append(f"[resource: {resource.uri}, {mime}]")
        else:
            parts.append(f"[{kind or 'unknown'} content]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


# --- the servers -----------------------------------------------------------------------------


def _import_sdk() -> None:
    """Import the SDK (once) and keep its log lines out of the terminal unless logging is set
    up (``--debug``): without a handler of its own, Python's last-resort handler would print
    the SDK's warnings under the TUI or ``ask``'s answer."""
    import mcp  # noqa: F401

    logger = logging.getLogger("mcp")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found
    return [exc]


def _root_cause(exc: BaseException) -> BaseException:
    leaves = [e for e in _leaves(exc) if not isinstance(e, asyncio.CancelledError)]
    return leaves[0] if leaves else exc


def _one_line(text: str, limit: int = _MAX_DETAIL) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _Server:
    """One server: its runner task, its session while it is ready, and its state."""

    def __init__(self, config: McpServerConfig, spawn_lock: asyncio.Lock) -> None:
        self.config = config
        self.name = config.name
        self.state: ServerState = "starting"
        self.error: TedchatError | None = None
        self.tools: list[Tool] = []
        self.pid: int | None = None
        self._group: int | None = None  # the child's process group, kept after it is reaped
        self._redact = config.redactor()
        self._spawn_lock = spawn_lock
        self._session: Any = None
        self._task: asyncio.Task[None] | None = None
        self._scope: Any = None  # the runner's anyio CancelScope, to abort a start
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._stderr: IO[str] | None = None
        self._http_status: str | None = None
        self._ready_mark = 0  # the size of the stderr log when the server became ready

    # -- lifecycle --

    def launch(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"mcp server {self.name}"
            )

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the server is ready or failed; past ``timeout``, abort it (failed)."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except asyncio.TimeoutError:
            self._abort(
                McpStartupError(
                    f"MCP server {self.name!r} did not finish starting within {timeout:g} s",
                    hint=f"raise startup_timeout_s in [mcp.{self.name}] or [tools] if it is slow",
                )
            )

    def _abort(self, error: TedchatError) -> None:
        if self.state in ("starting", "ready"):
            self._fail(error)
        self._stop.set()
        if self._scope is not None and self._session is None:
            # Still in the handshake: leave it now, and give a hung child no grace period.
            self._scope.cancel()
            self._kill_leftover()

    def _fail(self, error: TedchatError) -> None:
        self.state = "failed"
        self.error = error
        self._session = None
        self._ready.set()

    async def stop(self) -> None:
        self._stop.set()
        if self._scope is not None and self._session is None:
            self._scope.cancel()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=_STOP_TIMEOUT_S)
            if not done:
                self._kill_leftover()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 2.0)
        self._kill_leftover()
        await self._group_gone()
        if self.state != "failed":
            self.state = "stopped"
        self._ready.set()

    async def _group_gone(self) -> None:
        """Wait (briefly) until a killed process group has died: a SIGKILL takes a moment to
        land, and on return from stop no process of the server's may be left."""
        group = self._group
        deadline = asyncio.get_running_loop().time() + _GROUP_EXIT_S
        while group is not None and _group_lives(group):
            if asyncio.get_running_loop().time() > deadline:
                log.debug("MCP server %s: process group %d still alive", self.name, group)
                return
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        # The SDK takes ~0.7 s to import (pydantic models): in a worker thread the event loop
        # goes on meanwhile (the TUI keeps drawing; ask's engine loads beside it).
        await asyncio.to_thread(_import_sdk)
        import anyio

        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._stop.is_set():
                    return
                from contextlib import AsyncExitStack

                async with AsyncExitStack() as stack:
                    session = await self._connect(stack)
                    await session.initialize()
                    self.tools = await self._list_tools(session)
                    self._session = session
                    self._ready_mark = self._stderr_size()
                    if self.state == "starting":
                        self.state = "ready"
                    self._ready.set()
                    await self._stop.wait()
                    self._session = None
        except Exception as exc:
            if self.state == "starting":
                self._fail(self._startup_error(exc))
            elif self.state == "ready":
                self._fail(self._lost_error(exc, since=self._ready_mark))
            log.debug("MCP server %s ended: %r", self.name, exc)
        finally:
            self._session = None
            self._ready.set()
            self._kill_leftover()
            self.pid = None  # gone now; never signal that number again (it may be reused)
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    async def _connect(self, stack: AsyncExitStack) -> Any:
        from mcp import ClientSession
        from mcp.types import Implementation

        from tedchat import __version__

        if self.config.transport == "stdio":
            read, write = await self._connect_stdio(stack)
        else:
            read, write = await self._connect_http(stack)
        client_info = Implementation(name="tedchat", version=__version__)
        return await stack.enter_async_context(ClientSession(read, write, client_info=client_info))

    async def _connect_stdio(self, stack: AsyncExitStack) -> Any:
        from mcp import StdioServerParameters, stdio_client

        config = self.config
        params = StdioServerParameters(
            command=config.command, args=list(config.args), env=dict(config.env) or None
        )
        # The server's stderr goes to a file, read back for error messages: under the TUI or
        # before ask's answer it would garble the terminal.
        self._stderr = tempfile.TemporaryFile(  # noqa: SIM115 - closed when the runner ends
            "w+", encoding="utf-8", errors="replace"
        )
        async with self._spawn_lock:
            before = _children_in_own_session()
            streams = await stack.enter_async_context(stdio_client(params, errlog=self._stderr))
            self.pid = self._group = _find_new_child(before, config.args)
        return streams

    async def _connect_http(self, stack: AsyncExitStack) -> Any:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async def note_status(response: httpx2.Response) -> None:
            # Only requests carrying messages: a GET for the optional event stream may be
            # refused (405) by servers without one, and the SDK goes on without it.
            if response.status_code >= 400 and response.request.method == "POST":
                self._http_status = f"HTTP {response.status_code} {response.reason_phrase}".strip()

        client = httpx2.AsyncClient(
            headers=dict(self.config.headers),
            # The SDK's defaults: the read timeout is long, a server may hold a stream open.
            timeout=httpx2.Timeout(30.0, read=300.0),
            event_hooks={"response": [note_status]},
        )
        await stack.enter_async_context(client)
        return await stack.enter_async_context(
            streamable_http_client(self.config.url, http_client=client)
        )

    async def _list_tools(self, session: Any) -> list[Tool]:
        from mcp.types import PaginatedRequestParams

        tools: list[Tool] = []
        cursor: str | None = None
        for _ in range(100):  # a server that pages forever cannot hang the start
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            listed = await session.list_tools(params=params)
            tools.extend(self._tool(t) for t in listed.tools)
            cursor = listed.next_cursor
            if not cursor:
                break
        return tools

    def _tool(self, listed: Any) -> Tool:
        tool_name = listed.name

        async def call(args: dict[str, Any]) -> str:
            return await self.call(tool_name, args)

        schema = listed.input_schema or {"type": "object", "properties": {}}
        return Tool(
            name=tool_name,
            description=listed.description or listed.title or "",
            parameters=dict(schema),
            function=call,
            source=self.config.source,
        )

    # -- calls --

    async def call(self, tool: str, args: Mapping[str, Any]) -> str:
        """Call ``tool``; its text, or ``McpToolError`` (isError) / ``McpCallError``."""
        session = self._session
        if session is None or self.state != "ready":
            why = f": {self.error}" if self.error else ""
            raise McpCallError(f"MCP server {self.name!r} is not running{why}")
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED

        mark = self._stderr_size()
        try:
            result = await session.call_tool(tool, dict(args))
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                error = self._lost_error(exc, since=mark)
                self._abort(error)
                raise error from None
            raise McpCallError(
                self._redact(f"MCP server {self.name!r} refused {tool}: {_one_line(str(exc))}")
            ) from None
        except Exception as exc:
            cause = _root_cause(exc)
            raise McpCallError(
                self._redact(f"MCP server {self.name!r}: {tool} failed: {self._detail(cause)}")
            ) from None
        text = result_text(result)
        if result.is_error:
            # The model reads this too: keep more of it than of a transport failure.
            message = _one_line(text, _MAX_TOOL_ERROR) or f"{tool} reported an error"
            raise McpToolError(self._redact(message))
        return text

    # -- errors --

    def _stderr_size(self) -> int:
        file = self._stderr
        try:
            return os.fstat(file.fileno()).st_size if file is not None and not file.closed else 0
        except (OSError, ValueError):
            return 0

    def _stderr_tail(self, since: int = 0) -> str:
        """The last line the server wrote on stderr after byte ``since`` (redacted), or ''."""
        file = self._stderr
        if file is None or file.closed:
            return ""
        try:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(since, size - _STDERR_TAIL_BYTES))
            lines = [line.strip() for line in file.read().splitlines() if line.strip()]
            file.seek(0, os.SEEK_END)
        except (OSError, ValueError):
            return ""
        return self._redact(_one_line(lines[-1])) if lines else ""

    def _detail(self, exc: BaseException, *, handshake: bool = False) -> str:
        """One line for a transport or protocol failure; in the ``handshake``, an HTTP error
        status the server answered says it best."""
        import httpx2

        if handshake and self._http_status:
            return f"the server answered {self._http_status}"
        if isinstance(exc, httpx2.ConnectError):
            return f"cannot connect to {redact_url(self.config.url)} ({_one_line(str(exc))})"
        if isinstance(exc, httpx2.HTTPError):
            return f"{type(exc).__name__}: {_one_line(str(exc))}"
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror
        text = _one_line(str(exc))
        return text or type(exc).__name__

    def _startup_error(self, exc: BaseException) -> TedchatError:
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED

        cause = _root_cause(exc)
        name = self.name
        if self.config.transport == "stdio" and self.pid is None and isinstance(cause, OSError):
            what = (
                "command not found"
                if isinstance(cause, FileNotFoundError)
                else "command cannot be run"
                if isinstance(cause, PermissionError)
                else f"cannot start the command ({cause.strerror or cause})"
            )
            return McpCommandError(
                self._redact(f"MCP server {name!r}: {what}: {self.config.command}"),
                hint=f"check command in [mcp.{name}]: is the program installed and on PATH?",
            )
        if isinstance(cause, MCPError) and cause.code == CONNECTION_CLOSED:
            tail = self._stderr_tail()
            return McpStartupError(
                self._redact(
                    f"MCP server {name!r} exited during the handshake"
                    + (f": {tail}" if tail else "")
                )
            )
        detail = self._redact(self._detail(cause, handshake=True))
        hint = (
            f"check url and headers in [mcp.{name}]"
            if self._http_status and self._http_status.startswith(("HTTP 401", "HTTP 403"))
            else None
        )
        return McpStartupError(
            self._redact(f"MCP server {name!r} failed the handshake: {detail}"), hint=hint
        )

    def _lost_error(self, exc: BaseException, since: int = 0) -> McpCallError:
        """The server died or the connection broke; ``since``: stderr written after this
        byte may say why (older lines are its earlier log)."""
        tail = self._stderr_tail(since)
        if self.config.transport == "stdio":
            what = "exited" + (f": {tail}" if tail else "")
        else:
            what = f"lost the connection: {self._detail(_root_cause(exc))}"
        return McpCallError(self._redact(f"MCP server {self.name!r} {what}"))

    # -- the fallback kill --

    def _kill_leftover(self) -> None:
        """Kill the child's process group if the child or a process it started in its group
        is still alive (the SDK ends the child, and its group only when the child does not
        exit by itself; this is the fallback)."""
        pid = self.pid
        if pid is None or not (_is_live_child(pid) or _group_lives(pid)):
            return
        log.debug("MCP server %s: process group %d left; killing it", self.name, pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.config.source,
            "transport": self.config.transport,
            "target": self.config.describe(),
            "status": self.state,
            "error": self.error.message if self.error else None,
        }


# Reading /proc: how the fallback finds a stdio server's pid (the SDK does not expose it). The
# SDK starts the child in a new session, so it is a child of this process leading its own.


def _proc_stat(pid: int | str) -> tuple[str, int, int, int] | None:
    """(state, parent pid, process group, session) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    try:
        return fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def _pids() -> list[str]:
    try:
        return [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


def _children_in_own_session() -> set[int]:
    """This process's live children that lead their own session ({} without /proc)."""
    me = os.getpid()
    found: set[int] = set()
    for entry in _pids():
        pid = int(entry)
        stat = _proc_stat(pid)
        if stat and stat[1] == me and stat[3] == pid and stat[0] != "Z":
            found.add(pid)
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0")[:-1]]


def _find_new_child(before: set[int], args: Sequence[str]) -> int | None:
    """The child spawned since ``before`` was taken (spawns are serialized by a lock); when
    something else spawned too, the one whose command line ends with ``args``."""
    new = sorted(_children_in_own_session() - before)
    if len(new) > 1 and args:
        new = [pid for pid in new if _cmdline(pid)[-len(args) :] == list(args)]
    return new[0] if len(new) == 1 else None


def _is_live_child(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[1] == os.getpid() and stat[0] != "Z"


def _group_lives(pgid: int) -> bool:
    """Whether a live process is in process group ``pgid`` (a stdio server's helpers stay in
    it after the server itself has exited)."""
    for entry in _pids():
        stat = _proc_stat(entry)
        if stat is not None and stat[2] == pgid and stat[0] != "Z":
            return True
    return False


class McpServers:
    """The MCP servers this process uses: started once, their tools, their status, stopped.

    ``tables`` is ``Settings.mcp``; ``names`` picks some (None: all). The constructor validates
    the tables (``ConfigError``) and needs no event loop; the rest runs on one loop.
    """

    def __init__(
        self,
        tables: Mapping[str, Mapping[str, Any]],
        names: Iterable[str] | None = None,
        startup_timeout_s: float = 10.0,
    ) -> None:
        self.configs = server_configs(tables, names)
        self.startup_timeout_s = startup_timeout_s
        self._spawn_lock = asyncio.Lock()
        self._servers = {c.name: _Server(c, self._spawn_lock) for c in self.configs}
        self._warned: set[str] = set()
        #: Every warning line so far (a server left out), in order.
        self.warnings: list[str] = []

    def launch(self) -> None:
        """Start every server in the background (idempotent); needs a running loop."""
        for server in self._servers.values():
            server.launch()

    async def wait_ready(self, timeout: float | None = None) -> list[str]:
        """Wait until every server is ready or failed, at most ``timeout`` (default: each
        server's ``startup_timeout_s``, else the one given to the constructor). A server still
        starting then is stopped and marked failed. Returns the new warning lines, one per
        server left out."""
        self.launch()
        waits = [
            server.wait_ready(
                timeout
                if timeout is not None
                else server.config.startup_timeout_s or self.startup_timeout_s
            )
            for server in self._servers.values()
        ]
        await asyncio.gather(*waits)
        # A server aborted at the timeout is ended now, so its process is gone on return.
        aborted = [s.stop() for s in self._servers.values() if s.state == "failed"]
        await asyncio.gather(*aborted)
        new = []
        for server in self._servers.values():
            if server.state == "failed" and server.name not in self._warned:
                self._warned.add(server.name)
                new.append(f"{server.error}; its tools are left out")
        self.warnings.extend(new)
        for line in new:
            log.info("%s", line)  # the caller shows the lines; this is for --debug
        return new

    async def start(self) -> list[str]:
        """:meth:`launch` then :meth:`wait_ready`; the warning lines of servers left out."""
        self.launch()
        return await self.wait_ready()

    def tools(self) -> list[Tool]:
        """The tools of every ready server, each with source ``mcp:NAME``."""
        return [tool for s in self._servers.values() if s.state == "ready" for tool in s.tools]

    def status(self) -> list[dict[str, Any]]:
        """One dict per server: name, source (``mcp:NAME``), transport, target (command line
        or URL, redacted), status (starting, ready, failed, stopped) and error (one line or
        None)."""
        return [server.status() for server in self._servers.values()]

    def failures(self) -> dict[str, TedchatError]:
        return {s.name: s.error for s in self._servers.values() if s.error is not None}

    def raise_for_failures(self) -> None:
        """Raise the first failed server's error: ``McpCommandError`` (exit 2) when its
        command cannot be run, ``McpStartupError`` (exit 1) when its handshake failed or hung.
        For ``ask --mcp NAME``, where a named server is required."""
        for error in self.failures().values():
            raise error

    def server_tools(self) -> list[dict[str, Any]]:
        """:func:`list_server_tools`'s rows for these servers, as they stand."""
        return [
            {**server.status(), "tools": list(server.tools)} for server in self._servers.values()
        ]

    async def stop(self) -> None:
        """End every server; on return no child process of theirs is left."""
        await asyncio.gather(*(server.stop() for server in self._servers.values()))

    async def __aenter__(self) -> McpServers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def list_server_tools(
    settings: Settings, names: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """For ``tedchat tools list``: start the configured MCP servers (or the named ones), wait
    up to the startup timeout, and return one dict per server -- ``name``, ``source``
    (``mcp:NAME``), ``transport``, ``target``, ``status`` (``ready`` or ``failed``),
    ``error`` (one line or None) and ``tools`` (:class:`~tedchat.tools.base.Tool` values,
    empty unless ready) -- then stop them. A bad table or unknown name raises ``ConfigError``.
    """
    servers = McpServers(settings.mcp, names, settings.tools.startup_timeout_s)
    try:
        await servers.start()
        rows = servers.server_tools()
    finally:
        await servers.stop()
    return rows
