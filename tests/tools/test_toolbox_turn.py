"""The Toolbox in a real turn: the scripted test engine asks for the built-in tools through
tedchat.session.run_turn, and what the model is sent back is the toolbox's results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from tedchat.config import ToolSettings
from tedchat.engine import GenerationParams, Message, Runtime
from tedchat.plugins import load_plugins
from tedchat.session import Turn, run_turn
from tedchat.tools.toolbox import Toolbox

PLUGIN = Path(__file__).resolve().parents[1] / "tui" / "plugins" / "scripted_engine.py"
_spec = importlib.util.spec_from_file_location("toolbox_turn_scripted", PLUGIN)
assert _spec is not None and _spec.loader is not None
scripted = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scripted)


def engine(script: list[dict[str, Any]]) -> Any:
    values = {
        **scripted.SETTINGS,
        "text": "Done.",
        "ttft_s": 0.0,
        "tokens_per_s": 0.0,
        "count": "usage",
        "tool_script": json.dumps(script),
    }
    return scripted.ScriptedEngine("s", values, Runtime(threads=1))


async def test_builtin_tools_in_a_turn(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("the answer is 42\n", encoding="utf-8")
    script = [
        {
            "text": "Looking. ",
            "calls": [
                {"name": "read_file", "arguments": {"path": "notes.txt"}},
                {"name": "shell", "arguments": {"command": "touch marker"}},
                {"name": "read_file", "arguments": {"path": "../etc/passwd"}},
                {"name": "nope", "arguments": {}},
            ],
        }
    ]
    eng = engine(script)
    settings = ToolSettings(workspace=str(tmp_path), approval="auto")
    toolbox = Toolbox.from_plugins(settings, load_plugins())
    turn = Turn(eng, [Message("user", "what is in notes.txt?")], GenerationParams())
    result = await run_turn(turn, tools=toolbox, approver=None)
    assert result.text == "Looking. Done."
    assert [t.name for t in eng.params_seen[0].tools] == toolbox.names()
    replies = [m.content for m in eng.requests[1] if m.role == "tool"]
    assert replies[0] == "the answer is 42\n"
    assert replies[1].startswith("error: refused: needs approval (")
    assert "outside the workspace" in replies[2]
    assert replies[3].startswith("error: unknown tool 'nope'; the tools are: read_file, ")
    assert [(r.status, r.source) for r in result.tool_calls] == [
        ("done", "builtin"),
        ("denied", "builtin"),
        ("error", "builtin"),
        ("error", ""),
    ]
    assert not (tmp_path / "marker").exists()
