"""How often the bundled SmolLM2-135M makes a valid tool call through the llamacpp engine,
under each ``tool_choice``, on ten weather/time prompts (greedy, one thread).

A call counts as *valid* when its name is an offered tool and its arguments parse as JSON that
validates against that tool's schema; *right* when it is the tool the prompt asks for (and,
for the weather tool, the city the prompt names). Not a speed benchmark: it prints a table
and the seconds per prompt, and exits 1 when a forced choice (a name, ``required``) makes
fewer than 9 valid calls in 10.

    .venv/bin/python benchmarks/llamacpp_tool_calls.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import jsonschema

from tedchat.engine import GenerationParams, Message, Runtime, ToolCallDelta, ToolSpec

WEATHER = ToolSpec(
    "get_weather",
    "Get the current weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Tokyo", "Paris"]}},
        "required": ["city"],
    },
)
TIME = ToolSpec(
    "get_time",
    "Get the current time in an IANA timezone such as Europe/Paris.",
    {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
)
# (prompt, the tool it asks for, the city for the weather tool)
PROMPTS = [
    ("What's the weather in Tokyo?", "get_weather", "Tokyo"),
    ("What time is it in Europe/Paris?", "get_time", None),
    ("Weather for Paris please", "get_weather", "Paris"),
    ("What's the time in Asia/Tokyo?", "get_time", None),
    ("Tell me the forecast for Tokyo.", "get_weather", "Tokyo"),
    ("Current time in America/New_York?", "get_time", None),
    ("Tokyo weather now", "get_weather", "Tokyo"),
    ("What time is it in UTC?", "get_time", None),
    ("I'm flying to Tokyo tomorrow, what's the weather?", "get_weather", "Tokyo"),
    ("Paris: sunny or cloudy?", "get_weather", "Paris"),
]
CHOICES = ["get_weather", "required", "auto", "none"]


async def main() -> int:
    from tedchat_llamacpp import SETTINGS
    from tedchat_llamacpp.engine import LlamaCppEngine

    engine = LlamaCppEngine("local", {**SETTINGS, "n_threads": 1, "n_ctx": 1024}, Runtime(1))
    await engine.load()
    specs = {t.name: t for t in (WEATHER, TIME)}
    failed = False
    print(f"{'tool_choice':<12} {'calls':>5} {'valid':>5} {'right':>5} {'s/prompt':>8}")
    for choice in CHOICES:
        tools = (WEATHER,) if choice == "get_weather" else (WEATHER, TIME)
        calls = valid = right = 0
        t0 = time.monotonic()
        for prompt, wanted, city in PROMPTS:
            params = GenerationParams(
                max_tokens=60, temperature=0.0, seed=1, tools=tools, tool_choice=choice
            )
            pieces = []
            async for event in engine.stream([Message("user", prompt)], params):
                if isinstance(event, ToolCallDelta):
                    pieces.append(event)
            if not pieces:
                continue
            calls += 1
            name = pieces[0].name or ""
            try:
                arguments = json.loads("".join(p.arguments for p in pieces))
                jsonschema.validate(arguments, specs[name].parameters)
            except (ValueError, KeyError, jsonschema.ValidationError):
                continue
            valid += 1
            if choice == "get_weather":
                wanted = "get_weather"  # only one tool offered: right means the right city
                city = city or arguments.get("city")
            if name == wanted and (city is None or arguments.get("city") == city):
                right += 1
        per = (time.monotonic() - t0) / len(PROMPTS)
        print(f"{choice:<12} {calls:>5} {valid:>5} {right:>5} {per:>8.2f}")
        if choice in ("get_weather", "required") and valid < 9:
            failed = True
    await engine.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
