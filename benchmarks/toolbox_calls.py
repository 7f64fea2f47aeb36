"""What a tool call costs tedchat itself: ``Toolbox.call`` from the model's JSON arguments to
the filled record (parsing, the JSON Schema check, approval, the worker thread or task, the
cap), for a trivial plain function, a trivial async one, the built-in ``read_file`` on a small
file and ``shell`` running ``true``. Median and p90 over N calls.

    .venv/bin/python benchmarks/toolbox_calls.py [N]

Exits 1 when the trivial calls' median exceeds the bound (2 ms): the tool machinery must stay
small beside what a tool does and what a model step takes.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tedchat.config import ToolSettings
from tedchat.engine import ToolCall
from tedchat.tools import builtin
from tedchat.tools.base import Tool, ToolCallRecord
from tedchat.tools.toolbox import Toolbox

BOUND_MS = 2.0
SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "what to echo"}},
    "required": ["text"],
}


async def echo_async(args: dict[str, Any]) -> str:
    return str(args["text"])


async def measure(toolbox: Toolbox, name: str, arguments: str, n: int) -> list[float]:
    times = []
    for i in range(n):
        record = ToolCallRecord(id=str(i), name=name, arguments=arguments)
        start = time.perf_counter()
        await toolbox.call(ToolCall(str(i), name, arguments), record, None)
        times.append((time.perf_counter() - start) * 1000)
        assert record.status == "done", record.error
    return times


async def main(n: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "small.txt").write_text("hello\n" * 100)
        settings = ToolSettings(approval="auto", workspace=folder, tool_approval={"shell": "auto"})
        tools = [
            Tool("echo_sync", "", SCHEMA, lambda a: str(a["text"])),
            Tool("echo_async", "", SCHEMA, echo_async),
            *builtin.TOOLS,
        ]
        toolbox = Toolbox(settings, tools)
        cases = [
            ("echo_sync", '{"text": "hi"}', n),
            ("echo_async", '{"text": "hi"}', n),
            ("read_file", '{"path": "small.txt"}', n),
            ("shell", '{"command": "true"}', max(10, n // 10)),
        ]
        print(f"{'tool':<12} {'calls':>6} {'median ms':>10} {'p90 ms':>8}")
        medians = {}
        for name, arguments, count in cases:
            await measure(toolbox, name, arguments, 5)  # warm up (jsonschema, threads)
            times = await measure(toolbox, name, arguments, count)
            medians[name] = statistics.median(times)
            p90 = statistics.quantiles(times, n=10)[-1]
            print(f"{name:<12} {count:>6} {medians[name]:>10.3f} {p90:>8.3f}")
    worst = max(medians["echo_sync"], medians["echo_async"])
    ok = worst <= BOUND_MS
    print(f"trivial call median {worst:.3f} ms: {'within' if ok else 'OVER'} {BOUND_MS} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)))
