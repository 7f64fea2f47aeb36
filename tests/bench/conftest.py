"""Bench test fixtures: a tedchat home with the scripted engine plugin and engines using it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parent / "scripted_plugin.py"

# Engines the bench tests use, all of the scripted type (see scripted_plugin.py).
ENGINES_TOML = """\
[engines.steady]
type = "scripted"
token_ids = true
api_key = "sk-secret-value"

[engines.plain]
type = "scripted"
resettable = false

[engines.flaky]
type = "scripted"
fail_on = "2,4"
crash_on = "3"

[engines.broken]
type = "scripted"
fail_load = true

[engines.emu]
type = "scripted"
emulated = true

[engines.slow]
type = "scripted"
words = 10
delay = 0.02
"""


@pytest.fixture
def bench_home(tedchat_home: Path) -> Path:
    """A tedchat home whose config defines the scripted engines above (plus the defaults)."""
    plugins = tedchat_home / "config" / "plugins"
    plugins.mkdir(parents=True)
    shutil.copy(PLUGIN, plugins / "scripted.py")
    config = tedchat_home / "config" / "config.toml"
    config.write_text(ENGINES_TOML)
    config.chmod(0o600)  # it holds a key: readable by others, tedchat would warn
    return tedchat_home
