"""Prompt formats: how a conversation becomes the text a local model continues.

An instruction-tuned GGUF carries its own chat template (``tokenizer.chat_template``) and
``chat-template`` renders it. A *base* model (TEDLLM is one) has none, and llama-cpp-python would
then silently fall back to the llama-2 ``[INST]`` template, which such a model never saw. For
those tedchat uses an explicit, documented completion format instead (``plain`` / ``plain-ja``)::

    <system text, or the format's default preamble>

    User: <first user message>
    Assistant: <first answer>
    User: <next message>
    Assistant:

The model continues after the last ``Assistant:``; generation stops at the model's end-of-text
token or when it starts the next ``User:`` line. The prompt ends at the colon, without a space,
because byte-level BPE vocabularies attach the space to the following word (`` Paris``): a
trailing space would force the model to continue from an odd token. The answer's leading space
is stripped instead.

Tool calls and their results (:mod:`tedchat.engine` ``Message.tool_calls`` and ``tool``
messages) become plain turns for models whose prompt format knows nothing of tools
(:func:`tool_turns_as_text`): the assistant's turn holds each call as the JSON object
``{"name": ..., "arguments": ...}`` (what a model is asked to write when it must call a
tool), and the results of one step become one user turn, a line per call:
``Result of get_weather: Sunny, 21 °C``. A ``note`` (the tools on offer, written by the
engine) is added to the system text.

The engine setting ``prompt_format`` picks one of :data:`PROMPT_FORMATS`; ``auto`` (the
default) means: the model registry's format for the model, else the GGUF's own template when it
has one, else ``plain`` — never llama-2.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tedchat.engine import Message, ToolCall

AUTO = "auto"
CHAT_TEMPLATE = "chat-template"


@dataclass(frozen=True)
class PlainFormat:
    """A completion-style conversation format for base models (data, see the module docstring)."""

    name: str
    description: str
    preamble: str  # used when the conversation has no system message
    user: str
    assistant: str

    def render(self, messages: Sequence[Message], note: str = "") -> str:
        """The prompt text: system text, a blank line, the turns, and the open assistant label.

        Tool calls and results are written as plain turns (:func:`tool_turns_as_text`);
        ``note`` (e.g. the tools on offer) follows the system text."""
        system = "\n".join(m.content.strip() for m in messages if m.role == "system")
        head = system or self.preamble
        lines = [f"{head}\n\n{note}" if note else head, ""]
        for m in tool_turns_as_text(messages):
            if m.role == "user":
                lines.append(f"{self.user}: {m.content.strip()}")
            elif m.role == "assistant":
                lines.append(f"{self.assistant}: {m.content.strip()}")
        lines.append(f"{self.assistant}:")
        return "\n".join(lines)

    def stops(self) -> tuple[str, ...]:
        """Where an answer ends besides end-of-text: the model starting the user's next turn."""
        return (f"\n{self.user}:",)


def call_json(call: ToolCall) -> str:
    """A call as the model would write it: ``{"name": ..., "arguments": {...}}`` (the
    arguments as the model wrote them when they are not valid JSON)."""
    arguments: Any
    try:
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        arguments = call.arguments
    return json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)


def tool_turns_as_text(messages: Sequence[Message]) -> list[Message]:
    """``messages`` with tool calls and results as plain turns (see the module docstring):
    an assistant message's calls appended to its text, one JSON object a line; the ``tool``
    messages of one step merged into one user message, ``Result of NAME: ...`` a line each
    (the name found through the call's id; ``Result of call ID`` when no call has it)."""
    names: dict[str, str] = {}
    out: list[Message] = []
    results: list[str] = []
    for m in messages:
        if m.role == "tool":
            name = names.get(m.tool_call_id or "")
            label = name if name is not None else f"call {m.tool_call_id}"
            results.append(f"Result of {label}: {m.content.strip()}")
            continue
        if results:
            out.append(Message("user", "\n".join(results)))
            results = []
        if m.role == "assistant" and m.tool_calls:
            for call in m.tool_calls:
                names[call.id] = call.name
            lines = [m.content.strip()] if m.content.strip() else []
            lines += [call_json(call) for call in m.tool_calls]
            out.append(Message("assistant", "\n".join(lines)))
        else:
            out.append(m)
    if results:
        out.append(Message("user", "\n".join(results)))
    return out


PLAIN_FORMATS: dict[str, PlainFormat] = {
    "plain": PlainFormat(
        name="plain",
        description="English turns: 'User: ...' / 'Assistant: ...'",
        preamble="A conversation between a user and a helpful, knowledgeable assistant.",
        user="User",
        assistant="Assistant",
    ),
    "plain-ja": PlainFormat(
        name="plain-ja",
        description="Japanese turns: 'ユーザー: ...' / 'アシスタント: ...'",
        preamble="以下は、ユーザーと、親切で知識豊富なアシスタントとの会話です。",
        user="ユーザー",
        assistant="アシスタント",
    ),
}

PROMPT_FORMATS: tuple[str, ...] = (AUTO, CHAT_TEMPLATE, *PLAIN_FORMATS)


def choose_format(setting: str, registry_format: str | None, has_template: bool) -> str:
    """The concrete format for an engine: ``chat-template`` or a :data:`PLAIN_FORMATS` name.

    ``setting`` is the engine's ``prompt_format``; ``registry_format`` the model registry's
    format for the model (None for a GGUF path or an entry without one).
    """
    if setting != AUTO:
        return setting
    if registry_format and registry_format != AUTO:
        if registry_format == CHAT_TEMPLATE and not has_template:
            return "plain"
        return registry_format
    return CHAT_TEMPLATE if has_template else "plain"
