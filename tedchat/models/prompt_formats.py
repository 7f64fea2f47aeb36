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

The engine setting ``prompt_format`` picks one of :data:`PROMPT_FORMATS`; ``auto`` (the
default) means: the model registry's format for the model, else the GGUF's own template when it
has one, else ``plain`` — never llama-2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tedchat.engine import Message

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

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text: system text, a blank line, the turns, and the open assistant label."""
        system = "\n".join(m.content.strip() for m in messages if m.role == "system")
        lines = [system or self.preamble, ""]
        for m in messages:
            if m.role == "user":
                lines.append(f"{self.user}: {m.content.strip()}")
            elif m.role == "assistant":
                lines.append(f"{self.assistant}: {m.content.strip()}")
        lines.append(f"{self.assistant}:")
        return "\n".join(lines)

    def stops(self) -> tuple[str, ...]:
        """Where an answer ends besides end-of-text: the model starting the user's next turn."""
        return (f"\n{self.user}:",)


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
