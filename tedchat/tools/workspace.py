"""The workspace a tool call runs in: its root folder, and keeping paths inside it.

The :class:`~tedchat.tools.toolbox.Toolbox` sets the :class:`CallContext` (``[tools]
workspace`` and ``max_result_bytes``) around every call; a tool reads it with
:func:`current_context` (a context variable, so it is right in worker threads and in calls
running side by side). :func:`inside` is the one confinement check of the file tools.
"""

from __future__ import annotations

import os
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path

from tedchat.errors import OutsideWorkspaceError


@dataclass(frozen=True)
class CallContext:
    """What a running tool may know about where and how it runs."""

    workspace: Path
    max_result_bytes: int = 32768


_CONTEXT: ContextVar[CallContext | None] = ContextVar("tedchat_tool_context", default=None)


def current_context() -> CallContext:
    """The context of the running call; outside a toolbox call, the current directory."""
    context = _CONTEXT.get()
    if context is None:
        return CallContext(workspace=Path.cwd().resolve())
    return context


def set_context(context: CallContext) -> Token[CallContext | None]:
    """Set the context for the code that follows (in this task or thread); returns the token
    :func:`reset_context` takes."""
    return _CONTEXT.set(context)


def reset_context(token: Token[CallContext | None]) -> None:
    _CONTEXT.reset(token)


def workspace_root(setting: str) -> Path:
    """``[tools] workspace`` as a resolved folder: empty means the current directory; ``~``
    and relative paths are expanded from the current directory."""
    return Path(os.path.expanduser(setting or ".")).resolve()


def inside(root: Path, path: str) -> Path:
    """``path`` (relative to ``root``, or absolute) resolved, symlinks followed, refused with
    :class:`~tedchat.errors.OutsideWorkspaceError` unless it is ``root`` or below it."""
    if "\0" in path:
        raise OutsideWorkspaceError(f"{path!r} is not a valid path")
    resolved = (root / os.path.expanduser(path)).resolve()
    if resolved != root and root not in resolved.parents:
        raise OutsideWorkspaceError(f"{path!r} is outside the workspace ({root})")
    return resolved
