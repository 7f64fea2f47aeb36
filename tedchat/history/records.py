"""The history's value objects: what a read from the store gives back.

A user message is a :class:`StoredMessage`; every model reply to it (regenerations, the panes
of a side-by-side comparison) is a :class:`Reply` with its engine, model, finish reason
(``stop|length|cancelled|error|interrupted``, None while it streams) and
:class:`ReplyMetrics`. Times are Unix seconds (UTC) as floats.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

_CORE_METRICS = ("ttft_s", "output_tokens_per_s", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class ReplyMetrics:
    """A reply's figures (see DESIGN.md, Metrics). ``extra`` holds everything else reported:
    server/engine timings, elapsed time, where the token count came from, emulated figures."""

    ttft_s: float | None = None
    output_tokens_per_s: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_any(cls, metrics: object) -> ReplyMetrics:
        """Accept a :class:`ReplyMetrics`, a mapping, or any metrics object with ``as_dict()``
        or dataclass fields (e.g. :class:`tedchat.metrics.StreamMetrics`)."""
        if metrics is None:
            return cls()
        if isinstance(metrics, ReplyMetrics):
            return metrics
        if isinstance(metrics, Mapping):
            data = dict(metrics)
        elif hasattr(metrics, "as_dict"):
            data = dict(metrics.as_dict())
            # as_dict() is the JSON view; keep the richer fields it leaves out (emulated figures).
            if is_dataclass(metrics):
                for f in fields(metrics):
                    data.setdefault(f.name, getattr(metrics, f.name))
        elif is_dataclass(metrics) and not isinstance(metrics, type):
            data = {f.name: getattr(metrics, f.name) for f in fields(metrics)}
        else:
            raise TypeError(f"cannot read reply metrics from {type(metrics).__name__}")
        # The finish reason is an argument of its own; a copy here would only disagree with it.
        data.pop("finish_reason", None)
        core = {k: data.pop(k, None) for k in _CORE_METRICS}
        # Our own as_dict() nests the rest under "extra": read it back flat.
        nested = data.pop("extra", None)
        if isinstance(nested, Mapping):
            data = {**nested, **data}
        elif nested is not None:
            data["extra"] = nested
        extra = {k: _jsonable(v) for k, v in data.items() if v is not None and v != {}}
        return cls(
            ttft_s=_opt_float(core["ttft_s"]),
            output_tokens_per_s=_opt_float(core["output_tokens_per_s"]),
            prompt_tokens=_opt_int(core["prompt_tokens"]),
            output_tokens=_opt_int(core["output_tokens"]),
            extra=extra,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the JSON export)."""
        return {
            "ttft_s": self.ttft_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class Reply:
    """One model reply to a user message. ``finish_reason`` is None while it is being written."""

    id: int
    parent_id: int
    engine: str | None
    model: str | None
    content: str
    created: float
    finish_reason: str | None
    metrics: ReplyMetrics = field(default_factory=ReplyMetrics)
    #: The reply's tool calls, each as ``ToolCallRecord.as_dict()`` gives it, in call order.
    tool_calls: tuple[dict[str, Any], ...] = ()

    @property
    def streaming(self) -> bool:
        """True while a live process is still writing this reply."""
        return self.finish_reason is None


@dataclass(frozen=True)
class StoredAttachment:
    """A file attached to a user message: the name it was attached under, its kind
    (``text``/``image``), MIME type and bytes. Stored once per content (``sha256``), however
    many messages attach it."""

    name: str
    kind: str
    mime: str
    data: bytes = field(repr=False)
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class StoredMessage:
    """A top-level message (a user turn), its attachments, and its replies, oldest first."""

    id: int
    conversation_id: int
    role: str
    content: str
    created: float
    engine: str | None = None
    model: str | None = None
    replies: tuple[Reply, ...] = ()
    attachments: tuple[StoredAttachment, ...] = ()


@dataclass(frozen=True)
class ConversationSummary:
    """A row of the history list."""

    id: int
    title: str | None
    created: float
    updated: float
    message_count: int


@dataclass(frozen=True)
class Conversation:
    """A whole conversation: its settings and its messages in order, each with its replies."""

    id: int
    title: str | None
    created: float
    updated: float
    system: str | None
    params: dict[str, Any]
    messages: tuple[StoredMessage, ...] = ()


@dataclass(frozen=True)
class SearchHit:
    """One message that matched a search. ``snippet[match_start:match_end]`` is the match
    (both None when the match could not be located in the original text)."""

    conversation_id: int
    message_id: int
    role: str
    created: float
    snippet: str
    conversation_title: str | None = None
    match_start: int | None = None
    match_end: int | None = None


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


# --- JSON for the columns that hold it ------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain JSON data from dataclasses, mappings (also read-only ones) and sequences."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


def compact_json(value: Any) -> str:
    """``value`` as one line of JSON (dataclasses and mappings become objects)."""
    return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))


def json_list_of_objects(text: str | None) -> tuple[dict[str, Any], ...]:
    """The JSON objects of a stored JSON list (anything else: none)."""
    if not text:
        return ()
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, dict))


def json_object(text: str | None) -> dict[str, Any]:
    """The JSON object in ``text``; an empty dict for nothing, bad JSON or another type."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
