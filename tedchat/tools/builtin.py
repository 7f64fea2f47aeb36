"""The built-in tools: read, list and search files in the workspace, and run a shell command.

Registered through the ``register_tools`` hook like any plugin's tools (this module is one of
the built-in plugins of :mod:`tedchat.plugins`), as the source ``builtin``.

The file tools never leave the workspace root (``[tools] workspace``, the current directory
by default): every path is resolved, symlinks followed, and refused when it lands outside
(:func:`tedchat.tools.workspace.inside`). ``shell`` runs ``/bin/sh -c COMMAND`` in the
workspace, always asks first (``ask_always``; only ``[tools.approval] shell = "auto"`` lets it
run unasked), keeps at most ``max_result_bytes`` of its output, kills its whole process group
when it ends, times out or is cancelled, and does not pass on variables with secret-looking
names.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO

from tedchat.errors import ToolError
from tedchat.hookspecs import hookimpl
from tedchat.redact import is_secret_name
from tedchat.tools.base import Tool
from tedchat.tools.workspace import current_context, inside

#: Entries ``list_directory`` shows at most.
MAX_ENTRIES = 1000
#: Files ``search_text`` skips: larger ones (bytes), and folders it never enters.
MAX_SEARCH_FILE_BYTES = 4 * 1024 * 1024
SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv"})
#: A file whose first bytes hold a NUL is taken as binary.
BINARY_SNIFF_BYTES = 8192
#: ``search_text`` shows at most this many characters of a matching line.
MATCH_LINE_CHARS = 300
#: Bytes of the result budget kept for the lines a tool adds after the output it cut (so the
#: whole result stays within ``max_result_bytes``).
TRAILER_ROOM = 80
#: ``read_file`` reads at most this much at a time.
READ_PIECE_BYTES = 65536
#: How long ``shell`` reads on after the shell exited and its group was killed.
DRAIN_S = 1.0


# --- read_file -------------------------------------------------------------------------------


def read_file(args: dict[str, Any]) -> str:
    context = current_context()
    path = inside(context.workspace, args["path"])
    budget = context.max_result_bytes - TRAILER_ROOM - len(args["path"].encode())
    limit = max(1, min(int(args.get("max_bytes", budget)), budget))
    start = int(args.get("start_line", 1))
    end = args.get("end_line")
    if end is not None and int(end) < start:
        raise ToolError(f"end_line {end} is before start_line {start}")
    with _open(path, args["path"]) as f:
        if _is_binary(f.read(BINARY_SNIFF_BYTES)):
            raise ToolError(f"{args['path']} is a binary file ({path.stat().st_size} bytes)")
        f.seek(0)
        kept: list[bytes] = []
        size = 0
        more = False
        number = 1
        # In pieces, not lines: one line may be the whole (huge) file.
        while piece := f.readline(READ_PIECE_BYTES):
            if number >= start:
                room = limit - size
                if (end is not None and number > int(end)) or room <= 0:
                    more = True
                    break
                kept.append(piece[:room])
                size += len(kept[-1])
                if len(piece) > room:
                    more = True
                    break
            if piece.endswith(b"\n"):
                number += 1
    if not kept and start > 1:
        raise ToolError(f"{args['path']} has fewer than {start} lines")
    text = _decode(b"".join(kept))
    if more:
        text += f"\n[more of {args['path']} follows; read on with start_line]"
    return text


def _open(path: Path, shown: str) -> BinaryIO:
    if path.is_dir():
        raise ToolError(f"{shown} is a directory (list it with list_directory)")
    if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
        raise ToolError(f"{shown} is not a regular file")
    try:
        return path.open("rb")
    except OSError as exc:
        raise ToolError(f"cannot read {shown}: {exc.strerror or exc}") from exc


def _is_binary(head: bytes) -> bool:
    return b"\0" in head


def _decode(data: bytes) -> str:
    """UTF-8 text of ``data``; a character cut off at the end is dropped, bad bytes replaced."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data, final=False)


# --- list_directory --------------------------------------------------------------------------


def list_directory(args: dict[str, Any]) -> str:
    shown = args.get("path", ".")
    folder = inside(current_context().workspace, shown)
    if not folder.is_dir():
        raise ToolError(f"{shown} is not a directory")
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise ToolError(f"cannot list {shown}: {exc.strerror or exc}") from exc
    lines = [_entry_line(e) for e in entries[:MAX_ENTRIES]]
    if len(entries) > MAX_ENTRIES:
        lines.append(f"[{len(entries) - MAX_ENTRIES} more entries not shown]")
    return "\n".join(lines) if lines else "(empty directory)"


def _entry_line(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return f"{entry.name}@"
    if entry.is_dir():
        return f"{entry.name}/"
    return entry.name


# --- search_text -----------------------------------------------------------------------------


def search_text(args: dict[str, Any]) -> str:
    root = current_context().workspace
    start = inside(root, args.get("path", "."))
    matches = _matcher(args["pattern"], bool(args.get("regex")), bool(args.get("ignore_case")))
    limit = int(args.get("max_matches", 100))
    found: list[str] = []
    for path in _files_under(root, start):
        for number, line in _lines(path):
            if matches(line):
                shown = line if len(line) <= MATCH_LINE_CHARS else line[:MATCH_LINE_CHARS] + "…"
                found.append(f"{path.relative_to(root)}:{number}: {shown}")
                if len(found) >= limit:
                    found.append(f"[stopped at {limit} matches]")
                    return "\n".join(found)
    return "\n".join(found) if found else "no matches"


def _matcher(pattern: str, regex: bool, ignore_case: bool) -> Callable[[str], bool]:
    flags = re.IGNORECASE if ignore_case else 0
    try:
        compiled = re.compile(pattern if regex else re.escape(pattern), flags)
    except re.error as exc:
        raise ToolError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return lambda line: compiled.search(line) is not None


def _files_under(root: Path, start: Path) -> Iterator[Path]:
    """Files at or below ``start`` in name order; symlinked folders are not entered and a
    symlinked file counts only when it resolves inside ``root``."""
    if start.is_file():
        yield start
        return
    for folder, dirs, files in os.walk(start):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    continue
            yield path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        if not path.is_file() or path.stat().st_size > MAX_SEARCH_FILE_BYTES:
            return
        data = path.read_bytes()
    except OSError:
        return
    if _is_binary(data[:BINARY_SNIFF_BYTES]):
        return
    yield from enumerate(data.decode("utf-8", errors="replace").splitlines(), 1)


# --- shell -----------------------------------------------------------------------------------


async def shell(args: dict[str, Any]) -> str:
    """``/bin/sh -c COMMAND`` in the workspace: stdout and stderr together, stdin empty. The
    shell runs in a process group of its own, killed once the shell exits (nothing it started
    is left behind) or when the call is cancelled (a timeout, Esc, Ctrl-C)."""
    context = current_context()
    process = subprocess.Popen(
        ["/bin/sh", "-c", args["command"]],
        cwd=context.workspace,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=shell_environment(os.environ),
    )
    assert process.stdout is not None
    output = _Output(process.stdout, max(0, context.max_result_bytes - TRAILER_ROOM))
    # Waiting for the exit, not for the end of the output: something the shell started in the
    # background may hold the output open after the shell is gone.
    exited = asyncio.ensure_future(asyncio.to_thread(process.wait))
    try:
        await asyncio.shield(exited)
        _kill_group(process.pid)  # whatever it left running in the background
        await output.wait(DRAIN_S)  # what they wrote before they died
    except BaseException:
        _kill_group(process.pid)
        await exited  # reaped: gone within moments of SIGKILL
        raise
    finally:
        output.close()
    status = process.returncode
    text = output.text()
    if status != 0:
        text += f"\n[exit status {status}]" if status > 0 else f"\n[killed by signal {-status}]"
    return text or "(no output)"


def shell_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """tedchat's environment without the variables whose names look secret (``*_API_KEY``,
    ``*_TOKEN``, ...): a command the model asked for, say ``env``, must not hand it the keys."""
    return {name: value for name, value in environ.items() if not is_secret_name(name)}


class _Output:
    """A process's output pipe read on the event loop, keeping its first ``limit`` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        self.pipe = pipe
        self.limit = limit
        self.kept = bytearray()
        self.dropped = 0
        self.ended = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        os.set_blocking(pipe.fileno(), False)
        self.loop.add_reader(pipe.fileno(), self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self.pipe.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.remove_reader(self.pipe.fileno())
            self.ended.set()
            return
        room = max(0, self.limit - len(self.kept))
        self.kept.extend(chunk[:room])
        self.dropped += len(chunk) - min(room, len(chunk))

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.ended.wait(), timeout)

    def close(self) -> None:
        """Stop reading; a process that escaped the group and still writes gets SIGPIPE."""
        if not self.pipe.closed:
            self.loop.remove_reader(self.pipe.fileno())
            self.pipe.close()

    def text(self) -> str:
        text = _decode(bytes(self.kept))
        if self.dropped:
            text += f"\n[output cut: {self.dropped} more bytes]"
        return text


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, signal.SIGKILL)


# --- the tools and their registration --------------------------------------------------------

_PATH = {"type": "string", "description": "a path relative to the workspace root"}

TOOLS = (
    Tool(
        name="read_file",
        description="Read a text file in the workspace, optionally only some of its lines.",
        parameters={
            "type": "object",
            "properties": {
                "path": _PATH,
                "start_line": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "first line to read (1-based; default 1)",
                },
                "end_line": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "last line to read (default: to the end)",
                },
                "max_bytes": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "read at most this many bytes",
                },
            },
            "required": ["path"],
            "additionalProperties": False,
        },
        function=read_file,
    ),
    Tool(
        name="list_directory",
        description="List a directory in the workspace: one entry a line, folders end in '/', "
        "symlinks in '@'.",
        parameters={
            "type": "object",
            "properties": {"path": {**_PATH, "description": _PATH["description"] + " (default .)"}},
            "additionalProperties": False,
        },
        function=list_directory,
    ),
    Tool(
        name="search_text",
        description="Search the text files under a path in the workspace for a string or a "
        "regular expression; prints path:line: text for each matching line.",
        parameters={
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "minLength": 1, "description": "what to find"},
                "path": {**_PATH, "description": "file or folder to search (default .)"},
                "regex": {
                    "type": "boolean",
                    "description": "pattern is a Python regular expression (default: literal)",
                },
                "ignore_case": {"type": "boolean", "description": "ignore case (default false)"},
                "max_matches": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 1000,
                    "description": "stop after this many matching lines (default 100)",
                },
            },
            "required": ["pattern"],
            "additionalProperties": False,
        },
        function=search_text,
    ),
    Tool(
        name="shell",
        description="Run a shell command (/bin/sh -c) in the workspace folder; returns its "
        "output (stdout and stderr) and exit status. The user approves each command.",
        parameters={
            "type": "object",
            "properties": {
                "command": {"type": "string", "minLength": 1, "description": "the command line"}
            },
            "required": ["command"],
            "additionalProperties": False,
        },
        function=shell,
        ask_always=True,
    ),
)


@hookimpl
def register_tools(register: Callable[..., None]) -> None:
    for tool in TOOLS:
        register(tool)
