"""A test engine plugin: streams a fixed text on a schedule the test chooses.

Loaded exactly like a user's single-file plugin (``[plugins] dirs``), so the TUI tests drive the
real plugin path. Engine type ``scripted``; its settings:

- ``text`` / ``file``: the answer (a file wins when given);
- ``chunk_chars``: 0 splits the text into words (with their leading space), N into N-character
  pieces (Japanese has no spaces); one piece per TextDelta, each carrying one token;
- ``ttft_s``, ``tokens_per_s``: the schedule of piece *i*: ``ttft_s + i / tokens_per_s``
  (``tokens_per_s = 0``: as fast as possible);
- ``virtual``: instead of sleeping, the schedule is written to ``engine.now`` right before each
  event, so a test that times turns on ``lambda: engine.now`` gets exact, repeatable figures;
- ``load_s``: how long ``load`` takes (reporting progress); ``fail``: an error to raise when
  streaming; ``count``: ``deltas`` (each delta says 1 token), ``usage`` (a Usage event at the
  end) or ``chunks`` (nothing said: the count is approximate, shown with ``~``);
- ``emulated``: also send EmulatedTimings (the figures a wafer engine reports);
- ``context``: the context window the engine declares (``capabilities.context_size``; 0: none);
- ``local``: whether the engine counts as local (shares the thread budget);
- ``floorplan``: declare a floorplan: ``floorplan()`` returns a small placement and
  ``activity()`` the active wafer system (None unless ``stages`` is set);
- ``stages``: move the active wafer system every this many tokens while an answer streams
  (None otherwise), as the wafer engine does;
- ``notice``: send a Notice with this text before the answer;
- ``pause_after``, ``pause_s``: after the first ``pause_after`` pieces (0: never), stop for
  ``pause_s`` seconds before the next (a stream that stalls mid-answer).
- ``tool_script``: JSON, a list of model steps ``{"text": "...", "calls": [{"name": ...,
  "arguments": {...} or "raw text"}]}``; set, the engine declares ``tools``. Step *k* of a
  turn (the number of assistant messages with calls after the last user message) streams its
  text, then its calls (the arguments cut in 3-character pieces, calls interleaved by index)
  and ends ``tool_calls``; once the script is used up it streams ``text`` as usual.
  ``params_seen`` keeps each request's parameters (the tools offered).
- ``vision``: declare that the engine takes images (``Message.images``);
- ``tools``: declare tool support even without a script (to receive earlier tool messages);
  ``echo_tools``: end the answer with one line per ``tool`` message received,
  ``[tool CALL_ID: CONTENT]`` (what a CLI test can see of the request).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import tedchat
from tedchat.engine import (
    Capabilities,
    Done,
    EmulatedTimings,
    EngineStatus,
    EngineType,
    Event,
    GenerationParams,
    LoadProgress,
    Message,
    Notice,
    ProgressCallback,
    Runtime,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from tedchat.errors import EngineError

SETTINGS: dict[str, Any] = {
    "model": "scripted-1",
    "text": "Hello from the scripted engine.",
    "file": "",
    "chunk_chars": 0,
    "ttft_s": 0.05,
    "tokens_per_s": 100.0,
    "virtual": False,
    "load_s": 0.0,
    "fail": "",
    "count": "deltas",
    "emulated": False,
    "context": 0,
    "local": False,
    "floorplan": False,
    "stages": 0,
    "notice": "",
    "pause_after": 0,
    "pause_s": 0.0,
    "tool_script": "",
    "tools": False,
    "vision": False,
    "echo_tools": False,
}


def pieces(text: str, chunk_chars: int) -> list[str]:
    if chunk_chars > 0:
        return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
    return re.findall(r"\s*\S+|\s+$", text)


def small_plan() -> dict[str, Any]:
    """A two-wafer placement of a 4-layer model, in the floorplan widget's documented shape."""

    def region(label: str, kind: str, layer: Any, row0: int, rows: int) -> dict[str, Any]:
        return {
            "label": label,
            "kind": kind,
            "layer": layer,
            "row0": row0,
            "col0": 0,
            "rows": rows,
            "cols": 100,
            "weight_bytes": 1_000_000 * rows,
            "kv_bytes": 10_000 * rows,
        }

    return {
        "hardware": "cs3",
        "label": "CS-3",
        "kind": "wafer",
        "mode": "pipeline",
        "systems": 2,
        "grid": [120, 100],
        "fits": True,
        "per_system": [
            {
                "index": 0,
                "holds": "embed + layers 0-1",
                "used_bytes": 2.0e10,
                "memory_bytes": 4.4e10,
                "regions": [
                    region("E", "embed", "embed", 0, 20),
                    region("0", "layer", 0, 20, 50),
                    region("1", "layer", 1, 70, 50),
                ],
            },
            {
                "index": 1,
                "holds": "layers 2-3 + head",
                "used_bytes": 2.2e10,
                "memory_bytes": 4.4e10,
                "regions": [
                    region("2", "layer", 2, 0, 50),
                    region("3", "layer", 3, 50, 50),
                    region("H", "head", "head", 100, 20),
                ],
            },
        ],
        "prediction": {
            "emulated": True,
            "ttft_s": 0.0042,
            "ttft_breakdown": {"compute": 0.002, "fabric": 0.0012, "link": 0.001},
            "decode_s_per_token": 0.0005,
            "decode_tokens_per_s": 2000.0,
            "decode_breakdown": {"compute": 0.0002, "fabric": 0.0002, "link": 0.0001},
        },
    }


class ScriptedEngine:
    type = "scripted"

    def __init__(self, name: str, settings: dict[str, Any], runtime: Runtime) -> None:
        self.name = name
        self.settings = settings
        self.runtime = runtime
        self.model = settings["model"]
        self.local = bool(settings["local"])
        self.now = 0.0  # the virtual clock (see ``virtual``)
        self.loaded = False
        self.requests: list[list[Message]] = []  # what each request sent (tests read it)
        self.threads_seen: list[int] = []
        self.active: dict[str, int] | None = None  # what ``activity()`` reports
        self.params_seen: list[GenerationParams] = []
        self.script: list[dict[str, Any]] = (
            json.loads(settings["tool_script"]) if settings["tool_script"] else []
        )
        self.capabilities = Capabilities(
            tools=bool(self.script) or bool(settings["tools"]),
            vision=bool(settings["vision"]),
            floorplan=bool(settings["floorplan"]),
            context_size=int(settings["context"]) or None,
        )
        if settings["floorplan"]:  # the members exist exactly when declared
            self.floorplan = small_plan
            self.activity = lambda: self.active

    def text(self) -> str:
        if self.settings["file"]:
            return Path(self.settings["file"]).read_text(encoding="utf-8")
        return self.settings["text"]

    async def load(self, progress: ProgressCallback | None = None) -> None:
        if self.loaded:
            return
        steps = 5
        for i in range(steps):
            if progress:
                progress(LoadProgress("warming up", i / steps))
            await asyncio.sleep(self.settings["load_s"] / steps)
        self.loaded = True
        if progress:
            progress(LoadProgress("ready", 1.0))

    async def status(self) -> EngineStatus:
        return EngineStatus(True, "scripted")

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "model": self.model}

    async def close(self) -> None:
        self.loaded = False

    def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        # Not a generator itself: the virtual clock restarts when the request is handed over,
        # which is when run_turn starts its meter.
        self.now = 0.0
        self.requests.append(list(messages))
        self.params_seen.append(params)
        self.threads_seen.append(self.runtime.thread_share())
        step = _step_of(messages)
        if step < len(self.script):
            return self._tool_step(self.script[step], step)
        return self._events(params, messages)

    async def _tool_step(self, step: dict[str, Any], k: int) -> AsyncGenerator[Event, None]:
        await asyncio.sleep(float(self.settings["ttft_s"]))
        if step.get("text"):
            yield TextDelta(step["text"], tokens=1)
        calls = step.get("calls") or []
        cut: list[list[str]] = []
        for call in calls:
            raw = call["arguments"]
            text = raw if isinstance(raw, str) else json.dumps(raw)
            cut.append([text[i : i + 3] for i in range(0, len(text), 3)] or [""])
        for i, call in enumerate(calls):  # ids and names first, then pieces interleaved
            yield ToolCallDelta(i, id=f"call_{k}_{i}", name=call["name"])
        for j in range(max((len(c) for c in cut), default=0)):
            for i, pieces_of_call in enumerate(cut):
                if j < len(pieces_of_call):
                    yield ToolCallDelta(i, arguments=pieces_of_call[j])
        yield Usage(prompt_tokens=7, output_tokens=5, source="engine")
        yield Done("tool_calls")

    async def _events(
        self, params: GenerationParams, messages: Sequence[Message]
    ) -> AsyncGenerator[Event, None]:
        s = self.settings
        text = self.text()
        if s["echo_tools"]:
            seen = [f"[tool {m.tool_call_id}: {m.content}]" for m in messages if m.role == "tool"]
            text += "".join(f"\n{line}" for line in seen)
        parts = pieces(text, int(s["chunk_chars"]))[: max(1, params.max_tokens)]
        rate = float(s["tokens_per_s"])
        t0 = time.perf_counter()
        stages = int(s["stages"])
        if s["notice"]:
            yield Notice(s["notice"])
        for i, part in enumerate(parts):
            if s["pause_after"] and i == int(s["pause_after"]):
                await asyncio.sleep(float(s["pause_s"]))
                t0 += float(s["pause_s"])
            due = float(s["ttft_s"]) + (i / rate if rate > 0 else 0.0)
            if s["virtual"]:
                await asyncio.sleep(0)
                self.now = due
            else:
                wait = t0 + due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif i % 50 == 0:
                    await asyncio.sleep(0)
            if s["fail"] and i == len(parts) // 2:
                raise EngineError(s["fail"])
            if stages:
                self.active = {"system": (i // stages) % 2, "layer": (i // stages) % 4}
            yield TextDelta(part, tokens=1 if s["count"] == "deltas" else None)
        self.active = None
        if s["count"] == "usage":
            yield Usage(prompt_tokens=7, output_tokens=len(parts), source="engine")
        if s["emulated"]:
            yield EmulatedTimings(
                hardware="CS-3",
                systems=2,
                ttft_s=0.0042,
                output_tokens_per_s=2000.0,
                breakdown={"compute": 0.0002},
            )
        yield Done("length" if len(parts) >= params.max_tokens else "stop")


def _step_of(messages: Sequence[Message]) -> int:
    """How many model steps with tool calls this turn has had (after the last user message)."""
    steps = 0
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role == "assistant" and message.tool_calls:
            steps += 1
    return steps


@tedchat.hookimpl
def register_engine_types(register: Any) -> None:
    register(
        EngineType(
            name="scripted",
            factory=ScriptedEngine,
            settings=SETTINGS,
            description="test engine: a fixed text on a chosen schedule",
        )
    )
