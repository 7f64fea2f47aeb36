"""What OpenAI-compatible servers stream, turned into tedchat events.

Pure code (no I/O), so tests feed it the chunk shapes real servers send:

- a role-only first chunk (``delta: {"role": "assistant"}``) and empty deltas: no event;
- ``usage`` in a chunk whose ``choices`` is empty (``stream_options.include_usage``), or in
  every chunk (vLLM's continuous usage): the last one wins;
- ``error`` objects inside ``data`` (a server failing after the stream started);
- llama-server's ``timings`` and Cerebras' ``time_info``: figures on the server's own clock;
- reasoning as a ``reasoning_content`` (llama-server, DeepSeek) or ``reasoning`` (vLLM,
  OpenRouter) delta field, or as ``<think>...</think>`` inside the content, with the tags
  possibly split across chunks;
- tool calls as ``delta.tool_calls`` pieces (:class:`ToolCallReader`): arguments split across
  chunks, several calls interleaved by ``index``, a whole call in one chunk, an ``index``
  missing (some servers), ``id`` and ``name`` repeated in every piece (llama_cpp.server), and
  whole calls in a non-streamed ``message``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tedchat.engine import Event, ReasoningDelta, TextDelta, Timings, ToolCallDelta, Usage
from tedchat.errors import ServerError

# Server finish reasons -> tedchat's vocabulary (stop | length | cancelled | error |
# tool_calls). A stream that made tool calls ends "tool_calls" whatever the server said, unless
# it was cut ("length"), and "tool_calls" without a call is "stop" (ChunkReader.finish).
FINISH_REASONS: dict[str, str] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",
    "cancelled": "cancelled",
    "abort": "cancelled",
    "error": "error",
}

# Server timing fields -> (tedchat figure name, factor to seconds or tokens). The names match
# what the llamacpp engine reports for llama.cpp's own counters, so the two read alike.
# llama-server's ``timings`` object (its names: server_slot_stats::to_json in
# tools/server/server-common.cpp, lines 84-104, of the llama.cpp vendored in the
# llama-cpp-python 0.3.36 sdist): cache_n, prompt_n/_ms/_per_second, predicted_n/_ms/
# _per_second, and draft_n / draft_n_accepted only when the slot drafted tokens. It is sent
# with the final streamed chunk (server-task.cpp, line 517).
LLAMA_SERVER_TIMINGS: dict[str, tuple[str, float]] = {
    "prompt_n": ("prompt_eval_tokens", 1.0),
    "prompt_ms": ("prompt_eval_s", 1e-3),
    "prompt_per_second": ("prompt_eval_tokens_per_s", 1.0),
    "predicted_n": ("eval_tokens", 1.0),
    "predicted_ms": ("eval_s", 1e-3),
    "predicted_per_second": ("eval_tokens_per_s", 1.0),
    "cache_n": ("cached_prompt_tokens", 1.0),
    "draft_n": ("draft_tokens", 1.0),
    "draft_n_accepted": ("draft_accepted_tokens", 1.0),
}
CEREBRAS_TIME_INFO: dict[str, tuple[str, float]] = {
    "queue_time": ("queue_s", 1.0),
    "prompt_time": ("prompt_eval_s", 1.0),
    "completion_time": ("eval_s", 1.0),
    "total_time": ("total_s", 1.0),
}

_raw_decode = json.JSONDecoder().raw_decode
_EMPTY: dict[str, Any] = {}

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


def map_finish_reason(reason: str) -> str:
    """A server's finish reason in tedchat's vocabulary; unknown ones ended normally."""
    return FINISH_REASONS.get(reason.lower(), "stop")


def convert_figures(raw: Mapping[str, Any], table: Mapping[str, tuple[str, float]]) -> dict:
    """Numeric server figures renamed and scaled by ``table``; other fields are ignored."""
    out: dict[str, float] = {}
    for key, (name, factor) in table.items():
        value = raw.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value) * factor
    return out


def error_text(payload: Any) -> str:
    """The human message inside an OpenAI-style error payload (or whatever else was sent)."""
    if isinstance(payload, Mapping):
        for key in ("error", "detail", "message", "msg"):
            if payload.get(key):
                return error_text(payload[key])
        return json.dumps(payload)[:200]
    if isinstance(payload, list) and payload:
        return "; ".join(error_text(p) for p in payload[:3])
    return " ".join(str(payload).split())[:200]


def _snippet(data: str) -> str:
    """The start of bad stream data for an error message, on one line."""
    return " ".join(data[:80].split())


def _loads_or_none(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _partial_tag(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could begin ``tag`` (held back a chunk)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Splits ``<think>...</think>`` blocks out of answer text, across chunk boundaries.

    A possible partial tag at the end of a chunk (``"<th"``) is held back until the next chunk
    shows what it is, so a tag split over two chunks is never shown as answer text. Whitespace
    right after ``</think>`` is dropped: it would otherwise be the "first answer token" and
    make TTFT too early.
    """

    __slots__ = ("in_think", "pending", "plain", "strip_leading")

    def __init__(self) -> None:
        self.in_think = False
        self.pending = ""
        self.strip_leading = False
        # Nothing held back, not in a block: text without '<' passes straight through.
        self.plain = True

    def feed(self, text: str) -> list[Event]:
        if self.plain and "<" not in text:
            return [TextDelta(text)]  # the common case, kept cheap
        out = self._feed(text)
        self.plain = not (self.pending or self.in_think or self.strip_leading)
        return out

    def _feed(self, text: str) -> list[Event]:
        text = self.pending + text
        self.pending = ""
        out: list[Event] = []
        while text:
            tag = CLOSE_TAG if self.in_think else OPEN_TAG
            i = text.find(tag)
            if i >= 0:
                self._emit(out, text[:i])
                text = text[i + len(tag) :]
                self.in_think = not self.in_think
                self.strip_leading = not self.in_think
                continue
            keep = _partial_tag(text, tag)
            self._emit(out, text[: len(text) - keep])
            self.pending = text[len(text) - keep :]
            break
        return out

    def flush(self) -> list[Event]:
        """Whatever was held back, once the stream has ended."""
        out: list[Event] = []
        text, self.pending = self.pending, ""
        self._emit(out, text)
        self.plain = not (self.in_think or self.strip_leading)
        return out

    def _emit(self, out: list[Event], text: str) -> None:
        if self.in_think:
            if text:
                out.append(ReasoningDelta(text))
            return
        if self.strip_leading:
            text = text.lstrip()
            if not text:
                return
            self.strip_leading = False
        if text:
            out.append(TextDelta(text))


class ToolCallReader:
    """Turns ``tool_calls`` lists, as servers really send them, into :class:`ToolCallDelta`.

    The first piece of a call carries its ``id`` and ``name``; later pieces only ``arguments``
    text (servers that repeat ``id`` and ``name`` in every piece have the repeats dropped, so
    the caller can concatenate what arrives). A piece without ``index`` belongs to the call
    whose ``id`` it names, else starts a new call when it names a new ``id``, else continues
    the last call (index 0 for the first). In a non-streamed ``message`` every item is a whole
    call, numbered by its position. Anything else than these shapes raises TypeError (the
    caller turns it into one ServerError line).
    """

    __slots__ = ("by_id", "calls", "last")

    def __init__(self) -> None:
        self.calls: dict[int, list[str | None]] = {}  # index -> [id, name] sent so far
        self.by_id: dict[str, int] = {}
        self.last: int | None = None

    def feed(self, items: Any, *, whole: bool = False) -> list[Event]:
        if items is None:
            return []  # llama_cpp.server sends "tool_calls": null in text chunks
        if type(items) is not list:
            raise TypeError("tool_calls is not a list")
        out: list[Event] = []
        base = len(self.calls)
        for position, item in enumerate(items):
            if type(item) is not dict:
                raise TypeError("a tool call is not an object")
            function = item.get("function")
            if function is None:
                function = _EMPTY
            elif type(function) is not dict:
                raise TypeError("a tool call's function is not an object")
            call_id, name = item.get("id"), function.get("name")
            arguments = function.get("arguments")
            if call_id is not None and type(call_id) is not str:
                raise TypeError("a tool call's id is not text")
            if name is not None and type(name) is not str:
                raise TypeError("a tool call's name is not text")
            if arguments is None:
                arguments = ""
            elif type(arguments) is dict:  # a few servers send the object itself
                arguments = json.dumps(arguments, ensure_ascii=False)
            elif type(arguments) is not str:
                raise TypeError("a tool call's arguments are not text")
            index = self._index(item.get("index"), call_id or None, base + position, whole)
            sent = self.calls.setdefault(index, [None, None])
            new_id = call_id if call_id and sent[0] is None else None
            new_name = name if name and sent[1] is None else None
            if new_id:
                sent[0] = new_id
                self.by_id[new_id] = index
            if new_name:
                sent[1] = new_name
            self.last = index
            if new_id or new_name or arguments:
                out.append(ToolCallDelta(index, new_id, new_name, arguments))
        return out

    def _index(self, index: Any, call_id: str | None, position: int, whole: bool) -> int:
        if index is not None:
            if type(index) is not int or index < 0:
                raise TypeError("a tool call's index is not a non-negative integer")
            return index
        if whole:
            return position
        if call_id is not None:
            known = self.by_id.get(call_id)
            if known is not None:
                return known
            if self.last is not None and self.calls[self.last][0] is None:
                return self.last  # the call's earlier pieces came without an id
            return len(self.calls) if self.calls else 0
        return self.last if self.last is not None else 0


class ChunkReader:
    """Reads one answer's stream, chunk by chunk; remembers what only counts at the end.

    ``source`` (the server's URL, without secrets) goes into error messages. ``keep_answer``
    keeps the answer text for a tokenizer to count when the server reports no usage.
    """

    def __init__(self, source: str, *, keep_answer: bool = False) -> None:
        self.source = source
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.output_tokens: int | None = None
        self.figures: dict[str, float] = {}
        self.think = ThinkSplitter()
        self.tools = ToolCallReader()
        self.answer: list[str] | None = [] if keep_answer else None

    def feed(self, data: str, event: str = "message") -> list[Event]:
        """Events for one SSE ``data`` payload (``[DONE]`` is the caller's business).

        This runs once per chunk, tens of thousands of times a second, so the common shape
        (one text delta, no extras) takes the shortest path; everything else is checked.
        """
        try:
            obj, end = _raw_decode(data)
            if end != len(data):
                raise ValueError("trailing data")
        except ValueError:
            obj = _loads_or_none(data)  # surrounding whitespace is fine; anything else is not
        if type(obj) is not dict or event != "message" or "error" in obj:
            self._refuse(obj, data, event)
        out: list[Event] = []
        choices = obj.get("choices")
        # A JSON object of another shape (choices not a list of objects, text that is not a
        # string) is the same server fault as data that is not JSON: one ServerError.
        try:
            if choices:
                choice = choices[0]
                delta = choice.get("delta") or choice.get("message") or _EMPTY
                if "reasoning_content" in delta or "reasoning" in delta:
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if reasoning:
                        if type(reasoning) is not str:
                            raise TypeError("reasoning is not text")
                        out.append(ReasoningDelta(reasoning))
                content = delta.get("content")
                if content:
                    if type(content) is not str:
                        raise TypeError("content is not text")
                    think = self.think
                    if think.plain and "<" not in content:
                        out.append(TextDelta(content))
                    else:
                        out += think.feed(content)
                if "tool_calls" in delta:
                    out += self.tools.feed(delta["tool_calls"], whole="delta" not in choice)
                reason = choice.get("finish_reason")
                if reason:
                    self.finish_reason = map_finish_reason(str(reason))
        except (AttributeError, TypeError, KeyError, IndexError):
            raise ServerError(
                f"unparseable stream data from {self.source}: {_snippet(data)}"
            ) from None
        if "usage" in obj or "timings" in obj or "time_info" in obj:
            self._extras(obj)
        if self.answer is not None:
            self.answer.extend(e.text for e in out if type(e) is TextDelta)
        return out

    def _refuse(self, obj: Any, data: str, event: str) -> None:
        """Raise for an error event, an error object or data that is not a JSON object."""
        if event == "error":
            detail = error_text(obj if obj is not None else data)
            raise ServerError(f"error from {self.source}: {detail}")
        if type(obj) is not dict:
            raise ServerError(f"unparseable stream data from {self.source}: {_snippet(data)}")
        if obj.get("error"):
            raise ServerError(f"error from {self.source}: {error_text(obj['error'])}")

    def _extras(self, obj: Mapping[str, Any]) -> None:
        usage = obj.get("usage")
        if isinstance(usage, Mapping):
            self._usage(usage)
        timings = obj.get("timings")
        if isinstance(timings, Mapping):
            self.figures.update(convert_figures(timings, LLAMA_SERVER_TIMINGS))
            drafted = self.figures.get("draft_tokens")
            if drafted and "draft_accepted_tokens" in self.figures:
                self.figures["draft_acceptance"] = self.figures["draft_accepted_tokens"] / drafted
        time_info = obj.get("time_info")
        if isinstance(time_info, Mapping):
            self.figures.update(convert_figures(time_info, CEREBRAS_TIME_INFO))

    def _usage(self, usage: Mapping[str, Any]) -> None:
        prompt = usage.get("prompt_tokens")
        output = usage.get("completion_tokens")
        if isinstance(prompt, int):
            self.prompt_tokens = prompt
        if isinstance(output, int):
            # Output tok/s is timed from the first *answer* token, so reasoning tokens the
            # server counted separately are left out of the answer's count.
            details = usage.get("completion_tokens_details")
            if isinstance(details, Mapping) and isinstance(details.get("reasoning_tokens"), int):
                output = max(0, output - details["reasoning_tokens"])
            self.output_tokens = output

    def end(self) -> list[Event]:
        """Events owed once the stream is over: held-back text, usage, server timings."""
        out = self.think.flush()
        if self.answer is not None:
            self.answer.extend(e.text for e in out if type(e) is TextDelta)
        output, prompt = self.output_tokens, self.prompt_tokens
        if output is None and "eval_tokens" in self.figures:
            # llama-server ignores include_usage but its timings count the generated tokens.
            output = int(self.figures["eval_tokens"])
            if prompt is None and "prompt_eval_tokens" in self.figures:
                prompt = int(self.figures["prompt_eval_tokens"])
        if output is not None or prompt is not None:
            out.append(Usage(prompt_tokens=prompt, output_tokens=output, source="server"))
        if self.figures:
            out.append(Timings(dict(self.figures), source="server"))
        return out

    def finish(self) -> str:
        """The stream's finish reason in tedchat's vocabulary (``stop`` when none came).

        A stream that made tool calls ends ``tool_calls`` (some servers say ``stop``), unless
        it was cut short; ``tool_calls`` without any call is a plain ``stop``.
        """
        reason = self.finish_reason or "stop"
        if self.tools.calls:
            return "tool_calls" if reason in ("stop", "tool_calls") else reason
        return "stop" if reason == "tool_calls" else reason

    def answer_text(self) -> str:
        return "".join(self.answer or ())
