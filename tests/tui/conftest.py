"""Fixtures for the TUI tests: an isolated home whose config loads the scripted test engine
through a local plugin folder (the real plugin path), and an app factory."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tedchat.engine import Engine
from tedchat.engines import load_context

PLUGINS = Path(__file__).resolve().parent / "plugins"

NIHONGO_ANSWER = (
    "ウェハースケールの推論では、各層の重みがSRAMに常駐し、"
    "トークンはステージからステージへ流れます。\n\n"
    "- 長所：メモリ帯域が非常に広い\n"
    "- 短所：モデル全体を載せるには複数のシステムが必要\n\n"
    "日本語の長い文章も、端末の幅に合わせて正しく折り返して表示されることを確認します。"
)

# Engines every TUI test can name. "fast" and "slow" stream in real time; "frozen" and
# "nihongo" on a virtual clock, so figures in snapshots are exact.
BASE_CONFIG = f"""
default_engine = "fast"

[plugins]
dirs = [{str(PLUGINS)!r}]

[engines.fast]
type = "scripted"
model = "script-fast"
text = "The **answer** is 42.\\n\\n- one\\n- two\\n\\n```python\\nprint('hi')\\n```\\n\\nDone."
ttft_s = 0.01
tokens_per_s = 400.0

[engines.slow]
type = "scripted"
model = "script-slow"
text = "{"word " * 400}"
ttft_s = 0.02
tokens_per_s = 40.0

[engines.frozen]
type = "scripted"
model = "script-frozen"
text = "A frozen answer with **bold** text.\\n\\n1. first\\n2. second\\n\\n```sh\\necho hello\\n```"
virtual = true
ttft_s = 0.125
tokens_per_s = 50.0
count = "usage"

[engines.frozen2]
type = "scripted"
model = "script-frozen-2"
text = "A second, slower frozen answer that takes a little longer to finish."
virtual = true
ttft_s = 0.25
tokens_per_s = 20.0

[engines.nihongo]
type = "scripted"
model = "tedllm-ja"
text = {json.dumps(NIHONGO_ANSWER, ensure_ascii=False)}
chunk_chars = 3
virtual = true
ttft_s = 0.08
tokens_per_s = 30.0

[engines.emu]
type = "scripted"
model = "smollm2-as-70b"
text = "Emulated answer."
virtual = true
ttft_s = 0.05
tokens_per_s = 100.0
emulated = true
floorplan = true
"""


@pytest.fixture
def tui_home(tedchat_home: Path) -> Path:
    """A tedchat home with BASE_CONFIG as its config file."""
    config = tedchat_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(BASE_CONFIG, encoding="utf-8")
    return tedchat_home


def virtual_clock(engine: Engine) -> Callable[[], float]:
    """Turns on a scripted virtual engine are timed on its schedule; others on the real clock."""
    import time

    if getattr(engine, "settings", {}).get("virtual"):
        return lambda: engine.now  # type: ignore[attr-defined]
    return time.perf_counter


@pytest.fixture
def make_app(tui_home: Path) -> Callable[..., Any]:
    """Build a TedchatApp on the test home; ``extra_config`` is appended to BASE_CONFIG."""
    from tedchat.tui.app import TedchatApp

    def make(extra_config: str = "", **options: Any) -> TedchatApp:
        if extra_config:
            config = tui_home / "config" / "config.toml"
            config.write_text(BASE_CONFIG + textwrap.dedent(extra_config), encoding="utf-8")
        context = load_context()
        failures = [f.message for f in context.plugins.failures]
        assert not failures, failures
        options.setdefault("clock_for", virtual_clock)
        return TedchatApp(context, **options)

    return make


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
        await pilot.pause(0.02)


async def send(pilot: Any, text: str) -> None:
    """Type ``text`` into the focused screen's prompt and press Enter."""
    from tedchat.tui.widgets.prompt import PromptInput

    prompt = pilot.app.screen.query_one(PromptInput)
    prompt.focus()
    prompt.load_text(text)
    await pilot.press("enter")


async def answered(pilot: Any, timeout: float = 15.0) -> None:
    """Wait until the screen's answer(s) have finished streaming and been drawn."""
    await pilot.pause(0.05)
    await wait_for(pilot, lambda: not pilot.app.screen.busy, timeout)
    await pilot.pause(0.05)
