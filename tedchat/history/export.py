"""Conversations as documents: JSON to move them between histories, Markdown to read them.

The JSON export (format ``tedchat-conversation``, :data:`EXPORT_VERSION`) carries everything
:meth:`tedchat.history.store.Store.import_json` needs to bring a conversation back under new
ids: settings, messages, replies with their finish reasons, metrics and tool calls, and
attachments: each message lists its files (name, kind, MIME type, SHA-256) and the document's
``attachments`` table holds each content once, base64 under its hash (version 2; version 1
documents, which have none, still import). The Markdown export is for reading only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from tedchat.engine import FINISH_REASONS
from tedchat.errors import HistoryImportError
from tedchat.history.records import Conversation, Reply, StoredAttachment, compact_json
from tedchat.history.schema import SCHEMA_VERSION
from tedchat.tools.base import ToolCallRecord, reply_steps

EXPORT_FORMAT = "tedchat-conversation"
EXPORT_VERSION = 2


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
        },
        "messages": [
            {
                "id": msg.id,
                "role": msg.role,
                "content": msg.content,
                "engine": msg.engine,
                "model": msg.model,
                "created": msg.created,
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


def to_markdown(conv: Conversation) -> str:
    """``conv`` as a Markdown document (for reading, not for re-import)."""
    out = [f"# {conv.title or f'Conversation {conv.id}'}", ""]
    out.append(f"*Created {_fmt_time(conv.created)} · updated {_fmt_time(conv.updated)}*")
    out.append("")
    if conv.params:
        out += ["Parameters: `" + compact_json(conv.params) + "`", ""]
    if conv.system:
        out += ["## System", "", conv.system, ""]
    for msg in conv.messages:
        target = " · ".join(x for x in (msg.engine, msg.model) if x)
        heading = f"## {msg.role.capitalize()} · {_fmt_time(msg.created)}"
        out += [heading + (f" · to {target}" if target else ""), "", msg.content, ""]
        out += [f"*attached:* {attachment_label(a)}  " for a in msg.attachments]
        if msg.attachments:
            out.append("")
        for i, rep in enumerate(msg.replies, 1):
            label = " · ".join(x for x in (rep.engine, rep.model) if x) or "reply"
            count = f" ({i} of {len(msg.replies)})" if len(msg.replies) > 1 else ""
            out += [f"### {label}{count}", "", f"*{_metrics_line(rep)}*", ""]
            calls = [ToolCallRecord.from_dict(c) for c in rep.tool_calls]
            for text, step_calls in reply_steps(rep.content, calls):
                if text:
                    out += [text, ""]
                for call in step_calls:
                    out += _tool_call_markdown(call)
    return "\n".join(out).rstrip() + "\n"


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
