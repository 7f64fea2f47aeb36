"""The tools of one process: named for the model, and every call checked, approved, timed out
and capped.

A :class:`Toolbox` holds the tools of the sources ``[tools] sources`` turns on: the built-in
set and the plugins' (both through the ``register_tools`` hook, :meth:`Toolbox.from_plugins`)
and the MCP servers' (:meth:`Toolbox.add_servers` takes a
:class:`tedchat.tools.mcp.McpServers`; :meth:`Toolbox.wait_ready` waits for their tool lists,
and for any other source still coming through :meth:`Toolbox.add_pending`, up to
``startup_timeout_s``). It is the :class:`tedchat.session.ToolRunner` of a turn; its
:meth:`Toolbox.aclose` stops the servers.

Names: a tool is offered to the model by its plain name when no other enabled tool has that
name, else as ``SOURCE__NAME``; either way made of at most 64 of ``[A-Za-z0-9_-]``
(:func:`model_names`).

Approval, for one call: a per-tool override (``[tools.approval] NAME = "ask"|"auto"``, NAME
being the model's name for the tool or its plain name) decides first; else a tool that always
asks (``shell``) asks; else ``--yes`` (``yes=True``) runs it; else the policy ``[tools]
approval`` (``ask`` by default). An "always" answer lets the tool run unasked for the rest of
the process. With nobody to ask, a call that needs approval is refused and the model told.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from tedchat.config import ToolSettings
from tedchat.engine import ToolCall, ToolSpec
from tedchat.errors import ConfigError, TedchatError
from tedchat.tools.base import Approval, ApprovalRequest, Approver, Tool, ToolCallRecord
from tedchat.tools.workspace import CallContext, reset_context, set_context, workspace_root

if TYPE_CHECKING:
    from tedchat.config import Settings
    from tedchat.plugins import Plugins

MAX_NAME = 64
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")
#: How many tool names an "unknown tool" error lists at most.
_LISTED_NAMES = 40

SourceState = Literal["ready", "starting", "failed"]


@dataclass(frozen=True)
class ToolSourceStatus:
    """How a tool source is doing: ``ready`` (its tools are in), ``starting`` (an MCP server
    not ready yet) or ``failed`` (left out; ``error`` says why, one line, nothing secret)."""

    source: str
    status: SourceState
    error: str = ""


# --- names -----------------------------------------------------------------------------------


def sanitize(name: str) -> str:
    """``name`` as a tool name models accept: every character outside ``[A-Za-z0-9_-]``
    becomes ``_``; a name longer than 64 keeps its start and ends in a digest of the whole."""
    clean = _NOT_NAME.sub("_", name) or "_"
    if len(clean) <= MAX_NAME:
        return clean
    return _with_suffix(clean, "_" + _digest(name))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:8]


def _with_suffix(name: str, suffix: str) -> str:
    return name[: MAX_NAME - len(suffix)] + suffix


def model_names(keys: Sequence[tuple[str, str]]) -> list[str]:
    """The model's name for each ``(source, name)``: the plain name when no other key has it,
    else ``SOURCE__NAME``, sanitized (:func:`sanitize`). Names that still clash (sanitizing
    made them equal) get a digest of their key, then a counter: the result is always
    distinct, and the same keys in the same order always get the same names."""
    counts = Counter(name for _, name in keys)
    wanted = [sanitize(name if counts[name] == 1 else f"{source}__{name}") for source, name in keys]
    clashes = Counter(wanted)
    names: list[str] = []
    taken: set[str] = set()
    for (source, name), want in zip(keys, wanted, strict=True):
        if clashes[want] > 1:
            want = _with_suffix(want, "_" + _digest(f"{source}\0{name}"))
        candidate, n = want, 2
        while candidate in taken:
            candidate, n = _with_suffix(want, f"-{n}"), n + 1
        taken.add(candidate)
        names.append(candidate)
    return names


# --- results ---------------------------------------------------------------------------------


def cap_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 (never inside a character), followed by
    a line saying how many bytes were cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= max_bytes:
        return text
    kept = data[: max(0, max_bytes)].decode("utf-8", errors="ignore")
    cut = len(data) - len(kept.encode("utf-8"))
    return f"{kept}\n[result cut: {cut} of {len(data)} bytes not shown]"


def one_line(exc: BaseException) -> str:
    """An exception as the one line a tool's error result shows: tedchat's own errors
    (:class:`ToolError`, an MCP server's) by their message, others as ``Type: message``."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, TedchatError):
        return text or "the tool failed"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- sources ---------------------------------------------------------------------------------


def source_enabled(settings: ToolSettings, source: str) -> bool:
    """Whether ``[tools] sources`` turns ``source`` (``builtin``, ``plugin:NAME``,
    ``mcp:NAME``) on: named itself, or its kind (``plugin``, ``mcp``) named."""
    return source in settings.sources or source.split(":", 1)[0] in settings.sources


def mcp_servers(settings: Settings) -> list[str]:
    """The ``[mcp.NAME]`` servers the tool sources turn on, in config order; an ``mcp:NAME``
    source that names no configured server is a :class:`ConfigError`."""
    for source in settings.tools.sources:
        kind, _, name = source.partition(":")
        if kind == "mcp" and name and name not in settings.mcp:
            raise ConfigError(
                f"tool source {source!r} names no configured MCP server; configured: "
                + (", ".join(settings.mcp) or "none"),
                hint="add an [mcp.NAME] table to the config file",
            )
    return [name for name in settings.mcp if source_enabled(settings.tools, f"mcp:{name}")]


# --- the toolbox -----------------------------------------------------------------------------


class ToolServers(Protocol):
    """Tool servers started in the background: what :meth:`Toolbox.add_servers` needs of
    :class:`tedchat.tools.mcp.McpServers`."""

    def launch(self) -> None:
        """Start every server in the background (needs a running loop)."""
        ...

    async def wait_ready(self, timeout: float | None = None) -> list[str]:
        """Wait (bounded by each server's startup timeout) until every server is ready or
        failed; one line per server left out."""
        ...

    def tools(self) -> list[Tool]:
        """The tools of the ready servers, each with its source ``mcp:NAME``."""
        ...

    def status(self) -> list[dict[str, Any]]:
        """``{name, status, error, ...}`` per server."""
        ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class _Entry:
    name: str  # as the model sees it
    tool: Tool

    @property
    def key(self) -> tuple[str, str]:
        return (self.tool.source, self.tool.name)


Closer = Callable[[], Awaitable[None]]


class Toolbox:
    """The tools of one process (see the module docstring); a :class:`ToolRunner`."""

    def __init__(
        self,
        settings: ToolSettings,
        tools: Iterable[Tool] = (),
        *,
        yes: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings
        self.yes = yes
        self.clock = clock
        self.workspace = workspace_root(settings.workspace)
        self._tools: list[Tool] = []
        self._entries: dict[str, _Entry] = {}
        self._statuses: dict[str, ToolSourceStatus] = {}
        # source -> (its tools to come, whether it keeps its own startup timeout)
        self._pending: dict[str, tuple[asyncio.Future[Iterable[Tool]], bool]] = {}
        self._notices: list[str] = []  # lines from sources that report their own
        self._settling: asyncio.Future[list[str]] | None = None
        # keyed by (source, plain name): a tool keeps them if a later source renames it
        self._always: set[tuple[str, str]] = set()
        self._closers: list[Closer] = []
        self._asking: asyncio.Lock | None = None
        self._validators: dict[tuple[str, str], Any] = {}
        self.add(tools)

    @classmethod
    def from_plugins(
        cls, settings: ToolSettings, plugins: Plugins, *, yes: bool = False
    ) -> Toolbox:
        """The built-in and plugin tools the sources turn on (MCP servers come later)."""
        return cls(settings, plugins.tools(), yes=yes)

    # --- filling it ---------------------------------------------------------------------------

    def add(self, tools: Iterable[Tool]) -> None:
        """Add tools (their ``source`` set); those of a source that is off are left out. Every
        added tool's source counts as ready. Names are assigned anew."""
        for tool in tools:
            if not source_enabled(self.settings, tool.source):
                continue
            self._tools.append(tool)
            self._statuses[tool.source] = ToolSourceStatus(tool.source, "ready")
        keys = [(t.source, t.name) for t in self._tools]
        self._entries = {
            name: _Entry(name, tool)
            for name, tool in zip(model_names(keys), self._tools, strict=True)
        }

    def set_status(self, status: ToolSourceStatus) -> None:
        """Record how a source is doing (an MCP server that failed to start, and why)."""
        self._statuses[status.source] = status

    def add_pending(self, source: str, tools: Awaitable[Iterable[Tool]]) -> None:
        """A source whose tools are still coming; needs a running event loop.
        :meth:`wait_ready` adds them, or leaves the source out (cancelling ``tools``) when
        they fail or are late."""
        self._pending[source] = (asyncio.ensure_future(tools), False)
        self._statuses[source] = ToolSourceStatus(source, "starting")

    def add_servers(self, servers: ToolServers) -> None:
        """MCP servers: launched now (needs a running loop), their tools and statuses added by
        :meth:`wait_ready` (each server bounded by its own startup timeout), stopped by
        :meth:`aclose`."""
        servers.launch()
        self.on_close(servers.stop)
        self._note_servers(servers)

        async def ready() -> list[Tool]:
            self._notices.extend(await servers.wait_ready())
            self._note_servers(servers)
            return servers.tools()

        self._pending["mcp"] = (asyncio.ensure_future(ready()), True)

    def _note_servers(self, servers: ToolServers) -> None:
        for row in servers.status():
            source = str(row.get("source") or f"mcp:{row.get('name')}")
            state = row.get("status")
            if state in ("ready", "starting"):
                self._statuses[source] = ToolSourceStatus(source, state)
            else:
                error = str(row.get("error") or state or "failed")
                self._statuses[source] = ToolSourceStatus(source, "failed", error)

    async def wait_ready(self, timeout_s: float | None = None) -> list[str]:
        """Wait for the sources still coming, up to ``timeout_s`` (default
        ``startup_timeout_s``) from the first caller on (servers: their own timeouts); returns
        one line per source left out. Callers at the same time (compare panes) share one wait;
        a cancelled caller does not end it."""
        if self._pending and self._settling is None:
            timeout = self.settings.startup_timeout_s if timeout_s is None else timeout_s
            pending, self._pending = self._pending, {}
            self._settling = asyncio.ensure_future(self._settle(pending, timeout))
        settling = self._settling
        if settling is None:
            return []
        try:
            return await asyncio.shield(settling)
        finally:
            if settling.done() and self._settling is settling:
                self._settling = None

    async def _settle(
        self, pending: dict[str, tuple[asyncio.Future[Iterable[Tool]], bool]], timeout: float
    ) -> list[str]:
        futures = [future for future, _ in pending.values()]
        timed = [future for future, own in pending.values() if not own]
        untimed = [future for future, own in pending.values() if own]
        try:
            if timed:
                await asyncio.wait(timed, timeout=timeout)
            if untimed:  # they started at the same time, and end on their own
                await asyncio.wait(untimed)
        except asyncio.CancelledError:  # aclose(): the sources still starting stop too
            for future in futures:
                future.cancel()
            await asyncio.gather(*futures, return_exceptions=True)
            raise
        notices: list[str] = []
        late: list[asyncio.Future[Iterable[Tool]]] = []
        for source, (future, _) in pending.items():
            if not future.done():
                future.cancel()
                late.append(future)
                error = f"not ready after {timeout:g} s"
            elif future.cancelled():
                error = "cancelled while starting"
            elif (exc := future.exception()) is not None:
                error = one_line(exc)
            else:
                self.add(future.result())
                if source in self._statuses:
                    self._statuses[source] = ToolSourceStatus(source, "ready")
                continue
            self._statuses[source] = ToolSourceStatus(source, "failed", error)
            notices.append(f"tool source {source} left out: {error}")
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        notices.extend(self._notices)
        self._notices.clear()
        return notices

    def on_close(self, closer: Closer) -> None:
        """Run ``closer`` in :meth:`aclose` (stopping an MCP server), last added first."""
        self._closers.append(closer)

    async def aclose(self) -> None:
        """Cancel sources still starting and run the closers; errors are not raised (each
        closer runs)."""
        starting: list[asyncio.Future[Any]] = [future for future, _ in self._pending.values()]
        if self._settling is not None:
            starting.append(self._settling)
        for future in starting:
            future.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        self._pending.clear()
        self._settling = None
        closers, self._closers = self._closers[::-1], []
        for closer in closers:
            with contextlib.suppress(Exception):  # a failing closer must not keep the next
                await closer()

    # --- what it offers -----------------------------------------------------------------------

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(
            ToolSpec(e.name, e.tool.description, e.tool.parameters) for e in self._entries.values()
        )

    def names(self) -> list[str]:
        return list(self._entries)

    def statuses(self) -> list[ToolSourceStatus]:
        return list(self._statuses.values())

    def listing(self) -> list[dict[str, Any]]:
        """``tools list``: ``{name, source, description, parameters, status, error}`` for each
        tool, then one row (``name`` null) for each source that is starting or failed."""
        rows: list[dict[str, Any]] = [
            {
                "name": e.name,
                "source": e.tool.source,
                "description": e.tool.description,
                "parameters": dict(e.tool.parameters),
                "status": "ready",
                "error": None,
            }
            for e in self._entries.values()
        ]
        for status in self._statuses.values():
            if status.status != "ready":
                rows.append(
                    {
                        "name": None,
                        "source": status.source,
                        "description": "",
                        "parameters": {},
                        "status": status.status,
                        "error": status.error or None,
                    }
                )
        return rows

    # --- one call -----------------------------------------------------------------------------

    async def call(self, call: ToolCall, record: ToolCallRecord, approver: Approver | None) -> None:
        """Run ``call`` and fill ``record``: see :class:`tedchat.session.ToolRunner`.
        ``elapsed_s`` is the tool's own time (waiting for approval is not counted)."""
        entry = self._entries.get(call.name)
        if entry is None:
            return _fail(record, self._unknown(call.name))
        record.source = entry.tool.source
        args = parse_arguments(call.arguments)
        if isinstance(args, str):
            return _fail(record, args)
        record.args = args
        problem = self._check(entry, args)
        if problem:
            return _fail(record, problem)
        try:
            refusal = await self._approve(entry, args, approver)
        except asyncio.CancelledError:
            record.status = "cancelled"
            record.error = "cancelled"
            raise
        if refusal is not None:
            record.status = "denied"
            record.error = refusal
            return None
        await self._run(entry, args, record)
        return None

    def _unknown(self, name: str) -> str:
        names = list(self._entries)
        shown = ", ".join(names[:_LISTED_NAMES]) + (", ..." if len(names) > _LISTED_NAMES else "")
        return f"unknown tool {name!r}; the tools are: {shown or 'none'}"

    def _check(self, entry: _Entry, args: dict[str, Any]) -> str | None:
        """Why ``args`` do not fit the tool's schema (the most relevant problem), or None."""
        from jsonschema import exceptions, validators

        validator = self._validators.get(entry.key)
        if validator is None:
            schema = dict(entry.tool.parameters)
            cls = validators.validator_for(schema)
            try:
                cls.check_schema(schema)
            except exceptions.SchemaError as exc:
                return f"tool {entry.name!r} has an invalid parameter schema: {exc.message}"
            validator = self._validators[entry.key] = cls(schema)
        error = exceptions.best_match(validator.iter_errors(args))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path)
        return f"invalid arguments: {error.message}" + (f" (at {where})" if where else "")

    def policy(self, name: str) -> Literal["ask", "auto"]:
        """Whether a call of the tool the model calls ``name`` runs unasked now."""
        entry = self._entries[name]
        if entry.key in self._always:
            return "auto"
        overrides = self.settings.tool_approval
        override = overrides.get(name) or overrides.get(entry.tool.name)
        if override == "ask":
            return "ask"
        if override == "auto":
            return "auto"
        if entry.tool.ask_always:
            return "ask"
        if self.yes:
            return "auto"
        return "auto" if self.settings.approval == "auto" else "ask"

    async def _approve(
        self, entry: _Entry, args: dict[str, Any], approver: Approver | None
    ) -> str | None:
        """None when the call may run, else why not (the record's error)."""
        if self.policy(entry.name) == "auto":
            return None
        if approver is None:
            return "refused: needs approval (" + self._how_to_allow(entry) + ")"
        if self._asking is None:
            self._asking = asyncio.Lock()
        async with self._asking:  # one question at a time; an "always" answers the next
            if self.policy(entry.name) == "auto":
                return None
            request = ApprovalRequest(entry.name, entry.tool.source, args, entry.tool.description)
            try:
                answer: Approval = await approver(request)
            except Exception as exc:
                return f"refused: asking for approval failed ({one_line(exc)})"
        if answer == "always":
            self._always.add(entry.key)
        if answer in ("once", "always"):
            return None
        return "denied by the user"

    def _how_to_allow(self, entry: _Entry) -> str:
        if entry.tool.ask_always:
            return (
                f"nobody to ask; {entry.tool.name} always asks unless the config has "
                f'[tools.approval] {entry.tool.name} = "auto"'
            )
        return f'nobody to ask; allow it with --yes or [tools.approval] {entry.name} = "auto"'

    async def _run(self, entry: _Entry, args: dict[str, Any], record: ToolCallRecord) -> None:
        context = CallContext(self.workspace, self.settings.max_result_bytes)
        start = self.clock()
        token = set_context(context)
        try:
            result = await asyncio.wait_for(_invoke(entry.tool, args), self.settings.timeout_s)
        except asyncio.CancelledError:
            record.status = "cancelled"
            record.error = "cancelled"
            record.elapsed_s = self.clock() - start
            raise
        except asyncio.TimeoutError:  # not yet the builtin TimeoutError on Python 3.10
            _fail(record, f"timed out after {self.settings.timeout_s:g} s")
        except Exception as exc:
            _fail(record, cap_text(one_line(exc), self.settings.max_result_bytes))
        else:
            record.status = "done"
            record.result = cap_text(_as_text(result), self.settings.max_result_bytes)
        finally:
            reset_context(token)
        record.elapsed_s = self.clock() - start


def parse_arguments(text: str) -> dict[str, Any] | str:
    """The model's JSON arguments as an object, or the error result saying why not. An empty
    string means no arguments (models send it for tools without parameters)."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"invalid JSON arguments: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if not isinstance(value, dict):
        return f"invalid JSON arguments: expected an object, got {_json_type(value)}"
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


async def _invoke(tool: Tool, args: dict[str, Any]) -> object:
    """Run the tool's function: an ``async`` one on the loop, a plain one in a worker thread
    (the call's context goes with it); an awaitable it returns is awaited here."""
    if inspect.iscoroutinefunction(tool.function):
        result: object = tool.function(args)
    else:
        result = await asyncio.to_thread(tool.function, args)
    if inspect.isawaitable(result):
        return await result
    return result


def _as_text(result: object) -> str:
    if isinstance(result, str):
        return result
    if result is None:
        return ""
    try:
        return json.dumps(result, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(result)


def _fail(record: ToolCallRecord, error: str) -> None:
    record.status = "error"
    record.error = error
