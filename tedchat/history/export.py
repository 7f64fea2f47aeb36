"""Conversations as documents: JSON to move them between histories, Markdown to read them.

The JSON export (format ``tedchat-conversation``, :data:`EXPORT_VERSION`) carries everything
:meth:`tedchat.history.store.Store.import_json` needs to bring a conversation back under new
ids: settings, messages, replies with their finish reasons, metrics and tool calls,
attachments (version 2: each message lists its files, name, kind, MIME type and SHA-256, and
the document's ``attachments`` table holds each content once, base64 under its hash) and the
tree (version 3: each message's ``follows``, the exported id of the message it was sent after,
and the conversation's ``active`` message; an older export is one branch, as it was shown).
The Markdown export is for reading only: one path through the tree (the active one unless
another leaf is asked for), its branches marked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tedchat.engine import FINISH_REASONS
from tedchat.errors import HistoryImportError
from tedchat.history.records import Conversation, Reply, StoredAttachment, compact_json
from tedchat.history.schema import SCHEMA_VERSION
from tedchat.history.tree import Tree, path_steps
from tedchat.tools.base import ToolCallRecord, reply_steps

EXPORT_FORMAT = "tedchat-conversation"
EXPORT_VERSION = 3


def to_json(conv: Conversation, exported: float) -> str:
    """``conv`` as JSON text with everything needed to import it again (``exported``: when)."""
    contents = {
        a.sha256: base64.b64encode(a.data).decode("ascii")
        for msg in conv.messages
        for a in msg.attachments
    }
    doc = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "schema": SCHEMA_VERSION,
        "exported": exported,
        "conversation": {
            "id": conv.id,
            "title": conv.title,
            "created": conv.created,
            "updated": conv.updated,
            "system": conv.system,
            "params": conv.params,
            "active": conv.active_id,
        },
        "messages": [
            {
                "id": msg.id,
                "role": msg.role,
                "content": msg.content,
                "engine": msg.engine,
                "model": msg.model,
                "created": msg.created,
                "follows": msg.follows_id,
                "attachments": [
                    {"name": a.name, "kind": a.kind, "mime": a.mime, "sha256": a.sha256}
                    for a in msg.attachments
                ],
                "replies": [
                    {
                        "id": rep.id,
                        "engine": rep.engine,
                        "model": rep.model,
                        "content": rep.content,
                        "created": rep.created,
                        "finish_reason": rep.finish_reason,
                        "metrics": rep.metrics.as_dict(),
                        "tool_calls": [dict(call) for call in rep.tool_calls],
                    }
                    for rep in msg.replies
                ],
            }
            for msg in conv.messages
        ],
        "attachments": contents,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def to_markdown(conv: Conversation, leaf: int | None = None) -> str:
    """``conv`` as a Markdown document (for reading, not for re-import): the path to ``leaf``
    (None: the active path). A prompt or reply with siblings says which it is (``2 of 3``);
    with several branches a line says which branch this is."""
    out = [f"# {conv.title or f'Conversation {conv.id}'}", ""]
    out.append(f"*Created {_fmt_time(conv.created)} · updated {_fmt_time(conv.updated)}*")
    out.append("")
    tree = Tree.of(conv)
    active = tree.active_leaf(conv.active_id)
    shown = active if leaf is None else leaf
    leaves = tree.leaves()
    if len(leaves) > 1 and shown in leaves:
        which = (
            "the active branch"
            if shown == active or active is None
            else f"the active one is {leaves.index(active) + 1}"
        )
        out += [
            f"*Branch {leaves.index(shown) + 1} of {len(leaves)} ({which});"
            " `history show ID --branch N` shows branch N*",
            "",
        ]
    if conv.params:
        out += ["Parameters: `" + compact_json(conv.params) + "`", ""]
    if conv.system:
        out += ["## System", "", conv.system, ""]
    for step in path_steps(conv, shown):
        msg = step.message
        target = " · ".join(x for x in (msg.engine, msg.model) if x)
        heading = f"## {msg.role.capitalize()} · {_fmt_time(msg.created)}"
        heading += f" · to {target}" if target else ""
        out += [heading + _place(step.prompt_branch, "prompt "), "", msg.content, ""]
        out += [f"*attached:* {attachment_label(a)}  " for a in msg.attachments]
        if msg.attachments:
            out.append("")
        rep = step.reply
        if rep is None:
            continue
        label = " · ".join(x for x in (rep.engine, rep.model) if x) or "reply"
        out += [f"### {label}{_place(step.reply_branch, '')}", "", f"*{_metrics_line(rep)}*", ""]
        calls = [ToolCallRecord.from_dict(c) for c in rep.tool_calls]
        for text, step_calls in reply_steps(rep.content, calls):
            if text:
                out += [text, ""]
            for call in step_calls:
                out += _tool_call_markdown(call)
    return "\n".join(out).rstrip() + "\n"


def _place(place: tuple[int, int], what: str) -> str:
    index, count = place
    return f" ({what}{index} of {count})" if count > 1 else ""


@dataclass(frozen=True)
class TreeRow:
    """One row an import writes, in write order: a prompt (``parent`` None, ``follows`` the
    key of the row it follows) or a reply (``parent`` its prompt's key)."""

    key: object
    parent: object | None
    follows: object | None
    item: Mapping[str, Any]


def tree_rows(doc: Mapping[str, Any]) -> list[TreeRow]:
    """The rows of a parsed export in the order to write them (exported ids ascending, so
    the new ids keep the old order and branch numbers), keyed by exported id. A version 1 or 2
    export (no tree) is one branch: each prompt follows the newest reply of the one before.
    :class:`~tedchat.errors.HistoryImportError` for a tree that does not hold together."""
    messages: list[Mapping[str, Any]] = list(doc["messages"])
    if doc.get("version", 1) < 3:  # before the tree
        rows: list[TreeRow] = []
        previous: object | None = None
        for i, msg in enumerate(messages):
            replies = list(msg.get("replies") or ())
            rows.append(TreeRow(("m", i), None, previous, msg))
            rows += [TreeRow(("r", i, j), ("m", i), None, r) for j, r in enumerate(replies)]
            previous = ("r", i, len(replies) - 1) if replies else ("m", i)
        return rows
    keyed: list[tuple[int, TreeRow]] = []
    for i, msg in enumerate(messages):
        key = _export_id(msg, f"message {i}")
        keyed.append((key, TreeRow(key, None, msg.get("follows"), msg)))
        for j, rep in enumerate(msg.get("replies") or ()):
            rid = _export_id(rep, f"reply {j} of message {i}")
            keyed.append((rid, TreeRow(rid, key, None, rep)))
    keyed.sort(key=lambda pair: pair[0])
    rows = [row for _key, row in keyed]
    seen: set[object] = set()
    for row in rows:
        if row.key in seen:
            raise HistoryImportError(f"conversation export: two messages have id {row.key}")
        if row.parent is not None and row.parent not in seen:
            raise HistoryImportError(
                f"conversation export: reply {row.key} has a larger id than its prompt"
            )
        if row.follows is not None and row.follows not in seen:
            raise HistoryImportError(
                f"conversation export: message {row.key} follows {row.follows!r},"
                " which is not an earlier message of the export"
            )
        seen.add(row.key)
    return rows


def _export_id(item: Mapping[str, Any], where: str) -> int:
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise HistoryImportError(f"conversation export: {where} has no id (version 3 needs one)")
    return value


def attachment_label(a: StoredAttachment) -> str:
    """``src/x.py (text, 1.2 KB)``: how history shows an attachment."""
    size = a.size
    shown = f"{size} B" if size < 1024 else f"{size / 1024:.1f} KB"
    if size >= 1024 * 1024:
        shown = f"{size / (1024 * 1024):.1f} MB"
    return f"`{a.name}` ({a.kind}, {shown})"


def message_attachments(doc: Mapping[str, Any], msg: Mapping[str, Any]) -> list[StoredAttachment]:
    """The attachments of an exported message (a document checked by :func:`parse`)."""
    contents = doc.get("attachments") or {}
    return [
        StoredAttachment(
            a["name"], a["kind"], a["mime"], base64.b64decode(contents[a["sha256"]]), a["sha256"]
        )
        for a in msg.get("attachments") or ()
    ]


def _check_attachments(data: Mapping[str, Any], messages: list[Any]) -> None:
    contents = data.get("attachments") or {}
    if not isinstance(contents, Mapping):
        raise HistoryImportError("conversation export: 'attachments' is not a table")
    for i, msg in enumerate(messages):
        for k, a in enumerate(msg.get("attachments") or ()):
            where = f"attachment {k} of message {i}"
            if not isinstance(a, Mapping) or not all(
                isinstance(a.get(key), str) for key in ("name", "kind", "mime", "sha256")
            ):
                raise HistoryImportError(
                    f"conversation export: {where} needs name, kind, mime and sha256"
                )
            if a["kind"] not in ("text", "image"):
                raise HistoryImportError(f"conversation export: {where} has kind {a['kind']!r}")
            encoded = contents.get(a["sha256"])
            if not isinstance(encoded, str):
                raise HistoryImportError(f"conversation export: {where} has no content")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise HistoryImportError(
                    f"conversation export: the content of {where} is not base64"
                ) from None
            if hashlib.sha256(raw).hexdigest() != a["sha256"]:
                raise HistoryImportError(
                    f"conversation export: the content of {where} does not match its sha256"
                )


def parse(data: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """An export document (text or parsed), its shape checked before anything is written;
    :class:`~tedchat.errors.HistoryImportError` says what is wrong."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise HistoryImportError(f"not a tedchat conversation export: {exc}") from exc
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        raise HistoryImportError(
            f"not a tedchat conversation export (expected format {EXPORT_FORMAT!r})"
        )
    version = data.get("version")
    if not isinstance(version, int) or version > EXPORT_VERSION or version < 1:
        raise HistoryImportError(
            f"conversation export version {version!r} is not supported by this tedchat"
            f" (it reads up to version {EXPORT_VERSION})"
        )
    conv, messages = data.get("conversation"), data.get("messages")
    if not isinstance(conv, Mapping) or not isinstance(messages, list):
        raise HistoryImportError("conversation export lacks 'conversation' or 'messages'")
    _check_fields("the conversation", conv, _CONVERSATION_FIELDS)
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping) or not isinstance(msg.get("content"), str):
            raise HistoryImportError(f"conversation export: message {i} has no text content")
        if msg.get("role") not in ("user", "system", "assistant"):
            raise HistoryImportError(f"conversation export: message {i} has an unknown role")
        _check_fields(f"message {i}", msg, _MESSAGE_FIELDS)
        for j, rep in enumerate(msg.get("replies") or ()):
            if not isinstance(rep, Mapping) or not isinstance(rep.get("content"), str):
                raise HistoryImportError(
                    f"conversation export: reply {j} of message {i} has no text content"
                )
            reason = rep.get("finish_reason")
            if reason is not None and reason not in FINISH_REASONS:
                raise HistoryImportError(
                    f"conversation export: reply {j} of message {i} has finish reason {reason!r}"
                )
            _check_fields(f"reply {j} of message {i}", rep, _REPLY_FIELDS)
            if isinstance(rep.get("metrics"), Mapping):
                metrics = rep["metrics"]
                _check_fields(f"the metrics of reply {j} of message {i}", metrics, _METRIC_FIELDS)
            for k, call in enumerate(rep.get("tool_calls") or ()):
                where = f"tool call {k} of reply {j} of message {i}"
                if not isinstance(call, Mapping):
                    raise HistoryImportError(f"conversation export: {where} is not a table")
                _check_fields(where, call, _TOOL_CALL_FIELDS)
    _check_attachments(data, messages)
    return dict(data)


# What an export's optional fields may hold (None or absent is always fine); checked before
# anything is written, so a bad file is one error and no partial conversation.
_TEXT, _NUMBER, _COUNT, _TABLE, _LIST = "text", "a number", "a count", "a table", "a list"
_CONVERSATION_FIELDS = {
    "active": _COUNT,
    "title": _TEXT,
    "system": _TEXT,
    "created": _NUMBER,
    "updated": _NUMBER,
    "params": _TABLE,
}
_MESSAGE_FIELDS = {
    "engine": _TEXT,
    "model": _TEXT,
    "created": _NUMBER,
    "replies": _LIST,
    "follows": _COUNT,
    "attachments": _LIST,
}
_REPLY_FIELDS = {
    "engine": _TEXT,
    "model": _TEXT,
    "created": _NUMBER,
    "metrics": _TABLE,
    "tool_calls": _LIST,
}
_TOOL_CALL_FIELDS = {
    "id": _TEXT,
    "name": _TEXT,
    "result": _TEXT,
    "error": _TEXT,
    "source": _TEXT,
    "status": _TEXT,
    "elapsed_s": _NUMBER,
    "step": _COUNT,
    "offset": _COUNT,
}
_METRIC_FIELDS = {
    "ttft_s": _NUMBER,
    "output_tokens_per_s": _NUMBER,
    "prompt_tokens": _COUNT,
    "output_tokens": _COUNT,
}


def _fits(value: Any, kind: str) -> bool:
    if kind == _TEXT:
        return isinstance(value, str)
    if kind == _TABLE:
        return isinstance(value, Mapping)
    if kind == _LIST:
        return isinstance(value, list)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == _COUNT:
        return 0 <= value < 2**63 and value == int(value)
    return math.isfinite(value) and abs(value) < 2**63


def _check_fields(where: str, obj: Mapping[str, Any], kinds: Mapping[str, str]) -> None:
    for key, kind in kinds.items():
        value = obj.get(key)
        if value is not None and not _fits(value, kind):
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise HistoryImportError(
                f"conversation export: {where} has {key} = {shown}, which is not {kind}"
            )


def _tool_call_markdown(call: ToolCallRecord) -> list[str]:
    arguments = compact_json(call.args) if call.args is not None else call.arguments
    outcome = f"error: {call.error}" if call.error is not None else (call.result or "")
    return [
        f"> **tool** `{call.name}` ({call.source or 'unknown source'}, {call.elapsed_s:.2f} s)"
        f" `{arguments}`",
        ">",
        *(f"> {line}" for line in outcome.splitlines() or [""]),
        "",
    ]


def _fmt_time(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _metrics_line(rep: Reply) -> str:
    m = rep.metrics
    parts = [rep.finish_reason or "still being written"]
    if m.ttft_s is not None:
        parts.append(f"TTFT {m.ttft_s * 1000:.0f} ms")
    if m.output_tokens_per_s is not None:
        parts.append(f"{m.output_tokens_per_s:.1f} tok/s")
    if m.output_tokens is not None:
        parts.append(f"{m.output_tokens} tokens")
    if m.prompt_tokens is not None:
        parts.append(f"{m.prompt_tokens} prompt tokens")
    return " · ".join(parts)
