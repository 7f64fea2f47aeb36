"""What a tool is, and what one call of it did.

A tool source (the built-in set, a plugin through the ``register_tools`` hook, an MCP server)
provides :class:`Tool` values. A call the model makes becomes a :class:`ToolCallRecord`, which
the turn loop sends back to the model as a ``tool`` message, shows to the person and stores in
the history with the reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: A tool's function: called with the parsed, schema-checked arguments; returns the result
#: text. Plain functions run in a worker thread; ``async`` ones on the event loop.
ToolFunction = Callable[[dict[str, Any]], "str | Awaitable[str]"]


@dataclass(frozen=True)
class Tool:
    """A tool a source offers.

    ``name`` is the source's own name for it (the model may see it prefixed, see
    :mod:`tedchat.tools.toolbox`); ``parameters`` is a JSON Schema of type ``object``.
    ``source`` is ``builtin``, ``plugin:NAME`` or ``mcp:NAME`` (set by whoever collects the
    tools). ``ask_always``: the approval policy ``auto`` (and ``--yes``) does not cover it;
    only its own per-tool override does (the shell tool).
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: ToolFunction
    source: str = "builtin"
    ask_always: bool = False


ToolStatus = Literal["running", "done", "error", "denied", "cancelled"]


@dataclass
class ToolCallRecord:
    """One tool call as it ran; shown, sent back to the model and stored.

    ``arguments`` is the model's JSON text; ``args`` the parsed object (None when it was not a
    JSON object). Exactly one of ``result`` / ``error`` is set once the call ended. ``step`` is
    the model step (0-based) that asked for it; ``offset`` is how many characters of the
    reply's text had been written when that step ended (so a stored reply can be split back
    into its steps).
    """

    id: str
    name: str
    arguments: str
    source: str = ""
    step: int = 0
    offset: int = 0
    args: dict[str, Any] | None = None
    status: ToolStatus = "running"
    result: str | None = None
    error: str | None = None
    elapsed_s: float = 0.0

    def content_for_model(self) -> str:
        """What the model is told: the result, or the error as text."""
        if self.error is not None:
            return f"error: {self.error}"
        return self.result or ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``ask --json``'s ``tool_calls`` items and of the history."""
        return {
            "id": self.id,
            "name": self.name,
            "arguments": self.args if self.args is not None else self.arguments,
            "result": self.result,
            "error": self.error,
            "elapsed_s": self.elapsed_s,
            "source": self.source,
            "step": self.step,
            "offset": self.offset,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCallRecord:
        """A record from :meth:`as_dict`'s shape (history, imports); ill-typed fields are
        read as absent."""
        raw = data.get("arguments")
        args = raw if isinstance(raw, dict) else None
        arguments = raw if isinstance(raw, str) else _json_text(raw)
        status = data.get("status")
        return cls(
            id=_text(data.get("id")),
            name=_text(data.get("name")),
            arguments=arguments,
            source=_text(data.get("source")),
            step=_int(data.get("step")),
            offset=_int(data.get("offset")),
            args=args,
            status=status
            if status in ("running", "done", "error", "denied", "cancelled")
            else "done",
            result=data.get("result") if isinstance(data.get("result"), str) else None,
            error=data.get("error") if isinstance(data.get("error"), str) else None,
            elapsed_s=float(data["elapsed_s"])
            if isinstance(data.get("elapsed_s"), (int, float))
            and not isinstance(data.get("elapsed_s"), bool)
            else 0.0,
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _json_text(value: Any) -> str:
    import json

    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return ""


#: An approval answer: run it this once, run it and every later call of this tool in this
#: process, or refuse (the model is told).
Approval = Literal["once", "always", "deny"]


@dataclass(frozen=True)
class ApprovalRequest:
    """What a person is asked to approve: the tool (as the model named it), its source and the
    parsed arguments."""

    name: str
    source: str
    args: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


#: Asks a person (a dialog, a terminal prompt); front ends provide one. None: nobody to ask,
#: so a call that needs approval is refused.
Approver = Callable[[ApprovalRequest], Awaitable[Approval]]


def reply_steps(
    text: str, calls: list[ToolCallRecord] | tuple[ToolCallRecord, ...]
) -> list[tuple[str, list[ToolCallRecord]]]:
    """A reply split back into its model steps: each step's text and the calls it ended with
    (the last step has none). Without calls: the whole text as one step."""
    steps: list[tuple[str, list[ToolCallRecord]]] = []
    by_step: dict[int, list[ToolCallRecord]] = {}
    for call in calls:
        by_step.setdefault(call.step, []).append(call)
    start = 0
    for step in sorted(by_step):
        group = by_step[step]
        end = min(max(group[0].offset, start), len(text))
        steps.append((text[start:end], group))
        start = end
    steps.append((text[start:], []))
    return steps
