"""Tool calls from a local model: what to ask for, how to constrain it, how to read it back.

What works on the bundled SmolLM2-135M was measured (10 weather/time prompts, greedy, see the
README): a small model does not call tools on its own, but under a grammar built from a JSON
Schema (llama-cpp-python's ``LlamaGrammar.from_json_schema``) every answer is a valid call.
So the engine *forces* calls:

- ``tool_choice = NAME`` (:data:`NAMED`): the answer is the tool's arguments, constrained to
  its ``parameters`` schema; streamed as the arguments of one call.
- ``required`` (:data:`REQUIRED`): the answer is ``{"name": ..., "arguments": ...}``,
  constrained to an ``anyOf`` with one branch per tool (``name`` a ``const``, ``arguments``
  the tool's schema); read whole at the end (:func:`read_required`). With one tool it is
  ``NAMED``.
- ``auto`` (:data:`TEMPLATE`) only when the GGUF's chat template mentions tools
  (:func:`template_knows_tools`): the template gets the tools, the model writes freely, and
  calls in its answer (``<tool_call>{...}</tool_call>`` blocks, or an answer that is a JSON
  call object) are read back by :class:`CallSpotter`. Otherwise ``auto`` and ``none`` leave
  the prompt as it was without tools (:data:`OFF`), so plain answers do not change.

A template that knows nothing of tools gets the tools as a note in the system message
(:func:`tools_note`): with it SmolLM2 picked the right one of two tools 9 times in 10 under
``required``, without it 2 in 10.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tedchat.engine import GenerationParams, Message, ToolSpec
from tedchat.errors import EngineError

Mode = Literal["off", "named", "required", "template"]
OFF: Mode = "off"
NAMED: Mode = "named"
REQUIRED: Mode = "required"
TEMPLATE: Mode = "template"

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
_TOOLS_WORD = re.compile(r"\btools\b")


@dataclass(frozen=True)
class ToolPlan:
    """How one request uses tools: ``mode`` and, for ``NAMED``, the tool."""

    mode: Mode
    tools: tuple[ToolSpec, ...] = ()
    tool: ToolSpec | None = None

    @property
    def forced(self) -> bool:
        return self.mode in (NAMED, REQUIRED)


#: The plan of a request that uses no tools.
NO_TOOLS = ToolPlan(OFF)


def template_knows_tools(template: str | None) -> bool:
    """Whether a Jinja chat template renders the ``tools`` it is given."""
    return bool(template) and _TOOLS_WORD.search(template or "") is not None


def plan_for(params: GenerationParams, template_tools: bool) -> ToolPlan:
    """The plan for ``params`` on a model whose template does (not) know tools."""
    tools, choice = params.tools, params.tool_choice
    if not tools or choice == "none":
        return ToolPlan(OFF)
    if choice == "auto":
        return ToolPlan(TEMPLATE, tools) if template_tools else ToolPlan(OFF)
    if choice == "required":
        if len(tools) == 1:
            return ToolPlan(NAMED, tools, tools[0])
        return ToolPlan(REQUIRED, tools)
    named = [t for t in tools if t.name == choice]
    if not named:
        offered = ", ".join(t.name for t in tools)
        raise EngineError(f"tool choice {choice!r} is not one of the tools offered ({offered})")
    return ToolPlan(NAMED, tools, named[0])


def grammar_schema(plan: ToolPlan) -> dict[str, Any]:
    """The JSON Schema the answer is constrained to (``NAMED`` and ``REQUIRED`` only)."""
    if plan.mode == NAMED and plan.tool is not None:
        return dict(plan.tool.parameters) or {"type": "object"}
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "name": {"const": t.name},
                    "arguments": dict(t.parameters) or {"type": "object"},
                },
                "required": ["name", "arguments"],
            }
            for t in plan.tools
        ]
    }


def make_grammar(plan: ToolPlan) -> Any:
    """A llama.cpp grammar for the plan's schema; any JSON where the schema uses what the
    converter does not support (then the arguments may not match the schema; the turn loop
    checks them)."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json.dumps(grammar_schema(plan)), verbose=False)
    except Exception:  # the converter raises plain exceptions for unsupported schemas
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)


def tools_note(plan: ToolPlan) -> str:
    """The tools on offer, for a system message whose template cannot show them."""
    if not plan.forced:
        return ""
    lines = []
    if plan.mode == NAMED and plan.tool is not None:
        lines.append(f"Call the tool {plan.tool.name}: answer with its arguments as a JSON object.")
        shown: Sequence[ToolSpec] = (plan.tool,)
    else:
        lines.append(
            "You can call these tools. Answer with a JSON object "
            '{"name": <tool name>, "arguments": <its arguments>}.'
        )
        shown = plan.tools
    for tool in shown:
        schema = json.dumps(dict(tool.parameters), ensure_ascii=False)
        lines.append(f"- {tool.name}: {tool.description} Arguments (JSON Schema): {schema}")
    return "\n".join(lines)


def with_note(messages: Sequence[dict[str, Any]], note: str) -> list[dict[str, Any]]:
    """Template messages with ``note`` added to the first system message (or as one)."""
    out = [dict(m) for m in messages]
    if not note:
        return out
    for m in out:
        if m["role"] == "system":
            m["content"] = f"{m['content']}\n\n{note}" if m["content"] else note
            return out
    return [{"role": "system", "content": note}, *out]


def template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as tool-aware chat templates take them (Hugging Face's convention): an
    assistant's ``tool_calls`` with ``arguments`` as an object where they are valid JSON,
    ``tool`` messages with the call's id and the tool's name."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            calls = []
            for call in m.tool_calls:
                names[call.id] = call.name
                try:
                    arguments: Any = json.loads(call.arguments)
                except ValueError:
                    arguments = call.arguments
                calls.append(
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": arguments},
                    }
                )
            item["tool_calls"] = calls
        if m.role == "tool":
            item["tool_call_id"] = m.tool_call_id
            item["name"] = names.get(m.tool_call_id or "", "")
        out.append(item)
    return out


def tools_json(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The tools as templates take them (the OpenAI ``tools`` list)."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters),
            },
        }
        for t in tools
    ]


_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_ARGUMENTS = re.compile(r'"arguments"\s*:\s*')


def read_required(text: str) -> tuple[str | None, str]:
    """``(name, arguments JSON)`` from a ``REQUIRED`` answer. An answer cut short (the token
    limit) gives what can be read: the name if it was written, the arguments text so far."""
    try:
        obj = json.loads(text)
        return str(obj["name"]), json.dumps(obj["arguments"], ensure_ascii=False)
    except (ValueError, KeyError, TypeError):
        pass
    name = _NAME.search(text)
    at = _ARGUMENTS.search(text)
    return (
        json.loads(f'"{name.group(1)}"') if name else None,
        text[at.end() :] if at else "",
    )


def _call_of(obj: Any, names: set[str]) -> tuple[str, str] | None:
    """``(name, arguments)`` if ``obj`` is a call of an offered tool, else None."""
    if not isinstance(obj, dict) or obj.get("name") not in names:
        return None
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):
        return str(obj["name"]), arguments
    return str(obj["name"]), json.dumps(arguments, ensure_ascii=False)


def parse_calls(text: str, names: set[str]) -> list[tuple[str, str]] | None:
    """The calls in held-back answer text: ``<tool_call>{...}</tool_call>`` blocks (Hermes,
    Qwen), or text that is one JSON call object or a list of them (Llama 3.1 writes
    ``{"name": ..., "parameters": ...}``). None unless every part is a call of an offered
    tool (then the text is shown as text)."""
    stripped = text.strip()
    if stripped.startswith(OPEN_TAG):
        calls = []
        for block in stripped.split(OPEN_TAG)[1:]:
            body = block.split(CLOSE_TAG, 1)
            if body[1:] and body[1].strip():
                return None  # text after a call: not (only) calls
            try:
                call = _call_of(json.loads(body[0]), names)
            except ValueError:
                return None
            if call is None:
                return None
            calls.append(call)
        return calls or None
    try:
        obj = json.loads(stripped)
    except ValueError:
        return None
    items = obj if isinstance(obj, list) else [obj]
    found = [_call_of(item, names) for item in items]
    calls = [c for c in found if c is not None]
    if not calls or len(calls) != len(found):
        return None
    return calls


def _partial(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could begin ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class CallSpotter:
    """Streams an ``auto`` answer's text and holds back what may be tool calls.

    From a ``<tool_call>`` tag, or a ``{`` or ``[`` opening the answer, everything is held
    back; at the end :func:`parse_calls` decides whether it was calls (returned as calls) or
    text (returned as text). A possible partial tag at the end of a piece waits for the next.
    """

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.pending = ""
        self.held: str | None = None
        self.started = False  # some non-blank text was shown

    def feed(self, text: str) -> str:
        """The part of ``text`` (with what was pending) that is surely answer text."""
        if self.held is not None:
            self.held += text
            return ""
        text = self.pending + text
        self.pending = ""
        at = text.find(OPEN_TAG)
        if not self.started:
            lead = len(text) - len(text.lstrip())
            if text[lead : lead + 1] in ("{", "["):
                at = lead if at < 0 else min(at, lead)
            elif not text.strip():
                self.pending = text  # only blanks so far: the answer has not begun
                return ""
        if at >= 0:
            if not self.started and not text[:at].strip():
                at = 0  # blanks before a call are part of it (shown, if it is no call)
            self.held = text[at:]
            shown = text[:at]
        else:
            keep = _partial(text, OPEN_TAG)
            shown, self.pending = text[: len(text) - keep], text[len(text) - keep :]
        if shown.strip():
            self.started = True
        return shown

    def end(self) -> tuple[str, list[tuple[str, str]]]:
        """``(text still to show, calls)`` once the answer is over."""
        if self.held is None:
            return self.pending, []
        calls = parse_calls(self.held, self.names)
        if calls is None:
            return self.pending + self.held, []
        return self.pending, calls
