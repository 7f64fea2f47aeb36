"""A conversation as front ends hold it: exchanges, settings, and what is sent to an engine.

Used by the chat screen and by ``tedchat ask --continue``.

Pure data and functions (no Textual), so the rules are unit-tested on their own:

- an :class:`Exchange` is one user prompt and the reply currently shown for it (a regenerated
  reply replaces the shown one; the history store keeps every reply);
- :func:`build_messages` turns the conversation into the messages of the next request and drops
  the oldest exchanges when they would outgrow the engine's context. Token counts here are
  *estimates* (characters / 4): the engine's own count is only known after the request, and the
  notice says the figure is approximate;
- :func:`conversation_from_store` and :func:`metrics_from_store` rebuild a conversation and its
  replies' figures from the history, so a resumed reply shows the line it showed when it ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tedchat.attachments import Attachment, user_message
from tedchat.engine import (
    EmulatedTimings,
    Engine,
    GenerationParams,
    Message,
    ToolCall,
    capabilities_of,
)
from tedchat.metrics import StreamMetrics
from tedchat.tools.base import ToolCallRecord, reply_steps

#: Characters per token for the estimate (a common rule of thumb for English; Japanese runs
#: nearer 1-2 characters a token, so the estimate errs towards keeping too much, and the
#: engine's own error then says so).
CHARS_PER_TOKEN = 4
#: Per-message overhead of chat templates (role markers), in tokens.
MESSAGE_OVERHEAD_TOKENS = 4
#: Rough tokens an image costs a vision model (OpenAI's figure for one 512-pixel tile plus the
#: base; servers differ widely): always shown with ``~``.
IMAGE_TOKENS_ESTIMATE = 765


@dataclass
class ReplyRecord:
    """One reply as shown: who made it, its text and figures (None while it streams)."""

    engine: str
    model: str
    text: str = ""
    metrics: StreamMetrics | None = None
    finish_reason: str | None = None
    error: str | None = None
    store_id: int | None = None
    #: The tool calls the reply made, in order (their results, errors and times included).
    tool_calls: list[ToolCallRecord] = field(default_factory=list)


@dataclass
class Exchange:
    """A user prompt and the reply shown for it."""

    prompt: str
    reply: ReplyRecord | None = None
    message_id: int | None = None  # the user message's id in the history store
    #: Files attached to the prompt (text is sent as fenced blocks after it, images as parts).
    attachments: tuple[Attachment, ...] = ()


@dataclass
class ChatConversation:
    """What the chat screen is talking about; ``id`` is None until the first prompt is stored."""

    id: int | None = None
    title: str | None = None
    system: str = ""
    params: GenerationParams = field(default_factory=GenerationParams)
    exchanges: list[Exchange] = field(default_factory=list)


@dataclass(frozen=True)
class BuiltMessages:
    """The messages for one request and what had to be left out to fit the context."""

    messages: list[Message]
    dropped_exchanges: int
    estimated_tokens: int
    budget_tokens: int
    fits: bool  # False: even the system prompt and the new prompt alone are over budget


def estimate_tokens(text: str) -> int:
    """Approximate tokens of ``text`` (characters / 4, rounded up)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def _message_tokens(message: Message) -> int:
    calls = sum(estimate_tokens(c.name + c.arguments) for c in message.tool_calls)
    images = len(message.images) * IMAGE_TOKENS_ESTIMATE
    return estimate_tokens(message.content) + calls + images + MESSAGE_OVERHEAD_TOKENS


def attachment_tokens(attachment: Attachment) -> int:
    """Tokens an attachment adds to the prompt, estimated like the rest of the prompt."""
    if attachment.kind == "image":
        return IMAGE_TOKENS_ESTIMATE
    return estimate_tokens("\n\n" + attachment.block())


def context_budget(context_tokens: int, max_tokens: int) -> int:
    """Tokens the prompt side may use: the context minus room for the answer.

    When the answer limit alone is most of the context, half the context stays for the prompt
    (the engine stops the answer early rather than refusing the request).
    """
    return max(context_tokens - max_tokens, context_tokens // 2)


#: One earlier exchange for :func:`build_messages`: (prompt, reply text), or with the reply's
#: tool calls as a third item. The prompt is a user :class:`Message` when it had attachments.
HistoryItem = tuple[str | Message, str] | tuple[str | Message, str, Sequence[ToolCallRecord]]


def build_messages(
    system: str,
    history: Sequence[HistoryItem],
    prompt: str | Message,
    budget_tokens: int,
    *,
    tools: bool = False,
    vision: bool = False,
) -> BuiltMessages:
    """Messages for the next request: system, the newest exchanges that fit, then ``prompt``.

    ``history`` is (user, assistant[, tool calls]) items, oldest first. With ``tools`` (the
    engine takes tool messages) a reply that called tools is sent as its steps: the assistant
    message with its calls, one ``tool`` message per result, then the rest of the text;
    without, as its text alone. Exchanges are dropped whole, oldest first, until the estimate
    fits ``budget_tokens``. The system prompt and the new prompt are always sent. Images of
    user messages are sent only with ``vision`` (the engine declares it).
    """

    def user(item: str | Message) -> Message:
        message = item if isinstance(item, Message) else Message("user", item)
        return message if vision or not message.images else replace(message, images=())

    head = [Message("system", system)] if system.strip() else []
    tail = [user(prompt)]
    fixed = sum(_message_tokens(m) for m in head + tail)
    pairs: list[list[Message]] = []
    for item in history:
        assistant = item[1]
        calls = item[2] if len(item) > 2 else ()
        pair = [user(item[0])]
        if tools and calls:
            pair += reply_messages(assistant, calls)
        elif assistant:
            pair.append(Message("assistant", assistant))
        pairs.append(pair)
    costs = [sum(_message_tokens(m) for m in pair) for pair in pairs]
    total = fixed + sum(costs)
    dropped = 0
    while dropped < len(pairs) and total > budget_tokens:
        total -= costs[dropped]
        dropped += 1
    kept = [m for pair in pairs[dropped:] for m in pair]
    return BuiltMessages(head + kept + tail, dropped, total, budget_tokens, total <= budget_tokens)


def reply_messages(text: str, calls: Sequence[ToolCallRecord]) -> list[Message]:
    """A stored reply with tool calls as the messages the model exchanged while writing it."""
    out: list[Message] = []
    for step_text, step_calls in reply_steps(text, list(calls)):
        if step_calls:
            out.append(
                Message(
                    "assistant",
                    step_text,
                    tool_calls=tuple(ToolCall(c.id, c.name, c.arguments) for c in step_calls),
                )
            )
            out += [Message("tool", c.content_for_model(), tool_call_id=c.id) for c in step_calls]
        elif step_text:
            out.append(Message("assistant", step_text))
    return out


def engine_context_tokens(engine: Engine, default: int) -> tuple[int, bool]:
    """The engine's context window and whether the engine declared it (else ``default``)."""
    size = capabilities_of(engine).context_size
    if size is not None and size > 0:
        return size, True
    return default, False


def history_pairs(exchanges: Sequence[Exchange]) -> list[HistoryItem]:
    """(prompt, reply text, tool calls) of finished exchanges, for :func:`build_messages`; a
    prompt with attachments is its user message (images kept; build_messages drops them for
    an engine without vision)."""
    out: list[HistoryItem] = []
    for ex in exchanges:
        prompt: str | Message = ex.prompt
        if ex.attachments:
            prompt = user_message(ex.prompt, ex.attachments, vision=True)
        out.append((prompt, ex.reply.text, ex.reply.tool_calls) if ex.reply else (prompt, ""))
    return out


# --- from the history store -----------------------------------------------------------------


def params_from_dict(data: Mapping[str, Any] | None) -> GenerationParams:
    """GenerationParams from the JSON the store keeps (unknown or ill-typed keys ignored)."""
    defaults = GenerationParams()
    if not data:
        return defaults
    values: dict[str, Any] = {}
    for f in dataclasses.fields(GenerationParams):
        if f.name not in data:
            continue
        value = data[f.name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if f.name == "stop" and isinstance(value, (list, tuple)):
            values["stop"] = tuple(str(v) for v in value)
        elif f.name in ("temperature", "top_p") and (value is None or number):
            values[f.name] = None if value is None else float(value)  # None: the model's own
        elif f.name == "seed" and (value is None or (number and isinstance(value, int))):
            values["seed"] = value
        elif f.name == "max_tokens" and number and isinstance(value, int) and value > 0:
            values["max_tokens"] = value
    return dataclasses.replace(defaults, **values)


#: Parameters of one request, not settings of a conversation: never stored with it.
PER_REQUEST_PARAMS = ("tools", "tool_choice")


def params_to_dict(params: GenerationParams) -> dict[str, Any]:
    """The conversation settings in ``params`` as JSON-ready values (tools are per request)."""
    data = {
        f.name: getattr(params, f.name)
        for f in dataclasses.fields(params)
        if f.name not in PER_REQUEST_PARAMS
    }
    data["stop"] = list(params.stop)
    return data


def metrics_from_store(metrics: Any, finish_reason: str | None) -> StreamMetrics:
    """Rebuild the figures of a stored reply (:class:`tedchat.history.records.ReplyMetrics`), so
    they are shown by the same :func:`tedchat.metrics.format_metrics_line` as live ones."""
    extra: dict[str, Any] = dict(getattr(metrics, "extra", {}) or {})
    emulated = None
    raw = extra.get("emulated")
    if isinstance(raw, Mapping):
        names = {f.name for f in dataclasses.fields(EmulatedTimings)}
        try:
            emulated = EmulatedTimings(**{k: v for k, v in raw.items() if k in names})
        except TypeError:
            emulated = None
    timings = extra.get("timings")
    return StreamMetrics(
        ttft_s=metrics.ttft_s,
        output_tokens=metrics.output_tokens or 0,
        output_tokens_source=str(extra.get("output_tokens_source") or "engine"),
        output_tokens_per_s=metrics.output_tokens_per_s,
        elapsed_s=extra.get("elapsed_s"),
        prompt_tokens=metrics.prompt_tokens,
        time_to_first_reasoning_s=extra.get("time_to_first_reasoning_s"),
        reasoning_tokens=int(extra.get("reasoning_tokens") or 0),
        finish_reason=finish_reason,
        timings=dict(timings) if isinstance(timings, Mapping) else {},
        emulated=emulated,
        tool_s=_number(extra.get("tool_s"), 0.0),
        steps=max(1, int(_number(extra.get("steps"), 1))),
    )


def _number(value: Any, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return default


def conversation_from_store(stored: Any) -> ChatConversation:
    """A :class:`ChatConversation` from :meth:`tedchat.history.store.Store.get_conversation`; each
    exchange shows the newest reply to its prompt."""
    conv = ChatConversation(
        id=stored.id,
        title=stored.title,
        system=stored.system or "",
        params=params_from_dict(stored.params),
    )
    for message in stored.messages:
        if message.role != "user":
            continue
        reply = None
        if message.replies:
            last = message.replies[-1]
            reply = ReplyRecord(
                engine=last.engine or "?",
                model=last.model or "?",
                text=last.content,
                metrics=metrics_from_store(last.metrics, last.finish_reason),
                finish_reason=last.finish_reason,
                store_id=last.id,
                tool_calls=[ToolCallRecord.from_dict(c) for c in last.tool_calls],
            )
        attachments = tuple(Attachment(a.name, a.kind, a.mime, a.data) for a in message.attachments)
        conv.exchanges.append(Exchange(message.content, reply, message.id, attachments))
    return conv
